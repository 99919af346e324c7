//! Erasure and export across every context (GDPR articles 15, 17 and 20), on both backends: an
//! export holds every order, review, address, card, cart and mail of its owner, in one archive;
//! after an erasure no table of any context's database holds the person's e-mail, name or
//! street, while their orders still add up and their reviews stay, by "a former customer".

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use test_support::app::{LoggedIn, PASSWORD, TestApp};
use test_support::requests::{assert_problem, json_of, post_auth, product};
use test_support::shop::{SUCCESS_CARD, card, place, wait_for_status};

test_support::on_both_backends!(
    an_export_holds_everything_and_an_erasure_leaves_no_trace,
    administrators_erase_and_export_on_request_and_the_audit_log_says_so,
    steps_reported_at_once_complete_the_erasure_exactly_once,
);

const NAME: &str = "Zelinda Quartermaine";
const STREET: &str = "Erasurelane 77";

async fn wait_for<F, Fut>(what: &str, secs: u64, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} did not happen within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A customer with a changed name, a saved address, a card, a confirmed order, a review, a cart
/// and mail; answers them with the order.
async fn customer_with_history(app: &TestApp, admin: &LoggedIn, email: &str, sku: &str) -> (LoggedIn, Value, String) {
    let product_id = product(app, &admin.access, sku, 1500, 10).await;
    let user = app.signed_up(email).await;
    // The new name reaches notifications (`identity.user.updated`): the order mail uses it.
    let r = app
        .put_json(&app.url("/api/v1/users/me"), &user.access, json!({"name": NAME}))
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let address = json!({"name": NAME, "line1": STREET, "city": "Berlin", "postal_code": "10115", "country": "DE"});
    let r = post_auth(
        app,
        "/api/v1/users/me/addresses",
        &user.access,
        json!({"label": "Home", "address": address}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = app
        .put_json(
            &app.url("/api/v1/notifications/preferences"),
            &user.access,
            json!({"marketing": true}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let pm = card(app, &user.access, SUCCESS_CARD).await;
    let body = json!({"items": [{"sku": sku, "quantity": 2}], "shipping_address": address,
        "shipping_method": "standard", "payment_method": pm});
    let placed = json_of(place(app, &user.access, &format!("{email}-order"), &body).await, 201).await;
    let order_id = placed["id"].as_str().expect("order id").to_owned();
    let order = wait_for_status(app, &user.access, &order_id, "confirmed", 20).await;
    let r = post_auth(
        app,
        &format!("/api/v1/catalog/products/{product_id}/reviews"),
        &user.access,
        json!({"rating": 4, "title": "Sturdy and plain", "body": "Bought two."}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = post_auth(
        app,
        "/api/v1/cart/items",
        &user.access,
        json!({"sku": sku, "quantity": 1}),
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let mails = app.wait_for_mail(email, 2).await;
    assert!(
        mails.iter().any(|m| m.text.contains(NAME)),
        "the order mail greets the new name"
    );
    (user, order, product_id)
}

/// The archive's files, by name, as JSON.
fn unpack(bytes: &[u8]) -> BTreeMap<String, Value> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = BTreeMap::new();
    for entry in tar.entries().expect("a tar.gz") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("utf-8");
        files.insert(name, serde_json::from_str(&text).expect("json"));
    }
    files
}

/// Prints the latest state polled, so a timeout shows where it stopped.
fn tracing_last(what: &str, v: &Value) {
    println!("{what}: {v}");
}

async fn export_ready(app: &TestApp, token: &str) -> Value {
    wait_for("the export", 30, || async {
        let list = json_of(app.get_auth("/api/v1/users/me/exports", token).await, 200).await;
        let newest = list["items"][0].clone();
        tracing_last("export", &newest);
        (newest["status"] == "ready").then_some(newest)
    })
    .await
}

async fn erasure_complete(app: &TestApp, admin: &str, user: &str) -> Value {
    wait_for("the erasure", 30, || async {
        let r = app.get_auth(&format!("/api/v1/users/{user}/erasure"), admin).await;
        if r.status() != 200 {
            return None;
        }
        let report: Value = r.json().await.expect("json");
        tracing_last("erasure", &report);
        (report["complete"] == true).then_some(report)
    })
    .await
}

async fn an_export_holds_everything_and_an_erasure_leaves_no_trace(backend: test_support::Backend) {
    let Some(app) = test_support::app::spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let email = "zelinda@example.com";
    let (user, order, product_id) = customer_with_history(&app, &admin, email, "GDPR-1").await;
    let number = order["number"].as_str().expect("number");

    // Export: started, then ready once every context answered, mailed, downloadable once ready.
    let started = json_of(
        post_auth(&app, "/api/v1/users/me/export", &user.access, json!({})).await,
        202,
    )
    .await;
    assert!(
        ["preparing", "ready"].contains(&started["status"].as_str().unwrap_or_default()),
        "{started}"
    );
    let ready = export_ready(&app, &user.access).await;
    assert_eq!(ready["id"], started["id"]);
    let mails = app.wait_for_mail(email, 3).await;
    assert!(mails.iter().any(|m| m.subject == "Your data export is ready"), "mailed");
    let download = ready["download"].as_str().expect("download link");
    let r = app.get_auth(download, &user.access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let files = unpack(&r.bytes().await.expect("bytes"));
    let file = |name: &str| {
        files
            .get(&format!("emporium-export/{name}.json"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(file("manifest")["format"], "emporium-export/1");
    assert_eq!(
        file("manifest")["files"].as_array().map(Vec::len),
        Some(6),
        "{}",
        file("manifest")
    );
    assert_eq!(file("identity")["account"]["email"], email);
    assert_eq!(file("identity")["account"]["name"], NAME);
    assert_eq!(file("identity")["addresses"][0]["line1"], STREET);
    let orders = &file("ordering")["orders"];
    assert_eq!(orders[0]["number"], number, "{orders}");
    assert_eq!(orders[0]["total"], order["total"]["amount"]);
    assert_eq!(orders[0]["shipping_address"]["name"], NAME);
    assert_eq!(orders[0]["lines"][0]["quantity"], 2);
    assert_eq!(file("catalog")["reviews"][0]["title"], "Sturdy and plain");
    assert_eq!(file("cart")["cart"]["lines"][0]["sku"], "GDPR-1");
    assert_eq!(file("payments")["cards"][0]["last4"], "4242");
    assert_eq!(file("payments")["payments"][0]["amount"], order["total"]["amount"]);
    assert_eq!(file("notifications")["recipient"]["name"], NAME);
    assert_eq!(file("notifications")["preferences"]["marketing"], true);
    assert!(file("notifications")["mails"].as_array().is_some_and(|m| !m.is_empty()));
    let no_card_number = files.values().all(|v| !v.to_string().contains(SUCCESS_CARD));
    assert!(no_card_number, "the export holds no card number");

    // Someone else's export, a malformed id, a non-admin asking for a report.
    let other = app.signed_up("other@example.com").await;
    assert_problem(app.get_auth(download, &other.access).await, 404).await;
    assert_problem(
        app.get_auth("/api/v1/users/me/exports/nope/archive", &user.access)
            .await,
        404,
    )
    .await;
    assert_problem(
        app.get_auth(&format!("/api/v1/users/{}/erasure", user.id), &other.access)
            .await,
        403,
    )
    .await;

    // Erasure by the owner, then every context reports.
    let r = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(&user.access)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    let report = erasure_complete(&app, &admin.access, &user.id).await;
    let contexts: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["context"].as_str())
        .collect();
    for context in ["identity", "cart", "catalog", "ordering", "payments", "notifications"] {
        assert!(contexts.contains(&context), "{context} missing from {report}");
    }
    assert_eq!(report["waiting_for"], json!([]));
    assert_eq!(report["requested_by"], user.id.as_str());

    // No table of any context holds the e-mail, the name or the street.
    let mut found = Vec::new();
    for (service, db) in &app.dbs {
        for needle in [email, NAME, STREET] {
            for (table, rows) in test_support::db::tables_containing(db, needle).await {
                found.push(format!("{service:?}.{table}: {rows} row(s) with {needle:?}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "personal data left after erasure:\n{}",
        found.join("\n")
    );

    // The order stays, pseudonymised, and still adds up; the invoice still renders.
    let kept = json_of(
        app.get_auth(
            &format!("/api/v1/orders/{}", order["id"].as_str().unwrap_or_default()),
            &admin.access,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(kept["shipping_address"]["name"], "Former customer");
    assert_eq!(kept["shipping_address"]["country"], "DE");
    let amount = |v: &Value| v["amount"].as_i64().unwrap_or(-1);
    assert_eq!(amount(&kept["total"]), amount(&order["total"]));
    assert_eq!(
        amount(&kept["subtotal"]) - amount(&kept["discount"]) + amount(&kept["shipping"]) + amount(&kept["tax"]),
        amount(&kept["total"]),
        "{kept}"
    );
    let invoice = app
        .get_auth(
            &format!("/api/v1/orders/{}/invoice", order["id"].as_str().unwrap_or_default()),
            &admin.access,
        )
        .await;
    assert_eq!(invoice.status(), 200);
    let invoice = invoice.text().await.expect("invoice");
    assert!(invoice.contains("Former customer") && !invoice.contains(NAME));

    // The review stays, unlinked, by "a former customer".
    let reviews = app
        .get_json(&format!("/api/v1/catalog/products/{product_id}/reviews"))
        .await;
    let review = &reviews["items"][0];
    assert_eq!(review["former_customer"], true, "{reviews}");
    assert_ne!(review["user_id"], user.id.as_str());

    // The account is gone: its token no longer works, a second erasure is refused.
    assert_eq!(app.get_auth("/api/v1/users/me", &user.access).await.status(), 401);
    let again = post_auth(
        &app,
        &format!("/api/v1/users/{}/erase", user.id),
        &admin.access,
        json!({}),
    )
    .await;
    assert_problem(again, 409).await;
}

async fn administrators_erase_and_export_on_request_and_the_audit_log_says_so(backend: test_support::Backend) {
    let Some(app) = test_support::app::spawn_app(backend).await else {
        return;
    };
    let admin = app.admin().await;
    let email = "onrequest@example.com";
    let (user, _, _) = customer_with_history(&app, &admin, email, "GDPR-2").await;

    // Refusals: unknown user, malformed id, the admin's own account, a customer calling.
    let unknown = uuid::Uuid::now_v7();
    assert_problem(
        post_auth(
            &app,
            &format!("/api/v1/users/{unknown}/export"),
            &admin.access,
            json!({}),
        )
        .await,
        404,
    )
    .await;
    assert_problem(
        post_auth(&app, "/api/v1/users/xyz/erase", &admin.access, json!({})).await,
        404,
    )
    .await;
    assert_problem(
        post_auth(
            &app,
            &format!("/api/v1/users/{}/erase", admin.id),
            &admin.access,
            json!({}),
        )
        .await,
        409,
    )
    .await;
    assert_problem(
        post_auth(
            &app,
            &format!("/api/v1/users/{}/erase", user.id),
            &user.access,
            json!({}),
        )
        .await,
        403,
    )
    .await;

    // An export on request: the owner is mailed and downloads it; a second one waits its turn.
    let started = json_of(
        post_auth(
            &app,
            &format!("/api/v1/users/{}/export", user.id),
            &admin.access,
            json!({}),
        )
        .await,
        202,
    )
    .await;
    let ready = export_ready(&app, &user.access).await;
    assert_eq!(ready["id"], started["id"]);
    let listed = json_of(
        app.get_auth(&format!("/api/v1/users/{}/exports", user.id), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(listed["items"][0]["status"], "ready");
    app.wait_for_mail(email, 3).await;

    // An erasure on request, reported context by context.
    let report = json_of(
        post_auth(
            &app,
            &format!("/api/v1/users/{}/erase", user.id),
            &admin.access,
            json!({}),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(report["steps"][0]["context"], "identity");
    let report = erasure_complete(&app, &admin.access, &user.id).await;
    assert_eq!(report["requested_by"], json!(admin.id.as_str()));
    // The export is gone with the account.
    let listed = json_of(
        app.get_auth(&format!("/api/v1/users/{}/exports", user.id), &admin.access)
            .await,
        200,
    )
    .await;
    assert_eq!(listed["items"], json!([]));

    let audit = json_of(
        app.get_auth(&format!("/api/v1/auth/audit-events?user_id={}", user.id), &admin.access)
            .await,
        200,
    )
    .await;
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for kind in ["privacy.export_requested", "user.deleted", "privacy.erasure_completed"] {
        assert!(kinds.contains(&kind), "{kind} not in {kinds:?}");
    }
    let deleted = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "user.deleted")
        .cloned()
        .unwrap_or_default();
    assert_eq!(deleted["actor_id"], json!(admin.id.as_str()), "{deleted}");
}

/// The five contexts answer an erasure at about the same moment: whichever step lands last must
/// see the others and mark the erasure complete (each seeing the other missing would leave it
/// incomplete for ever).
async fn steps_reported_at_once_complete_the_erasure_exactly_once(backend: test_support::Backend) {
    use identity::privacy::store::{AccountErasure, ErasureStepRecord};
    let Some(t) = test_support::TestDb::open(backend, "identity").await else {
        return;
    };
    identity::migrate(&t.db).await.expect("migrate");
    let users = identity::store::open(&t.db);
    let privacy = identity::privacy::store::open(&t.db);
    let contexts = contracts::events::privacy::CONTEXTS_WITH_PERSONAL_DATA;
    for round in 0..20 {
        let now = time::OffsetDateTime::now_utc();
        let user = identity::store::User {
            id: identity::domain::UserId::new(),
            email: format!("race{round}@example.com"),
            name: "Racer".into(),
            password_hash: "!".into(),
            role: identity::domain::Role::Customer,
            status: identity::domain::UserStatus::Active,
            email_verified_at: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        users.insert_user(&user, &[]).await.expect("user");
        let erasure = AccountErasure {
            user_id: user.id.0,
            email: &user.email,
            placeholder_email: &format!("deleted-{}@invalid", user.id),
            requested_by: user.id.0,
            at: now,
        };
        privacy.erase_account(&erasure, &[]).await.expect("erase");
        let completions = futures::future::join_all(contexts.iter().map(|context| {
            let privacy = privacy.clone();
            let step = ErasureStepRecord {
                context: (*context).to_owned(),
                completed_at: time::OffsetDateTime::now_utc(),
                summary: "done".into(),
            };
            let user = user.id.0;
            async move { privacy.record_erasure_step(user, &step, contexts).await.expect("step") }
        }))
        .await;
        assert_eq!(
            completions.iter().filter(|c| **c).count(),
            1,
            "round {round}: {completions:?}"
        );
        let record = privacy.erasure(user.id.0).await.expect("read").expect("erasure");
        assert!(
            record.completed_at.is_some() && record.steps.len() == contexts.len(),
            "round {round}"
        );
    }
    t.db.close().await;
}
