//! Stock levels, one SKU's page (adjust, threshold, movements) and the low-stock list.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    let products: Value = api
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
    let items = products["items"].as_array().cloned().unwrap_or_default();
    let skus: Vec<&str> = items.iter().filter_map(|p| p["sku"].as_str()).collect();
    let stock: Value = if skus.is_empty() {
        json!({ "items": [] })
    } else {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(skus.iter().map(|s| ("sku", *s)))
            .finish();
        api.get_json("inventory", &format!("/api/v1/inventory?{query}")).await?
    };
    let rows = join_levels(&items, &stock);
    let next_page = products["next"].as_str().map(|cursor| {
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
fn join_levels(products: &[Value], stock: &Value) -> Vec<Value> {
    let levels = stock["items"].as_array().cloned().unwrap_or_default();
    products
        .iter()
        .map(|p| {
            let sku = p["sku"].as_str().unwrap_or_default();
            let level = levels
                .iter()
                .find(|l| l["sku"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(sku)));
            json!({
                "sku": sku,
                "name": p["name"],
                "product_id": p["id"],
                "status": p["status"],
                "stock": level,
            })
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
    let list: Value = web
        .api(&session)
        .get_json(
            "inventory",
            &format!(
                "/api/v1/inventory/low-stock{}",
                query_string(&[("limit", "100"), ("cursor", &q.cursor)])
            ),
        )
        .await?;
    let next_page = list["next"]
        .as_str()
        .map(|cursor| format!("/admin/inventory/low-stock{}", query_string(&[("cursor", cursor)])));
    page(
        &session,
        "admin/low_stock.html",
        context! { items => value_of(&list["items"]), next_page => next_page },
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
fn adjustment(form: &AdjustForm) -> Result<Value, FieldErrors> {
    let mut errors = FieldErrors::new();
    let kind = form.kind.trim();
    if !ADJUSTMENT_KINDS.contains(&kind) {
        errors.add("kind", "Choose restock, damage or correction.");
    }
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
    if !errors.is_empty() {
        return Err(errors);
    }
    let quantity: i64 = form.quantity.trim().parse().unwrap_or_default();
    Ok(json!({ "kind": kind, "quantity": quantity, "reason": form.reason.trim() }))
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
    let stock: Option<Value> = match reply.status {
        StatusCode::NOT_FOUND => None,
        _ => Some(api.decode(reply)?),
    };
    let movements: Value = if stock.is_some() {
        api.get_json("inventory", &format!("/api/v1/inventory/{sku}/movements?limit=50"))
            .await?
    } else {
        json!({ "items": [] })
    };
    let threshold = if view.threshold.threshold.is_empty() {
        ThresholdForm {
            threshold: stock
                .as_ref()
                .and_then(|s| s["low_stock_threshold"].as_i64())
                .map(|t| t.to_string())
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
            movements => value_of(&movements["items"]),
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
        let stock: Value = api.decode(reply)?;
        session.flash(
            "success",
            format!(
                "Stock of {} adjusted: {} on hand, {} available.",
                stock["sku"].as_str().unwrap_or(&sku),
                stock["on_hand"],
                stock["available"]
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
            &json!({ "threshold": threshold }),
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
            json!({ "kind": "restock", "quantity": 24, "reason": "delivery" })
        );
        assert_eq!(
            adjustment(&form("correction", "-3", "count")).expect("valid")["quantity"],
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
        let products = vec![
            json!({ "sku": "A-1", "name": "A", "id": "1" }),
            json!({ "sku": "B-2", "name": "B", "id": "2" }),
        ];
        let stock = json!({ "items": [ { "sku": "B-2", "on_hand": 5 } ], "not_found": ["A-1"] });
        let rows = join_levels(&products, &stock);
        assert_eq!(rows[0]["stock"], Value::Null);
        assert_eq!(rows[1]["stock"]["on_hand"], 5);
        assert_eq!(rows[1]["name"], "B");
    }
}
