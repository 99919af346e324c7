//! Queueing events for webhook endpoints, on SQLite and, when reachable, PostgreSQL. Queueing
//! keeps the endpoints it read for a moment (every event of the shop passes through it); a
//! change made through the service must still count for the very next event.

use notifications::webhooks::service::{EndpointChange, WebhookConfig, WebhookService};
use platform::auth::{AUDIENCE, AccessClaims, AuthUser, ISSUER};
use platform::events::Event;
use serde_json::json;
use test_support::{Backend, TestDb};
use uuid::Uuid;

async fn db(backend: Backend) -> Option<TestDb> {
    TestDb::open(backend, "notifications").await
}

test_support::on_both_backends!(
    super::db =>
    endpoint_changes_count_for_the_next_event,
);

fn admin() -> AuthUser {
    AuthUser(AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: Uuid::now_v7(),
        sid: Uuid::now_v7(),
        role: "admin".into(),
        iat: 0,
        exp: i64::MAX,
        jti: Uuid::now_v7(),
    })
}

fn order_placed() -> Event {
    Event::new("test", "order.placed", "order", json!({"order_id": Uuid::now_v7()}))
}

async fn endpoint_changes_count_for_the_next_event(t: TestDb) {
    notifications::migrate(&t.db).await.expect("migrate");
    let svc =
        WebhookService::new(notifications::webhooks::store::open(&t.db), WebhookConfig::default()).expect("service");
    let queued = || async { svc.enqueue(&order_placed()).await.expect("enqueue") };
    assert_eq!(queued().await, 0, "no endpoint yet");

    let admin = admin();
    let endpoint = svc
        .create(
            &admin,
            EndpointChange {
                url: Some("https://erp.example.com/hooks".into()),
                event_types: Some(vec!["order.*".into()]),
                ..EndpointChange::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(queued().await, 1, "a new endpoint gets the next event");
    assert_eq!(queued().await, 1, "and the one after, from the endpoints kept");

    let change = |change: EndpointChange| {
        let (svc, admin) = (&svc, &admin);
        async move { svc.update(admin, endpoint.id, change).await.expect("update") }
    };
    change(EndpointChange {
        enabled: Some(false),
        ..EndpointChange::default()
    })
    .await;
    assert_eq!(queued().await, 0, "a disabled endpoint gets nothing");
    change(EndpointChange {
        enabled: Some(true),
        ..EndpointChange::default()
    })
    .await;
    assert_eq!(queued().await, 1, "enabled again");
    change(EndpointChange {
        event_types: Some(vec!["payment.*".into()]),
        ..EndpointChange::default()
    })
    .await;
    assert_eq!(queued().await, 0, "no longer wanted");
    change(EndpointChange {
        event_types: Some(vec!["#".into()]),
        ..EndpointChange::default()
    })
    .await;
    assert_eq!(queued().await, 1, "wanted again");

    svc.delete(&admin, endpoint.id).await.expect("delete");
    assert_eq!(queued().await, 0, "a deleted endpoint gets nothing");
}
