//! The delivery pipeline against a REAL SMTP server (tests/smtp_sink.py, aiosmtpd), on SQLite and,
//! when reachable, PostgreSQL: every kind rendered and delivered, redelivered events sent once,
//! an SMTP outage retried until the server is back, dead letters after the last attempt and their
//! admin retry, two replicas never sending a message twice.

use contracts::events::Event as _;
use contracts::events::identity::{EmailVerificationRequested, PasswordResetRequested, UserRegistered, UserUpdated};
use contracts::events::inventory::StockLow;
use contracts::events::ordering::{
    OrderCancelled, OrderConfirmed, OrderDelivered, OrderPaymentFailed, OrderPaymentPending, OrderPlaced,
    OrderRefunded, OrderShipped,
};
use std::sync::Arc;
use std::time::Duration;

use notifications::domain::{DeliveryStatus, EmailAddress, Kind, PreferencesChange};
use notifications::store::{Delivery, DeliveryFilter};
use notifications::{MailTransport, NotificationService, NotificationsConfig, SmtpSettings};
use platform::auth::{AUDIENCE, AccessClaims, AuthUser, ISSUER};
use platform::db::Db;
use platform::dev_mailbox::DevMailbox;
use platform::events::Event;
use serde_json::{Value, json};
use test_support::smtp::SmtpSink;
use test_support::{Backend, TestDb};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn user(role: &str, id: Uuid) -> AuthUser {
    AuthUser(AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: id,
        sid: Uuid::now_v7(),
        role: role.into(),
        iat: 0,
        exp: i64::MAX,
        jti: Uuid::now_v7(),
    })
}

/// Notifications' database on `backend` for one test (`None`: PostgreSQL skipped).
async fn db(backend: Backend) -> Option<TestDb> {
    TestDb::open(backend, "notifications").await
}

test_support::on_both_backends!(
    super::db =>
    every_kind_is_delivered_over_smtp,
    a_redelivered_event_is_sent_once,
    smtp_outage_is_retried_until_the_server_is_back,
    dead_after_the_last_attempt_then_admin_retry,
    unknown_recipient_is_retryable_until_registered,
    two_replicas_send_each_message_once,
    dev_mailbox_gets_the_text_with_the_token_line,
);

fn test_config(alerts: &[&str]) -> NotificationsConfig {
    NotificationsConfig {
        public_url: "https://shop.example".into(),
        retry_base: Duration::from_millis(50),
        poll_interval: Duration::from_millis(20),
        alert_emails: alerts
            .iter()
            .map(|a| EmailAddress::parse(a).expect("address"))
            .collect(),
        ..NotificationsConfig::default()
    }
}

async fn service(db: &Db, config: NotificationsConfig, transport: MailTransport) -> Arc<NotificationService> {
    notifications::migrate(db).await.expect("migrate");
    Arc::new(NotificationService::new(notifications::store::open(db), config, &transport).expect("service"))
}

fn smtp(sink: &SmtpSink) -> MailTransport {
    MailTransport::Smtp(SmtpSettings::from_url(&sink.url()).expect("url"))
}

fn event(event_type: &str, data: Value) -> Event {
    Event::new("test", event_type, "subject", data)
}

fn registered(id: Uuid, email: &str) -> Event {
    event(
        UserRegistered::TYPE,
        json!({"user_id": id, "email": email, "name": "Ann Example"}),
    )
}

fn order_event(event_type: &str, user: Uuid, extra: Value) -> Event {
    let mut data = json!({"order_id": Uuid::now_v7(), "number": "EMP-000042", "user_id": user, "currency": "EUR",
        "total": 2875, "lines": [{"sku": "MUG-1", "product_id": Uuid::now_v7(), "name": "Mug", "quantity": 2,
        "unit_price": 1000, "line_total": 2000}]});
    if let (Some(d), Value::Object(more)) = (data.as_object_mut(), extra) {
        d.extend(more);
    }
    event(event_type, data)
}

async fn handle(svc: &NotificationService, e: &Event) {
    svc.handle_event(e)
        .await
        .unwrap_or_else(|err| panic!("handling {}: {err}", e.event_type));
}

async fn deliveries(svc: &NotificationService, filter: DeliveryFilter) -> Vec<Delivery> {
    svc.deliveries(&user("admin", Uuid::now_v7()), &filter, 200)
        .await
        .expect("list")
}

/// Polls the log until `check` holds for the rows matching `filter` (panics after [`WAIT`]).
async fn wait_until(
    svc: &NotificationService,
    filter: DeliveryFilter,
    what: &str,
    check: impl Fn(&[Delivery]) -> bool,
) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = deliveries(svc, filter.clone()).await;
        if check(&rows) {
            return rows;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out waiting until {what}: {rows:#?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn token() -> String {
    // 43 characters, like identity's base64url tokens.
    "Tk".repeat(21) + "x"
}

async fn every_kind_is_delivered_over_smtp(t: TestDb) {
    let Some(sink) = SmtpSink::start().await else { return };
    let svc = service(
        &t.db,
        test_config(&["ops@shop.example", "quiet@shop.example"]),
        smtp(&sink),
    )
    .await;
    let ann = Uuid::now_v7();
    let quiet = Uuid::now_v7();
    handle(&svc, &registered(ann, "ann@example.com")).await;
    handle(&svc, &registered(quiet, "quiet@shop.example")).await;
    // A staff member who switched low-stock alerts off gets none, though listed in the config.
    svc.update_preferences(
        &user("admin", quiet),
        &PreferencesChange {
            low_stock_alerts: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("preferences");
    let token = token();
    let token_data = json!({"user_id": ann, "email": "ann@example.com", "name": "Ann Example", "token": token,
        "expires_at": "2030-01-01T00:00:00Z", "ttl_seconds": 86_400});
    handle(&svc, &event(EmailVerificationRequested::TYPE, token_data.clone())).await;
    let mut reset = token_data.clone();
    reset["ttl_seconds"] = json!(1800);
    handle(&svc, &event(PasswordResetRequested::TYPE, reset)).await;
    handle(
        &svc,
        &order_event(
            OrderPaymentPending::TYPE,
            ann,
            json!({"subtotal": 2000, "shipping": 495, "tax": 380}),
        ),
    )
    .await;
    handle(&svc, &order_event(OrderConfirmed::TYPE, ann, json!({}))).await;
    handle(
        &svc,
        &order_event(
            OrderShipped::TYPE,
            ann,
            json!({"carrier": "DHL", "tracking_number": "JD014600003"}),
        ),
    )
    .await;
    handle(
        &svc,
        &order_event(
            OrderCancelled::TYPE,
            ann,
            json!({"reason": "customer request", "refunded_amount": 2875}),
        ),
    )
    .await;
    handle(
        &svc,
        &order_event(
            OrderRefunded::TYPE,
            ann,
            json!({"amount": 500, "total_refunded": 500, "full": false}),
        ),
    )
    .await;
    handle(
        &svc,
        &event(StockLow::TYPE, json!({"sku": "MUG-1", "available": 2, "threshold": 5})),
    )
    .await;
    handle(
        &svc,
        &order_event(OrderPaymentFailed::TYPE, ann, json!({"reason": "card_declined"})),
    )
    .await;
    handle(&svc, &order_event(OrderDelivered::TYPE, ann, json!({}))).await;
    // Placing alone mails nothing (the payment's outcome, pending or settled, does).
    handle(&svc, &order_event(OrderPlaced::TYPE, ann, json!({}))).await;

    let _worker = notifications::spawn_worker(Arc::downgrade(&svc));
    let messages = sink.wait_for(10, WAIT).await;
    let subject_of = |to: &str, prefix: &str| -> Value {
        messages
            .iter()
            .find(|m| m["to"][0] == to && m["subject"].as_str().is_some_and(|s| s.starts_with(prefix)))
            .cloned()
            .unwrap_or_else(|| panic!("no {prefix:?} message to {to}: {messages:#?}"))
    };
    let verify = subject_of("ann@example.com", "Confirm your e-mail address");
    assert_eq!(verify["from"], "Emporium <no-reply@emporium.local>");
    let text = verify["text"].as_str().expect("text part");
    let token_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 43 && !l.contains(' '))
        .collect();
    assert_eq!(token_lines, vec![token.as_str()], "{text}");
    assert!(text.contains("https://shop.example/api/v1/auth/verify-email"));
    assert!(text.contains("It expires in 24 hours"));
    assert!(verify["html"].as_str().expect("html part").contains(&token));
    let reset = subject_of("ann@example.com", "Reset your password");
    assert!(
        reset["text"]
            .as_str()
            .expect("text")
            .contains("It expires in 30 minutes")
    );
    let placed = subject_of("ann@example.com", "Order EMP-000042 received");
    assert!(
        placed["text"].as_str().expect("text").contains("Total: 28.75 EUR"),
        "{placed:#}"
    );
    assert!(placed["html"].as_str().expect("html").contains("Mug"));
    subject_of("ann@example.com", "Order EMP-000042 confirmed");
    let shipped = subject_of("ann@example.com", "Order EMP-000042 has shipped");
    assert!(shipped["text"].as_str().expect("text").contains("Carrier: DHL"));
    assert!(
        shipped["text"]
            .as_str()
            .expect("text")
            .contains("Tracking number: JD014600003")
    );
    assert!(shipped["html"].as_str().expect("html").contains("JD014600003"));
    let cancelled = subject_of("ann@example.com", "Order EMP-000042 cancelled");
    assert!(
        cancelled["text"]
            .as_str()
            .expect("text")
            .contains("We are refunding 28.75 EUR")
    );
    let refund = subject_of("ann@example.com", "Refund for order EMP-000042");
    assert!(
        refund["text"]
            .as_str()
            .expect("text")
            .contains("we have refunded 5.00 EUR")
    );
    let alert = subject_of("ops@shop.example", "Low stock: MUG-1");
    assert!(
        alert["text"]
            .as_str()
            .expect("text")
            .contains("Only 2 unit(s) of MUG-1")
    );
    assert!(sink.messages_to("quiet@shop.example").is_empty(), "opted out of alerts");
    let failed = subject_of("ann@example.com", "Payment for order EMP-000042 failed");
    let text = failed["text"].as_str().expect("text");
    assert!(text.contains("Nothing was charged"), "{text}");
    assert!(text.contains("https://shop.example/cart"), "{text}");
    // minijinja escapes `/` in values as `&#x2f;` (decoded by every mail client).
    let html = failed["html"].as_str().expect("html").replace("&#x2f;", "/");
    assert!(html.contains(r#"href="https://shop.example/cart""#), "{html}");
    let delivered = subject_of("ann@example.com", "Order EMP-000042 has been delivered");
    assert!(
        delivered["text"]
            .as_str()
            .expect("text")
            .contains("https://shop.example/orders/"),
        "{delivered:#}"
    );

    // The log says sent, with the Message-ID the server saw; token bodies are erased once sent.
    let log = wait_until(&svc, DeliveryFilter::default(), "all sent", |rows| {
        rows.len() == 10 && rows.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    for d in &log {
        let m = messages
            .iter()
            .find(|m| m["message_id"] == d.message_id.as_str())
            .unwrap_or_else(|| panic!("no message with id {}", d.message_id));
        assert_eq!(m["to"][0], d.recipient.as_str());
        assert_eq!(d.attempts, 1);
        assert!(d.sent_at.is_some());
        assert_eq!(d.text_body.is_empty(), d.kind.carries_secret(), "{:?}", d.kind);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 10, "nothing sent twice");
}

async fn a_redelivered_event_is_sent_once(t: TestDb) {
    let Some(sink) = SmtpSink::start().await else { return };
    let svc = service(&t.db, test_config(&[]), smtp(&sink)).await;
    let ann = Uuid::now_v7();
    handle(&svc, &registered(ann, "ann@example.com")).await;
    let shipped = order_event(
        OrderShipped::TYPE,
        ann,
        json!({"carrier": "UPS", "tracking_number": "1Z"}),
    );
    // The bus delivers at least once: the same event again, and several copies at the same time.
    handle(&svc, &shipped).await;
    let copies = (0..5).map(|_| {
        let svc = svc.clone();
        let e = shipped.clone();
        tokio::spawn(async move { svc.handle_event(&e).await.map_err(|e| e.to_string()) })
    });
    for r in futures::future::join_all(copies).await {
        r.expect("task").expect("handled");
    }
    let filter = DeliveryFilter {
        event_id: Some(shipped.id),
        ..Default::default()
    };
    assert_eq!(deliveries(&svc, filter.clone()).await.len(), 1);
    let _worker = notifications::spawn_worker(Arc::downgrade(&svc));
    sink.wait_for(1, WAIT).await;
    wait_until(&svc, filter, "sent", |rows| {
        rows.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    // Redelivered after it was sent: still nothing new.
    handle(&svc, &shipped).await;
    // Nor after Ann changed her address: the mail is once per user, not once per address.
    let moved = json!({"user_id": ann, "email": "ann@new.example.com", "name": "Ann Example"});
    handle(&svc, &event(UserUpdated::TYPE, moved)).await;
    handle(&svc, &shipped).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.messages().len(), 1);
    let logged = DeliveryFilter {
        event_id: Some(shipped.id),
        ..Default::default()
    };
    assert_eq!(deliveries(&svc, logged).await.len(), 1);
}

async fn smtp_outage_is_retried_until_the_server_is_back(t: TestDb) {
    let Some(mut sink) = SmtpSink::start().await else {
        return;
    };
    let mut config = test_config(&[]);
    config.max_attempts = 50;
    let svc = service(&t.db, config, smtp(&sink)).await;
    sink.stop().await;
    let ann = Uuid::now_v7();
    handle(&svc, &registered(ann, "ann@example.com")).await;
    handle(&svc, &order_event(OrderConfirmed::TYPE, ann, json!({}))).await;
    let _worker = notifications::spawn_worker(Arc::downgrade(&svc));
    let failing = wait_until(&svc, DeliveryFilter::default(), "two failed attempts", |rows| {
        rows.len() == 1 && rows[0].status == DeliveryStatus::Failed && rows[0].attempts >= 2
    })
    .await;
    assert!(
        failing[0].last_error.as_deref().is_some_and(|e| e.contains("SMTP")),
        "{failing:?}"
    );
    let failed_view = svc
        .delivery(&user("support", Uuid::now_v7()), failing[0].id)
        .await
        .expect("get");
    assert_eq!(failed_view.status, DeliveryStatus::Failed);

    sink.restart().await;
    let messages = sink.wait_for(1, WAIT).await;
    assert_eq!(messages[0]["to"][0], "ann@example.com");
    let sent = wait_until(&svc, DeliveryFilter::default(), "sent", |rows| {
        rows[0].status == DeliveryStatus::Sent
    })
    .await;
    assert!(sent[0].attempts >= 3, "{sent:?}");
    assert_eq!(sent[0].last_error, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
}

async fn dead_after_the_last_attempt_then_admin_retry(t: TestDb) {
    let Some(mut sink) = SmtpSink::start().await else {
        return;
    };
    let mut config = test_config(&[]);
    config.max_attempts = 3;
    config.retry_base = Duration::from_millis(20);
    let svc = service(&t.db, config, smtp(&sink)).await;
    sink.stop().await;
    let ann = Uuid::now_v7();
    handle(&svc, &registered(ann, "ann@example.com")).await;
    handle(&svc, &order_event(OrderPaymentPending::TYPE, ann, json!({}))).await;
    let _worker = notifications::spawn_worker(Arc::downgrade(&svc));
    let dead = wait_until(&svc, DeliveryFilter::default(), "dead", |rows| {
        rows.len() == 1 && rows[0].status == DeliveryStatus::Dead
    })
    .await;
    assert_eq!(dead[0].attempts, 3);
    // Dead is final: no further attempts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still = deliveries(&svc, DeliveryFilter::default()).await;
    assert_eq!((still[0].status, still[0].attempts), (DeliveryStatus::Dead, 3));
    let by_status = deliveries(
        &svc,
        DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            kind: Some(Kind::OrderPlaced),
            to: Some("ANN@example.com".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_status.len(), 1);

    // Only admins resend, only dead messages.
    let id = dead[0].id;
    let refused = svc
        .retry(&user("support", Uuid::now_v7()), id)
        .await
        .expect_err("support");
    assert_eq!(refused.status, 403);
    let missing = svc
        .retry(&user("admin", Uuid::now_v7()), Uuid::now_v7())
        .await
        .expect_err("unknown");
    assert_eq!(missing.status, 404);
    sink.restart().await;
    let again = svc.retry(&user("admin", Uuid::now_v7()), id).await.expect("retry");
    assert_eq!((again.status, again.attempts), (DeliveryStatus::Pending, 0));
    sink.wait_for(1, WAIT).await;
    wait_until(&svc, DeliveryFilter::default(), "sent", |rows| {
        rows[0].status == DeliveryStatus::Sent
    })
    .await;
    let twice = svc
        .retry(&user("admin", Uuid::now_v7()), id)
        .await
        .expect_err("not dead");
    assert_eq!(twice.status, 409);
}

async fn unknown_recipient_is_retryable_until_registered(t: TestDb) {
    let svc = service(&t.db, test_config(&[]), MailTransport::DevMailbox(DevMailbox::new())).await;
    let ann = Uuid::now_v7();
    let placed = order_event(OrderPaymentPending::TYPE, ann, json!({}));
    let err = svc.handle_event(&placed).await.expect_err("unknown user");
    assert!(!err.is_permanent(), "{err}");
    assert!(err.to_string().contains(&ann.to_string()));
    let malformed = event(OrderPaymentPending::TYPE, json!({"number": 1}));
    assert!(
        svc.handle_event(&malformed)
            .await
            .expect_err("malformed")
            .is_permanent()
    );
    handle(&svc, &registered(ann, "ann@example.com")).await;
    handle(&svc, &placed).await;
    assert_eq!(deliveries(&svc, DeliveryFilter::default()).await.len(), 1);
}

async fn two_replicas_send_each_message_once(t: TestDb) {
    let Some(sink) = SmtpSink::start().await else { return };
    let a = service(&t.db, test_config(&[]), smtp(&sink)).await;
    let b = service(&t.db, test_config(&[]), smtp(&sink)).await;
    const N: usize = 40;
    for i in 0..N {
        let u = Uuid::now_v7();
        handle(&a, &registered(u, &format!("user{i}@example.com"))).await;
        handle(&b, &order_event(OrderConfirmed::TYPE, u, json!({}))).await;
    }
    let _wa = notifications::spawn_worker(Arc::downgrade(&a));
    let _wb = notifications::spawn_worker(Arc::downgrade(&b));
    let messages = sink.wait_for(N, WAIT).await;
    wait_until(&a, DeliveryFilter::default(), "all sent", |rows| {
        rows.len() == N && rows.iter().all(|d| d.status == DeliveryStatus::Sent)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = if sink.messages().len() == messages.len() {
        messages
    } else {
        sink.messages()
    };
    let mut ids: Vec<&str> = messages.iter().filter_map(|m| m["message_id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((messages.len(), ids.len()), (N, N), "each message exactly once");
}

async fn dev_mailbox_gets_the_text_with_the_token_line(t: TestDb) {
    let mailbox = DevMailbox::new();
    let svc = service(&t.db, test_config(&[]), MailTransport::DevMailbox(mailbox.clone())).await;
    let ann = Uuid::now_v7();
    let token = token();
    handle(
        &svc,
        &event(
            EmailVerificationRequested::TYPE,
            json!({"user_id": ann, "email": "ann@example.com", "name": "Ann", "token": token, "ttl_seconds": 86_400}),
        ),
    )
    .await;
    assert_eq!(svc.deliver_due().await.expect("deliver"), 1);
    let messages = mailbox.list(Some("ann@example.com"));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject, "Confirm your e-mail address");
    let line = messages[0]
        .body
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 43 && !l.contains(' '));
    assert_eq!(line, Some(token.as_str()));
    assert_eq!(svc.deliver_due().await.expect("deliver"), 0, "sent once");
    let store = notifications::store::open(&t.db);
    assert_eq!(store.unsent_count().await.expect("count"), 0);
}
