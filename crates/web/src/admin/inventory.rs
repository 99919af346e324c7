//! Stock levels, one SKU's page (adjust, threshold, movements) and the low-stock list.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::catalog::{ProductPage, ProductStatus, ProductView};
use contracts::api::inventory::{
    AdjustmentKind, AdjustmentRequest, BatchAvailability, MovementView, StockView, ThresholdRequest,
};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{new_idempotency_key, problem_errors, query_string, segment};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/inventory", get(levels))
        .route("/admin/inventory/low-stock", get(low_stock))
        .route("/admin/inventory/{sku}", get(stock_page))
        .route("/admin/inventory/{sku}/adjust", post(adjust))
        .route("/admin/inventory/{sku}/threshold", post(set_threshold))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LevelsFilter {
    q: String,
    cursor: String,
}

/// Inventory has no "every SKU" list: the page walks the catalogue (every status) and asks
/// inventory for the levels of the SKUs shown, in one batch call.
async fn levels(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<LevelsFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let products: ProductPage = api
        .get_json(
            "catalog",
            &format!(
                "/api/v1/catalog/products{}",
                query_string(&[
                    ("q", &filter.q),
                    ("status", "all"),
                    ("limit", "50"),
                    ("cursor", &filter.cursor)
                ])
            ),
        )
        .await?;
    let stock: Vec<StockView> = if products.items.is_empty() {
        Vec::new()
    } else {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(products.items.iter().map(|p| ("sku", p.sku.as_str())))
            .finish();
        let batch: BatchAvailability = api.get_json("inventory", &format!("/api/v1/inventory?{query}")).await?;
        batch.items
    };
    let rows = join_levels(&products.items, &stock);
    let next_page = products.next.as_deref().map(|cursor| {
        format!(
            "/admin/inventory{}",
            query_string(&[("q", &filter.q), ("cursor", cursor)])
        )
    });
    page(
        &session,
        "admin/inventory.html",
        context! { rows => value_of(&rows), q => filter.q, next_page => next_page },
    )
}

/// One row per product: its name and id beside inventory's figures for its SKU (absent when
/// inventory has no row yet).
#[derive(Debug, Serialize)]
struct LevelRow<'a> {
    sku: &'a str,
    name: &'a str,
    product_id: Uuid,
    status: ProductStatus,
    stock: Option<&'a StockView>,
}

fn join_levels<'a>(products: &'a [ProductView], levels: &'a [StockView]) -> Vec<LevelRow<'a>> {
    products
        .iter()
        .map(|p| LevelRow {
            sku: &p.sku,
            name: &p.name,
            product_id: p.id,
            status: p.status,
            stock: levels.iter().find(|l| l.sku.eq_ignore_ascii_case(&p.sku)),
        })
        .collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageCursor {
    cursor: String,
}

async fn low_stock(
    State(web): State<WebState>,
    session: Session,
    Query(q): Query<PageCursor>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let list: Page<StockView> = web
        .api(&session)
        .get_json(
            "inventory",
            &format!(
                "/api/v1/inventory/low-stock{}",
                query_string(&[("limit", "100"), ("cursor", &q.cursor)])
            ),
        )
        .await?;
    let next_page = list
        .next
        .as_deref()
        .map(|cursor| format!("/admin/inventory/low-stock{}", query_string(&[("cursor", cursor)])));
    page(
        &session,
        "admin/low_stock.html",
        context! { items => value_of(&list.items), next_page => next_page },
    )
}

/// The adjust form as typed.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct AdjustForm {
    kind: String,
    quantity: String,
    reason: String,
    idempotency_key: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct ThresholdForm {
    threshold: String,
}

const ADJUSTMENT_KINDS: [&str; 3] = ["restock", "damage", "correction"];

/// The adjustment inventory takes, or the fields that cannot become one. Restock and damage
/// take a positive count; a correction a signed, non-zero delta.
fn adjustment(form: &AdjustForm) -> Result<AdjustmentRequest, FieldErrors> {
    let mut errors = FieldErrors::new();
    let kind = form.kind.trim();
    let parsed_kind = match kind {
        "restock" => Some(AdjustmentKind::Restock),
        "damage" => Some(AdjustmentKind::Damage),
        "correction" => Some(AdjustmentKind::Correction),
        _ => {
            errors.add("kind", "Choose restock, damage or correction.");
            None
        }
    };
    match form.quantity.trim().parse::<i64>() {
        Err(_) => errors.add("quantity", "Enter a whole number of units, e.g. 24."),
        Ok(0) => errors.add("quantity", "Must not be zero."),
        Ok(n) if n < 0 && kind != "correction" => errors.add(
            "quantity",
            "Must be positive (use a correction to take units off a count).",
        ),
        Ok(_) => {}
    }
    if form.reason.trim().is_empty() {
        errors.add("reason", "Say why (kept in the ledger).");
    }
    let Some(kind) = parsed_kind.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let quantity: i64 = form.quantity.trim().parse().unwrap_or_default();
    Ok(AdjustmentRequest {
        kind,
        quantity,
        reason: form.reason.trim().to_owned(),
    })
}

struct StockPage<'a> {
    sku: &'a str,
    adjust: AdjustForm,
    threshold: ThresholdForm,
    errors: FieldErrors,
    status: StatusCode,
}

async fn render_stock(web: &WebState, session: &Session, view: StockPage<'_>) -> Result<Response, PageError> {
    let api = web.api(session);
    let sku = segment(view.sku);
    let reply = api.get("inventory", &format!("/api/v1/inventory/{sku}")).await?;
    let stock: Option<StockView> = match reply.status {
        StatusCode::NOT_FOUND => None,
        _ => Some(api.decode(reply)?),
    };
    let movements: Vec<MovementView> = if stock.is_some() {
        api.get_json::<Page<MovementView>>("inventory", &format!("/api/v1/inventory/{sku}/movements?limit=50"))
            .await?
            .items
    } else {
        Vec::new()
    };
    let threshold = if view.threshold.threshold.is_empty() {
        ThresholdForm {
            threshold: stock
                .as_ref()
                .map(|s| s.low_stock_threshold.to_string())
                .unwrap_or_default(),
        }
    } else {
        view.threshold
    };
    let mut adjust = view.adjust;
    // A fresh key whenever the form is shown again: the previous attempt either moved the stock
    // (and redirected) or was refused, so the next one is a new request.
    adjust.idempotency_key = new_idempotency_key();
    if adjust.kind.is_empty() {
        adjust.kind = "restock".into();
    }
    page_with_status(
        view.status,
        session,
        "admin/stock.html",
        context! {
            sku => view.sku,
            stock => value_of(&stock),
            movements => value_of(&movements),
            adjust => value_of(&adjust),
            threshold => value_of(&threshold),
            kinds => ADJUSTMENT_KINDS,
            errors => view.errors,
        },
    )
}

async fn stock_page(
    State(web): State<WebState>,
    session: Session,
    Path(sku): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    render_stock(
        &web,
        &session,
        StockPage {
            sku: &sku,
            adjust: AdjustForm::default(),
            threshold: ThresholdForm::default(),
            errors: FieldErrors::new(),
            status: StatusCode::OK,
        },
    )
    .await
}

async fn adjust(
    State(web): State<WebState>,
    session: Session,
    Path(sku): Path<String>,
    Form(form): Form<AdjustForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let refused = |form: AdjustForm, errors: FieldErrors| StockPage {
        sku: &sku,
        adjust: form,
        threshold: ThresholdForm::default(),
        errors,
        status: StatusCode::UNPROCESSABLE_ENTITY,
    };
    let body = match adjustment(&form) {
        Ok(body) => body,
        Err(errors) => return render_stock(&web, &session, refused(form, errors)).await,
    };
    let key = if form.idempotency_key.trim().is_empty() {
        new_idempotency_key()
    } else {
        form.idempotency_key.trim().to_owned()
    };
    let api = web.api(&session).idempotency_key(key);
    let reply = api
        .post(
            "inventory",
            &format!("/api/v1/inventory/{}/adjustments", segment(&sku)),
            &body,
        )
        .await?;
    if reply.is_success() {
        let stock: StockView = api.decode(reply)?;
        session.flash(
            "success",
            format!(
                "Stock of {} adjusted: {} on hand, {} available.",
                stock.sku, stock.on_hand, stock.available
            ),
        );
        return Ok(Redirect::to(&format!("/admin/inventory/{}", segment(&sku))).into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, |f| {
            if f == "quantity" || f == "kind" || f == "reason" {
                f
            } else {
                "_form"
            }
            .to_owned()
        });
        return render_stock(&web, &session, refused(form, errors)).await;
    }
    Err(api.error_for(&reply))
}

async fn set_threshold(
    State(web): State<WebState>,
    session: Session,
    Path(sku): Path<String>,
    Form(form): Form<ThresholdForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let refused = |form: ThresholdForm, errors: FieldErrors| StockPage {
        sku: &sku,
        adjust: AdjustForm::default(),
        threshold: form,
        errors,
        status: StatusCode::UNPROCESSABLE_ENTITY,
    };
    let threshold = match form.threshold.trim().parse::<i64>() {
        Ok(t) if t >= 0 => t,
        _ => {
            let mut errors = FieldErrors::new();
            errors.add("threshold", "Enter a whole number, 0 or more.");
            return render_stock(&web, &session, refused(form, errors)).await;
        }
    };
    let api = web.api(&session);
    let reply = api
        .put(
            "inventory",
            &format!("/api/v1/inventory/{}/threshold", segment(&sku)),
            &ThresholdRequest { threshold },
        )
        .await?;
    if reply.is_success() {
        session.flash("success", format!("Low-stock threshold set to {threshold}."));
        return Ok(Redirect::to(&format!("/admin/inventory/{}", segment(&sku))).into_response());
    }
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        let errors = problem_errors(&reply, |_| "threshold".to_owned());
        return render_stock(&web, &session, refused(form, errors)).await;
    }
    Err(api.error_for(&reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, quantity: &str, reason: &str) -> AdjustForm {
        AdjustForm {
            kind: kind.into(),
            quantity: quantity.into(),
            reason: reason.into(),
            idempotency_key: String::new(),
        }
    }

    #[test]
    fn adjustments_are_checked_before_they_are_sent() {
        assert_eq!(
            adjustment(&form("restock", " 24 ", " delivery ")).expect("valid"),
            AdjustmentRequest {
                kind: AdjustmentKind::Restock,
                quantity: 24,
                reason: "delivery".into()
            }
        );
        assert_eq!(
            adjustment(&form("correction", "-3", "count")).expect("valid").quantity,
            -3
        );
        assert!(
            adjustment(&form("restock", "-3", "x"))
                .expect_err("negative")
                .get("quantity")
                .is_some()
        );
        assert!(
            adjustment(&form("damage", "0", "x"))
                .expect_err("zero")
                .get("quantity")
                .is_some()
        );
        assert!(
            adjustment(&form("restock", "2.5", "x"))
                .expect_err("fraction")
                .get("quantity")
                .is_some()
        );
        assert!(
            adjustment(&form("steal", "2", "x"))
                .expect_err("kind")
                .get("kind")
                .is_some()
        );
        assert!(
            adjustment(&form("restock", "2", " "))
                .expect_err("reason")
                .get("reason")
                .is_some()
        );
    }

    #[test]
    fn levels_join_products_by_sku() {
        let product = |sku: &str, name: &str| -> ProductView {
            serde_json::from_value(serde_json::json!({
                "id": Uuid::now_v7(), "name": name, "sku": sku, "slug": name, "brand": null, "category_id": null,
                "price": { "amount": 100, "currency": "EUR" }, "compare_at_price": null, "status": "active",
                "description": "", "attributes": {}, "images": [],
                "rating": { "average": 0.0, "count": 0, "histogram": {} }, "available": 0, "in_stock": false,
                "created_at": "2026-12-03T12:00:00Z", "updated_at": "2026-12-03T12:00:00Z", "version": 1,
            }))
            .expect("a product view")
        };
        let products = vec![product("A-1", "A"), product("B-2", "B")];
        let stock: StockView = serde_json::from_value(serde_json::json!({
            "sku": "B-2", "on_hand": 5, "reserved": 0, "available": 5, "low_stock_threshold": 0,
            "low_stock": false, "discontinued": false, "updated_at": "2026-12-03T12:00:00Z", "version": 1,
        }))
        .expect("a stock view");
        let levels = [stock];
        let rows = join_levels(&products, &levels);
        assert!(rows[0].stock.is_none());
        assert_eq!(rows[1].stock.map(|s| s.on_hand), Some(5));
        assert_eq!(rows[1].name, "B");
    }
}
