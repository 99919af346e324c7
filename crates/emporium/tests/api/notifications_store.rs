//! The delivery log's record of sent mail (`NotificationStore::mark_sent`), run against both
//! backends: a batch of claimed rows is recorded in one call, the bodies of mail that carried a
//! secret are erased, and a claim that no longer holds records nothing.

use notifications::domain::{DeliveryStatus, Kind};
use notifications::store::{NewDelivery, Sent};
use platform::db::Db;
use time::OffsetDateTime;
use uuid::Uuid;

use test_support::{Backend, TestDb};

store_suite!(sent_mail_is_recorded_in_batches_and_secrets_are_erased);

type Test = fn(Db) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn run(backend: Backend, test: Test) {
    let Some(t) = TestDb::open(backend, "notifications").await else {
        return;
    };
    notifications::migrate(&t.db).await.expect("migrate");
    test(t.db.clone()).await;
    t.db.close().await;
}

/// Whole seconds: what both backends store exactly.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).expect("now")
}

fn delivery(kind: Kind, at: OffsetDateTime) -> NewDelivery {
    let id = Uuid::now_v7();
    NewDelivery {
        id,
        event_id: Uuid::now_v7(),
        event_type: "test.event".into(),
        kind,
        recipient: "ann@example.com".into(),
        user_id: None,
        subject: "Subject".into(),
        text_body: "text with a one-time link".into(),
        html_body: "<p>html with a one-time link</p>".into(),
        message_id: format!("<{}@example.com>", id.simple()),
        created_at: at,
        due_ms: at.unix_timestamp() * 1000,
    }
}

async fn sent_mail_is_recorded_in_batches_and_secrets_are_erased(db: Db) {
    let store = notifications::store::open(&db);
    let at = now();
    let ms = at.unix_timestamp() * 1000;
    let rows = [
        delivery(Kind::OrderConfirmed, at),
        delivery(Kind::PasswordReset, at),
        delivery(Kind::OrderShipped, at),
    ];
    assert_eq!(store.insert_deliveries(&rows).await.expect("insert"), 3);
    let (claim, claimed) = store.claim_due(ms, 60_000, 10, at).await.expect("claim");
    assert_eq!(claimed.len(), 3);

    // A claim that does not hold (another worker's, or one whose lease ran out) records nothing.
    let all: Vec<Sent> = rows
        .iter()
        .map(|r| Sent {
            id: r.id,
            scrub: r.kind.carries_secret(),
        })
        .collect();
    let stale = store.mark_sent(&all, Uuid::now_v7(), at).await.expect("mark");
    assert!(stale.is_empty(), "{stale:?}");

    // The first two in one call, a plain mail and a secret one; the third stays claimed.
    let mut recorded = store.mark_sent(&all[..2], claim, at).await.expect("mark");
    recorded.sort();
    let mut expected = vec![rows[0].id, rows[1].id];
    expected.sort();
    assert_eq!(recorded, expected);
    for (row, erased) in [(&rows[0], false), (&rows[1], true)] {
        let d = store.delivery(row.id).await.expect("read").expect("row");
        assert_eq!((d.status, d.attempts, d.sent_at), (DeliveryStatus::Sent, 1, Some(at)));
        assert_eq!(d.text_body.is_empty(), erased, "{:?}", d.kind);
        assert_eq!(d.html_body.is_empty(), erased, "{:?}", d.kind);
    }
    let pending = store.delivery(rows[2].id).await.expect("read").expect("row");
    assert_eq!((pending.status, pending.attempts), (DeliveryStatus::Pending, 0));

    // Recorded once: the claim was released with the record.
    let again = store.mark_sent(&all[..2], claim, at).await.expect("mark");
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(
        store.mark_sent(&all[2..], claim, at).await.expect("mark"),
        vec![rows[2].id]
    );
}
