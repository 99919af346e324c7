//! Ordering's HTTP API: thin handlers that parse, call the service and shape the answer.

use std::sync::Arc;

use axum::extract::State;
use platform::Problem;
use platform::http::{Json, Query};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Country, ShippingMethod};
use crate::service::OrderingService;

type Svc = State<Arc<OrderingService>>;
type ApiResult<T> = Result<T, Problem>;

const TAG: &str = "ordering";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShippingQuery {
    /// A destination (ISO 3166-1 alpha-2): adds its tax rate to the answer.
    pub country: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ShippingMethods {
    /// ISO 4217 currency of every price.
    pub currency: String,
    pub methods: Vec<ShippingMethod>,
    /// Countries we ship to.
    pub countries: Vec<String>,
    /// The tax rate (basis points) of `?country=`, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_rate_bp: Option<u32>,
}

/// Shipping methods with their prices, and the supported destinations (public).
#[utoipa::path(get, path = "/api/v1/orders/shipping-methods", tag = TAG, params(ShippingQuery),
    responses((status = 200, description = "The methods", body = ShippingMethods),
        (status = 422, description = "`country` malformed or not a destination", body = Problem)))]
pub async fn shipping_methods(State(svc): Svc, Query(q): Query<ShippingQuery>) -> ApiResult<Json<ShippingMethods>> {
    let config = svc.config();
    let tax_rate_bp = match q.country {
        None => None,
        Some(raw) => {
            let country = Country::parse(&raw).map_err(|m| Problem::invalid_field("country", m))?;
            Some(
                config
                    .tax_rate(&country)
                    .ok_or_else(|| Problem::invalid_field("country", format!("we do not ship to {country}")))?,
            )
        }
    };
    Ok(Json(ShippingMethods {
        currency: config.currency.to_string(),
        methods: config.shipping_methods.clone(),
        countries: config.tax_rates.keys().map(ToString::to_string).collect(),
        tax_rate_bp,
    }))
}

/// Every ordering route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Arc<OrderingService>> {
    OpenApiRouter::new().routes(routes!(shipping_methods))
}
