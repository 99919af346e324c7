use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use contracts::api::ClientError;
use contracts::api::catalog::{CatalogApi, SkuLookup};
use contracts::api::inventory::{CreateReservationRequest, InventoryApi, ReservationLineRequest};
use platform::client::{LocalRouter, Peers};
use serde_json::json;

use super::*;

fn sku(text: &str) -> contracts::kernel::Sku {
    contracts::kernel::Sku::parse(text).expect("a valid SKU")
}

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
    assert_eq!(sku_query(&[sku("AAA-1"), sku("BBB-2")]), "sku=AAA-1&sku=BBB-2");
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
    let found = catalog.products_by_sku(&[sku("TEE-1")]).await.expect("lookup");
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
    let err = inventory.availability(&[sku("TEE-1")]).await.expect_err("malformed");
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

/// A catalog offered for direct calls that answers with the caller's name (and waits `delay`).
struct OfferedCatalog {
    caller: &'static str,
    delay: std::time::Duration,
}

#[async_trait::async_trait]
impl CatalogApi for OfferedCatalog {
    async fn products_by_sku(&self, _skus: &[contracts::kernel::Sku]) -> Result<SkuLookup, ClientError> {
        tokio::time::sleep(self.delay).await;
        Ok(SkuLookup {
            items: Vec::new(),
            missing: vec![format!("direct for {}", self.caller)],
        })
    }
}

fn offer_catalog(peers: &Peers, delay: std::time::Duration) {
    peers.offer::<dyn CatalogApi>("catalog", move |caller| Arc::new(OfferedCatalog { caller, delay }));
}

/// The same catalog behind the process's router, answering "router".
fn routed_catalog() -> Router {
    Router::new().route(
        "/api/v1/catalog/products/by-sku",
        get(|| async { axum::Json(json!({"items": [], "missing": ["router"]})) }),
    )
}

#[tokio::test]
async fn a_context_of_this_process_that_offered_its_api_is_called_directly_as_the_caller() {
    let peers = peers_with(routed_catalog());
    offer_catalog(&peers, std::time::Duration::ZERO);
    let catalog = crate::catalog(&peers, "cart", std::time::Duration::from_secs(1)).expect("catalog");
    let found = catalog.products_by_sku(&[sku("TEE-1")]).await.expect("lookup");
    assert_eq!(found.missing, ["direct for cart"]);

    // EMPORIUM_PEER_CALLS=http: through the router, as between processes.
    peers.set_direct_calls(false);
    let catalog = crate::catalog(&peers, "cart", std::time::Duration::from_secs(1)).expect("catalog");
    let found = catalog.products_by_sku(&[sku("TEE-1")]).await.expect("lookup");
    assert_eq!(found.missing, ["router"]);
}

#[tokio::test]
async fn a_context_with_a_url_is_called_over_http_even_if_this_process_offered_it() {
    let local = LocalRouter::new();
    local.set(routed_catalog());
    let remote = BTreeMap::from([("catalog".to_owned(), "http://127.0.0.1:9".to_owned())]);
    let peers = Peers::new(local, ["catalog".to_owned()], remote, None);
    offer_catalog(&peers, std::time::Duration::ZERO);
    let catalog = crate::catalog(&peers, "cart", std::time::Duration::from_secs(1)).expect("catalog");
    // Port 9 (discard) refuses the connection: the call went to the URL, not to the offer.
    let err = catalog.products_by_sku(&[sku("TEE-1")]).await.expect_err("unreachable");
    assert!(
        matches!(err, ClientError::Unreachable { peer: "catalog", .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_direct_call_keeps_the_callers_budget() {
    let peers = peers_with(routed_catalog());
    offer_catalog(&peers, std::time::Duration::from_secs(5));
    let catalog = crate::catalog(&peers, "cart", std::time::Duration::from_millis(50)).expect("catalog");
    let started = std::time::Instant::now();
    let err = catalog.products_by_sku(&[sku("TEE-1")]).await.expect_err("timed out");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(
        err,
        ClientError::Unreachable {
            peer: "catalog",
            detail: "the call timed out".into()
        }
    );
}
