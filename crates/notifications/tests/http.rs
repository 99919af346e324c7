//! The HTTP API over the real router (no socket): preferences validation, the admin delivery log's
//! filters and pagination, and the retry endpoint's answers. Tokens are signed with a test key.

use contracts::events::Event as _;
use contracts::events::identity::UserRegistered;
use contracts::events::ordering::{OrderPaymentPending, OrderShipped};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use notifications::{MailTransport, NotificationService, NotificationsConfig};
use platform::db::{Db, SqliteSizing};
use platform::dev_mailbox::DevMailbox;
use platform::events::Event;
use serde_json::{Value, json};
use test_support::TestTokens;
use tower::ServiceExt;
use uuid::Uuid;

struct Api {
    router: Router,
    svc: Arc<NotificationService>,
    tokens: TestTokens,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().expect("tmp");
    let db = Db::open_embedded(
        dir.path(),
        "notifications",
        SqliteSizing::for_context(notifications::CONTEXT, 5),
    )
    .await
    .expect("sqlite");
    notifications::migrate(&db).await.expect("migrate");
    let config = NotificationsConfig {
        poll_interval: Duration::from_millis(20),
        ..NotificationsConfig::default()
    };
    let transport = MailTransport::DevMailbox(DevMailbox::new());
    let svc = Arc::new(NotificationService::new(notifications::store::open(&db), config, &transport).expect("svc"));
    let tokens = TestTokens::new();
    Api {
        router: notifications::router_for(
            svc.clone(),
            Arc::new(
                notifications::webhooks::service::WebhookService::new(
                    notifications::webhooks::store::open(&db),
                    Default::default(),
                )
                .expect("webhooks"),
            ),
            tokens.keys(),
        ),
        svc,
        tokens,
        _dir: dir,
    }
}

impl Api {
    async fn call(&self, method: &str, uri: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const PREFS: &str = "/api/v1/notifications/preferences";
const LOG: &str = "/api/v1/notifications/admin/deliveries";

#[tokio::test]
async fn preferences_are_per_user_and_transactional_mail_stays_on() {
    let api = api().await;
    let (status, _) = api.call("GET", PREFS, None, None).await;
    assert_eq!(status, 401);
    let ann = api.tokens.sign(Uuid::now_v7(), "customer");
    let bob = api.tokens.sign(Uuid::now_v7(), "customer");
    let (status, body) = api.call("GET", PREFS, Some(&ann), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"order_updates": true, "email_verification": true, "password_reset": true,
               "marketing": false, "low_stock_alerts": true})
    );
    let (status, body) = api
        .call(
            "PUT",
            PREFS,
            Some(&ann),
            Some(json!({"order_updates": false, "marketing": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(fields(&body), vec!["order_updates"]);
    let (status, body) = api
        .call(
            "PUT",
            PREFS,
            Some(&ann),
            Some(json!({"email_verification": false, "password_reset": false})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["email_verification", "password_reset"]);
    // Nothing was saved by the refused requests.
    let (_, body) = api.call("GET", PREFS, Some(&ann), None).await;
    assert_eq!(body["marketing"], false);
    let (status, body) = api
        .call("PUT", PREFS, Some(&ann), Some(json!({"newsletter": true})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["newsletter"]);
    let (status, body) = api
        .call("PUT", PREFS, Some(&ann), Some(json!({"marketing": "yes"})))
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["marketing"]);
    let (status, body) = api
        .call(
            "PUT",
            PREFS,
            Some(&ann),
            Some(json!({"marketing": true, "order_updates": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["marketing"], true);
    let (_, body) = api.call("GET", PREFS, Some(&ann), None).await;
    assert_eq!(
        (body["marketing"].clone(), body["order_updates"].clone()),
        (json!(true), json!(true))
    );
    let (_, body) = api.call("GET", PREFS, Some(&bob), None).await;
    assert_eq!(body["marketing"], false, "another user's preferences are untouched");
}

async fn seed_log(api: &Api) -> (Uuid, Uuid) {
    let ann = Uuid::now_v7();
    let bob = Uuid::now_v7();
    for (id, email) in [(ann, "ann@example.com"), (bob, "bob@example.com")] {
        let e = Event::new(
            "identity",
            UserRegistered::TYPE,
            id.to_string(),
            json!({"user_id": id, "email": email, "name": "N"}),
        );
        api.svc.handle_event(&e).await.expect("registered");
    }
    let mut shipped_event = Uuid::nil();
    for i in 0..5 {
        for (user, t) in [(ann, OrderPaymentPending::TYPE), (bob, OrderShipped::TYPE)] {
            let e = Event::new(
                "ordering",
                t,
                "o",
                json!({"order_id": Uuid::now_v7(), "number": i, "user_id": user, "currency": "EUR", "total": 100,
                       "carrier": "DHL", "tracking_number": "T"}),
            );
            if t == OrderShipped::TYPE {
                shipped_event = e.id;
            }
            api.svc.handle_event(&e).await.expect("order");
        }
    }
    (ann, shipped_event)
}

#[tokio::test]
async fn the_delivery_log_filters_and_pages() {
    let api = api().await;
    let (_, shipped_event) = seed_log(&api).await;
    let support = api.tokens.sign(Uuid::now_v7(), "support");
    let customer = api.tokens.sign(Uuid::now_v7(), "customer");
    let (status, _) = api.call("GET", LOG, Some(&customer), None).await;
    assert_eq!(status, 403);
    let (status, body) = api.call("GET", LOG, Some(&support), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().expect("items").len(), 10);
    assert!(body["items"][0].get("text_body").is_none(), "bodies are never shown");
    assert!(
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|d| d["status"] == "pending")
    );

    let (_, body) = api
        .call("GET", &format!("{LOG}?to=ANN@example.com"), Some(&support), None)
        .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    assert!(
        items
            .iter()
            .all(|d| d["to"] == "ann@example.com" && d["kind"] == "order_placed")
    );
    let (_, body) = api
        .call("GET", &format!("{LOG}?kind=order_shipped"), Some(&support), None)
        .await;
    assert_eq!(body["items"].as_array().expect("items").len(), 5);
    let (_, body) = api
        .call("GET", &format!("{LOG}?event_id={shipped_event}"), Some(&support), None)
        .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event_id"], shipped_event.to_string());
    assert_eq!(items[0]["event_type"], "ordering.order.shipped");

    // Pages of 4, newest first, no row twice.
    let mut seen = Vec::new();
    let mut uri = format!("{LOG}?limit=4");
    loop {
        let (status, body) = api.call("GET", &uri, Some(&support), None).await;
        assert_eq!(status, 200);
        seen.extend(
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_owned()),
        );
        match body["next"].as_str() {
            Some(next) => uri = format!("{LOG}?limit=4&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 10);
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted);

    // Once sent, the status filter tells them apart.
    assert_eq!(api.svc.deliver_due().await.expect("deliver"), 10);
    let (_, body) = api
        .call(
            "GET",
            &format!("{LOG}?status=sent&kind=order_placed"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(body["items"].as_array().expect("items").len(), 5);
    let (_, body) = api
        .call("GET", &format!("{LOG}?status=dead"), Some(&support), None)
        .await;
    assert_eq!(body["items"].as_array().expect("items").len(), 0);

    let (status, body) = api
        .call(
            "GET",
            &format!("{LOG}?status=lost&kind=spam&event_id=1&limit=0"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["limit"]);
    let (status, body) = api
        .call(
            "GET",
            &format!("{LOG}?status=lost&kind=spam&event_id=1"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["status", "kind", "event_id"]);
    let (status, body) = api
        .call("GET", &format!("{LOG}?colour=red"), Some(&support), None)
        .await;
    assert_eq!(status, 422);
    assert_eq!(fields(&body), vec!["colour"]);
}

#[tokio::test]
async fn retry_answers_404_409_and_403() {
    let api = api().await;
    seed_log(&api).await;
    api.svc.deliver_due().await.expect("deliver");
    let admin = api.tokens.sign(Uuid::now_v7(), "admin");
    let support = api.tokens.sign(Uuid::now_v7(), "support");
    let (_, body) = api.call("GET", &format!("{LOG}?limit=1"), Some(&admin), None).await;
    let id = body["items"][0]["id"].as_str().expect("id").to_owned();
    let (status, body) = api.call("GET", &format!("{LOG}/{id}"), Some(&support), None).await;
    assert_eq!((status, body["status"].clone()), (200, json!("sent")));
    assert!(body["sent_at"].is_string() && body["message_id"].is_string());
    let (status, _) = api
        .call("POST", &format!("{LOG}/{id}/retry"), Some(&support), None)
        .await;
    assert_eq!(status, 403);
    let (status, body) = api.call("POST", &format!("{LOG}/{id}/retry"), Some(&admin), None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("sent")));
    let (status, _) = api
        .call("POST", &format!("{LOG}/{}/retry", Uuid::now_v7()), Some(&admin), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .call("POST", &format!("{LOG}/not-a-uuid/retry"), Some(&admin), None)
        .await;
    assert_eq!(status, 404);
}

#[test]
fn the_openapi_document_lists_every_endpoint() {
    let doc = serde_json::to_value(notifications::openapi()).expect("json");
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/api/v1/notifications/preferences",
        "/api/v1/notifications/admin/deliveries",
        "/api/v1/notifications/admin/deliveries/{id}",
        "/api/v1/notifications/admin/deliveries/{id}/retry",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(paths["/api/v1/notifications/preferences"].get("put").is_some());
    assert_eq!(
        paths["/api/v1/notifications/preferences"]["get"]["tags"][0],
        "notifications"
    );
}
