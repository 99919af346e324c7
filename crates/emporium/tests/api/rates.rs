//! Display currencies: the exchange rates admins keep, and the bad input they are refused for.

use serde_json::json;
use test_support::app::TestApp;
use test_support::requests::*;

on_both_backends!(rates_are_kept_by_staff_read_by_anyone_and_checked_field_by_field);

const RATES: &str = "/api/v1/catalog/rates";

async fn delete(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn rates_are_kept_by_staff_read_by_anyone_and_checked_field_by_field(app: TestApp) {
    let admin = app.admin().await;
    let shopper = app.signed_up("rates@example.com").await;
    assert_eq!(app.get_json(RATES).await, json!({"base": "EUR", "rates": []}));

    let usd = app.url(&format!("{RATES}/usd"));
    let set = json_of(
        app.put_json(&usd, &admin.access, json!({"rate": "1.0856", "as_of": "2026-12-03"}))
            .await,
        200,
    )
    .await;
    assert_eq!(set, json!({"currency": "USD", "rate": "1.0856", "as_of": "2026-12-03"}));
    let kwd = app.url(&format!("{RATES}/KWD"));
    json_of(
        app.put_json(&kwd, &admin.access, json!({"rate": "0.3321", "as_of": "2026-12-03"}))
            .await,
        200,
    )
    .await;
    let all = app.get_json(RATES).await;
    assert_eq!(all["rates"][0]["currency"], "KWD", "{all}");
    assert_eq!(all["rates"][1], set, "{all}");

    for (currency, body, fields) in [
        (
            "XYZ",
            json!({"rate": "0", "as_of": "2026-02-30"}),
            vec!["currency", "rate", "as_of"],
        ),
        ("EUR", json!({"rate": "1", "as_of": "2026-12-01"}), vec!["currency"]),
        ("USD", json!({}), vec!["rate", "as_of"]),
        (
            "USD",
            json!({"rate": "-1.2", "as_of": "2999-01-01"}),
            vec!["rate", "as_of"],
        ),
        ("USD", json!({"rate": "1.1234567", "as_of": "2026-12-01"}), vec!["rate"]),
    ] {
        let url = app.url(&format!("{RATES}/{currency}"));
        let problem = assert_problem(app.put_json(&url, &admin.access, body.clone()).await, 422).await;
        assert_eq!(problem_fields(&problem), fields, "{currency} {body}");
    }
    // A float cannot carry a rate exactly: refused, as is an unknown field.
    for body in [
        json!({"rate": 1.0856, "as_of": "2026-12-03"}),
        json!({"rate": "1", "as_of": "2026-12-03", "x": 1}),
    ] {
        let r = app.put_json(&usd, &admin.access, body.clone()).await;
        assert!(r.status().is_client_error(), "{body}: {}", r.status());
    }
    assert_eq!(app.get_json(RATES).await, all, "nothing changed by refused writes");

    assert_problem(
        app.put_json(&usd, &shopper.access, json!({"rate": "2", "as_of": "2026-12-03"}))
            .await,
        403,
    )
    .await;
    let anonymous = app
        .client
        .put(&usd)
        .json(&json!({"rate": "2"}))
        .send()
        .await
        .expect("request");
    assert_problem(anonymous, 401).await;

    assert_eq!(delete(&app, &format!("{RATES}/USD"), &admin.access).await.status(), 204);
    assert_problem(delete(&app, &format!("{RATES}/USD"), &admin.access).await, 404).await;
    let problem = assert_problem(delete(&app, &format!("{RATES}/dollars"), &admin.access).await, 422).await;
    assert_eq!(problem_fields(&problem), ["currency"]);
    assert_problem(delete(&app, &format!("{RATES}/KWD"), &shopper.access).await, 403).await;
    assert_eq!(app.get_json(RATES).await["rates"].as_array().map(Vec::len), Some(1));
}
