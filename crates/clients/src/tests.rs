use std::collections::BTreeMap;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use contracts::api::ClientError;
use contracts::api::catalog::CatalogApi;
use contracts::api::inventory::{CreateReservationRequest, InventoryApi, ReservationLineRequest};
use platform::client::{LocalRouter, Peers};
use serde_json::json;

use super::*;

fn peers_with(router: Router) -> Peers {
    let local = LocalRouter::new();
    local.set(router);
    Peers::new(
        local,
        ["catalog".to_owned(), "inventory".to_owned()],
        BTreeMap::new(),
        None,
    )
}

#[test]
fn sku_queries_repeat_the_parameter() {
    assert_eq!(sku_query(&["AAA-1".into(), "BBB-2".into()]), "sku=AAA-1&sku=BBB-2");
}

#[tokio::test]
async fn a_success_is_read_as_the_published_view() {
    let router = Router::new().route(
        "/api/v1/catalog/products/by-sku",
        get(|axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
            assert_eq!(q.as_deref(), Some("sku=TEE-1"));
            axum::Json(json!({"items": [], "missing": ["TEE-1"]}))
        }),
    );
    let catalog = CatalogClient::new(peers_with(router).client("cart", "catalog").expect("client"));
    let found = catalog.products_by_sku(&["TEE-1".into()]).await.expect("lookup");
    assert!(found.items.is_empty());
    assert_eq!(found.missing, ["TEE-1"]);
}

#[tokio::test]
async fn a_problem_is_an_error_with_its_status_detail_and_fields() {
    let router = Router::new().route(
        "/api/v1/inventory/reservations",
        post(|headers: HeaderMap| async move {
            assert_eq!(
                headers.get("idempotency-key").and_then(|v| v.to_str().ok()),
                Some("order-1")
            );
            (
                StatusCode::CONFLICT,
                axum::Json(json!({
                    "type": "about:blank", "title": "Conflict", "status": 409,
                    "detail": "not enough TEE-1",
                    "errors": [{"field": "items[0].qty", "message": "only 2 available"}],
                })),
            )
        }),
    );
    // No service secret here: the call fails before it is sent, as an unreachable peer.
    let peers = peers_with(router);
    let inventory = InventoryClient::new(peers.client("ordering", "inventory").expect("client"));
    let request = CreateReservationRequest {
        reference: "1".into(),
        items: vec![ReservationLineRequest {
            sku: "TEE-1".into(),
            qty: 3,
        }],
        ttl_seconds: None,
    };
    let err = inventory
        .reserve("order-1", &request)
        .await
        .expect_err("no credentials");
    assert!(
        matches!(err, ClientError::Unreachable { peer: "inventory", .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    // The same reply, asked for without credentials, reads as the problem it is.
    let reply = peers
        .client("ordering", "inventory")
        .expect("client")
        .post("/api/v1/inventory/reservations")
        .idempotency_key("order-1")
        .json(&request)
        .send()
        .await
        .expect("reply");
    let err = reply.decode::<serde_json::Value>("inventory").expect_err("a problem");
    assert_eq!(
        err,
        ClientError::Status {
            peer: "inventory",
            status: 409,
            detail: "not enough TEE-1".into(),
            errors: vec![contracts::api::FieldError {
                field: "items[0].qty".into(),
                message: "only 2 available".into(),
            }],
        }
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_unreadable_success_is_malformed() {
    let router = Router::new().route("/api/v1/inventory", get(|| async { axum::Json(json!({"items": 3})) }));
    let inventory = InventoryClient::new(peers_with(router).client("cart", "inventory").expect("client"));
    let err = inventory.availability(&["TEE-1".into()]).await.expect_err("malformed");
    assert!(
        matches!(
            err,
            ClientError::Malformed {
                peer: "inventory",
                status: 200,
                ..
            }
        ),
        "{err:?}"
    );
}
