//! The fault-injection admin API (`/api/v1/admin/faults`). It lives with identity because identity
//! owns the security audit log: every change is recorded there with who made it and what changed.

use std::sync::Arc;

use axum::extract::State;
use platform::Problem;
use platform::auth::AuthUser;
use platform::faults::{FaultFlagsInput, Faults, FaultsView};
use platform::http::Json;
use platform::routes;
use utoipa_axum::router::OpenApiRouter;

use crate::api::Client;
use crate::service::IdentityService;

/// What the faults routes need: the use cases (admin check, audit log) and the flags.
#[derive(Clone)]
pub struct FaultsState {
    pub service: Arc<IdentityService>,
    pub faults: Faults,
}

/// The fault-injection flags (admin).
#[utoipa::path(get, path = "/api/v1/admin/faults", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The flags", body = FaultsView),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 409, description = "Fault injection is off in this process (EMPORIUM_FAULT_INJECTION)", body = Problem)))]
pub async fn get_faults(State(state): State<FaultsState>, auth: AuthUser) -> Result<Json<FaultsView>, Problem> {
    let flags = state.service.fault_flags(&auth, &state.faults).await?;
    Ok(Json(FaultsView::new(flags, &state.faults)))
}

/// Replaces every fault-injection flag (admin); omitted flags are off, `{}` clears them all. The
/// change is recorded in the audit log (`faults.changed`) and reaches every replica within about
/// a second.
#[utoipa::path(put, path = "/api/v1/admin/faults", tag = "admin", security(("bearer" = [])),
    request_body = FaultFlagsInput,
    responses((status = 200, description = "The flags now", body = FaultsView),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 409, description = "Fault injection is off in this process (EMPORIUM_FAULT_INJECTION)", body = Problem),
        (status = 422, description = "A value is out of range (the field is named)", body = Problem)))]
pub async fn put_faults(
    State(state): State<FaultsState>,
    auth: AuthUser,
    Client(client): Client,
    Json(input): Json<FaultFlagsInput>,
) -> Result<Json<FaultsView>, Problem> {
    let flags = platform::faults::validate(&input).map_err(Problem::validation)?;
    let flags = state
        .service
        .set_fault_flags(&auth, &state.faults, flags, &client)
        .await?;
    Ok(Json(FaultsView::new(flags, &state.faults)))
}

pub fn routes() -> OpenApiRouter<FaultsState> {
    OpenApiRouter::new().routes(routes!(get_faults, put_faults))
}
