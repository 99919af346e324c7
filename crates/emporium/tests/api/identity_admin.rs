//! Administration: users, roles, status, the audit log, signing keys; on both backends.

use serde_json::{Value, json};

use test_support::app::{PASSWORD, TestApp};
use test_support::requests::{assert_problem, problem_fields};

on_both_backends!(
    admin_lists_and_filters_users_with_cursor_pagination,
    non_admins_get_403_on_every_admin_endpoint,
    role_changes_apply_at_next_login_and_are_audited,
    disabling_an_account_ends_its_sessions_and_blocks_login,
    admins_cannot_lock_themselves_out,
    audit_log_is_filterable,
    signing_key_rotation_keeps_old_tokens_valid,
    revoked_tokens_stop_working_in_every_context,
);

async fn admin_lists_and_filters_users_with_cursor_pagination(app: TestApp) {
    let admin = app.admin().await;
    for i in 0..5 {
        assert_eq!(app.register(&format!("shopper{i}@example.com")).await.status(), 202);
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/users?limit=2&email=shopper".to_owned();
    loop {
        let page: Value = app.get_auth(&url, &admin.access).await.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|u| u["email"].as_str().expect("email").to_owned()));
        match page["next"].as_str() {
            Some(next) => url = format!("/api/v1/users?limit=2&email=shopper&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("shopper{i}@example.com")).collect::<Vec<_>>()
    );

    let admins: Value = app
        .get_auth("/api/v1/users?role=admin", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(admins["items"].as_array().expect("items").len(), 1);
    // LIKE wildcards in the filter are taken literally.
    let none: Value = app
        .get_auth("/api/v1/users?email=%25", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["items"].as_array().expect("items").len(), 0);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("cursor=zzz", "cursor"),
        ("role=root", "role"),
        ("sort=x", "sort"),
    ] {
        let r = app.get_auth(&format!("/api/v1/users?{query}"), &admin.access).await;
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem_fields(&problem), [field], "{query}");
    }
    let one = app
        .get_auth(&format!("/api/v1/users/{}", admin.id), &admin.access)
        .await;
    assert_eq!(one.status(), 200);
    assert_problem(
        app.get_auth(&format!("/api/v1/users/{}", uuid::Uuid::now_v7()), &admin.access)
            .await,
        404,
    )
    .await;
}

async fn non_admins_get_403_on_every_admin_endpoint(app: TestApp) {
    let user = app.signed_up("plain@example.com").await;
    let id = &user.id;
    let gets = [
        "/api/v1/users".to_owned(),
        format!("/api/v1/users/{id}"),
        "/api/v1/auth/audit-events".to_owned(),
    ];
    for path in gets {
        assert_problem(app.get_auth(&path, &user.access).await, 403).await;
    }
    let puts = [
        (format!("/api/v1/users/{id}/role"), json!({"role": "admin"})),
        (format!("/api/v1/users/{id}/status"), json!({"status": "disabled"})),
    ];
    for (path, body) in puts {
        let r = app
            .client
            .put(app.url(&path))
            .bearer_auth(&user.access)
            .json(&body)
            .send()
            .await
            .expect("request");
        assert_problem(r, 403).await;
    }
    let r = app
        .client
        .post(app.url("/api/v1/auth/signing-keys/rotate"))
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("request");
    assert_problem(r, 403).await;
    // And without a token at all, 401.
    assert_problem(
        app.client.get(app.url("/api/v1/users")).send().await.expect("request"),
        401,
    )
    .await;
}

async fn role_changes_apply_at_next_login_and_are_audited(app: TestApp) {
    let admin = app.admin().await;
    let user = app.signed_up("promoted@example.com").await;
    let url = app.url(&format!("/api/v1/users/{}/role", user.id));
    let r = app
        .put_json(&url, &admin.access, json!({"role": "catalog_manager"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["role"], "catalog_manager");
    let bad = app.put_json(&url, &admin.access, json!({"role": "emperor"})).await;
    assert_eq!(problem_fields(&assert_problem(bad, 422).await), ["role"]);

    // The old token (role customer) no longer works; a new login carries the new role.
    assert_problem(app.get_auth("/api/v1/users/me", &user.access).await, 401).await;
    let me: Value = {
        let t: Value = app
            .login("promoted@example.com", PASSWORD)
            .await
            .json()
            .await
            .expect("json");
        app.get_auth("/api/v1/users/me", t["access_token"].as_str().expect("access"))
            .await
            .json()
            .await
            .expect("json")
    };
    assert_eq!(me["role"], "catalog_manager");

    let log: Value = app
        .get_auth("/api/v1/auth/audit-events?kind=role.changed", &admin.access)
        .await
        .json()
        .await
        .expect("json");
    let event = &log["items"][0];
    assert_eq!(event["detail"], "customer -> catalog_manager");
    assert_eq!(event["actor_id"], admin.id.as_str());
    assert_eq!(event["user_id"], user.id.as_str());
}

async fn disabling_an_account_ends_its_sessions_and_blocks_login(app: TestApp) {
    let admin = app.admin().await;
    let user = app.signed_up("suspended@example.com").await;
    let url = app.url(&format!("/api/v1/users/{}/status", user.id));
    let r = app.put_json(&url, &admin.access, json!({"status": "disabled"})).await;
    assert_eq!(r.status(), 200);
    assert_problem(app.get_auth("/api/v1/users/me", &user.access).await, 401).await;
    assert_problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": user.refresh}))
            .await,
        401,
    )
    .await;
    let problem = assert_problem(app.login("suspended@example.com", PASSWORD).await, 403).await;
    assert_eq!(problem["type"], "tag:emporium.dev,2026:problem/account-disabled");

    let deleted = app.put_json(&url, &admin.access, json!({"status": "deleted"})).await;
    assert_problem(deleted, 422).await;
    let r = app.put_json(&url, &admin.access, json!({"status": "active"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.login("suspended@example.com", PASSWORD).await.status(), 200);
}

async fn admins_cannot_lock_themselves_out(app: TestApp) {
    let admin = app.admin().await;
    let role = app.url(&format!("/api/v1/users/{}/role", admin.id));
    let r = app.put_json(&role, &admin.access, json!({"role": "customer"})).await;
    assert_problem(r, 409).await;
    let status = app.url(&format!("/api/v1/users/{}/status", admin.id));
    let r = app
        .put_json(&status, &admin.access, json!({"status": "disabled"}))
        .await;
    assert_problem(r, 409).await;
}

async fn audit_log_is_filterable(app: TestApp) {
    let admin = app.admin().await;
    app.signed_up("audited@example.com").await;
    assert_problem(app.login("audited@example.com", "definitely wrong").await, 401).await;

    let get = |q: &str| {
        app.client
            .get(app.url(&format!("/api/v1/auth/audit-events?{q}")))
            .bearer_auth(&admin.access)
            .send()
    };
    let failed: Value = get("kind=login.failed")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let items = failed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["email"], "audited@example.com");
    assert_eq!(items[0]["ip"], "127.0.0.1");

    let mine: Value = get("email=AUDITED@example.com")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let kinds: Vec<&str> = mine["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    // Newest first.
    assert_eq!(
        kinds,
        ["login.failed", "login.succeeded", "email.verified", "user.registered"]
    );

    let paged: Value = get("limit=1").await.expect("request").json().await.expect("json");
    assert!(paged["next"].is_string());
    let future: Value = get("since=2999-01-01T00:00:00Z")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(future["items"].as_array().expect("items").len(), 0);
    let problem = assert_problem(get("since=yesterday").await.expect("request"), 422).await;
    assert_eq!(problem_fields(&problem), ["since"]);
    let problem = assert_problem(
        get("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z")
            .await
            .expect("request"),
        422,
    )
    .await;
    assert_eq!(problem_fields(&problem), ["until"]);
}

async fn signing_key_rotation_keeps_old_tokens_valid(app: TestApp) {
    let admin = app.admin().await;
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(
        keys[0].get("d").is_none(),
        "private key material must never be published"
    );

    let r = app
        .client
        .post(app.url("/api/v1/auth/signing-keys/rotate"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    let new_kid = r.json::<Value>().await.expect("json")["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    assert_ne!(keys[0]["kid"], new_kid.as_str());

    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    assert_eq!(
        jwks["keys"].as_array().expect("keys").len(),
        2,
        "the new key is published at once"
    );
    // A token signed before the rotation still verifies; new ones carry the old kid until the
    // new key has been published for the lead time (120 s by default).
    assert_eq!(app.get_auth("/api/v1/users/me", &admin.access).await.status(), 200);
    let fresh: Value = app.login(&admin.email, PASSWORD).await.json().await.expect("json");
    let header = jsonwebtoken::decode_header(fresh["access_token"].as_str().expect("token")).expect("header");
    assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
}

/// A rotated-in key is published before it signs (so no verifier refuses its tokens), then takes
/// over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_signs_after_its_lead_time() {
    let Some(app) = test_support::app::spawn_app_with(
        test_support::Backend::Sqlite,
        &[("EMPORIUM_SIGNING_KEY_LEAD_SECS", "2")],
        true,
    )
    .await
    else {
        return;
    };
    let admin = app.admin().await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/signing-keys/rotate"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 201);
    let rotated: Value = r.json().await.expect("json");
    let new_kid = rotated["kid"].as_str().expect("kid").to_owned();
    let signs_from = time::OffsetDateTime::parse(
        rotated["signs_from"].as_str().expect("signs_from"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc 3339");
    let kid_now = || async {
        let fresh: Value = app.login(&admin.email, PASSWORD).await.json().await.expect("json");
        jsonwebtoken::decode_header(fresh["access_token"].as_str().expect("token"))
            .expect("header")
            .kid
            .expect("kid")
    };
    assert_ne!(kid_now().await, new_kid, "not during the lead time");
    let wait = signs_from - time::OffsetDateTime::now_utc();
    tokio::time::sleep(std::time::Duration::try_from(wait).unwrap_or_default() + std::time::Duration::from_millis(100))
        .await;
    assert_eq!(kid_now().await, new_kid);
}

/// A token of a disabled user, or of a session that logged out, is refused by the other contexts
/// too, not only by identity, before it expires.
async fn revoked_tokens_stop_working_in_every_context(app: TestApp) {
    let admin = app.admin().await;
    let disabled = app.signed_up("disabled@example.com").await;
    let leaving = app.signed_up("leaving@example.com").await;
    let staying = app.signed_up("staying@example.com").await;
    for user in [&disabled, &leaving, &staying] {
        assert_eq!(app.get_auth("/api/v1/orders", &user.access).await.status(), 200);
    }
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/status", disabled.id)),
            &admin.access,
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&leaving.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    for user in [&disabled, &leaving] {
        for path in [
            "/api/v1/orders",
            "/api/v1/payments/methods",
            "/api/v1/notifications/preferences",
        ] {
            assert_problem(app.get_auth(path, &user.access).await, 401).await;
        }
    }
    assert_eq!(app.get_auth("/api/v1/orders", &staying.access).await.status(), 200);
    // Signing in again (re-enabled) works: only sessions from before the revocation are refused.
    let r = app
        .put_json(
            &app.url(&format!("/api/v1/users/{}/status", disabled.id)),
            &admin.access,
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let fresh: Value = app
        .login("disabled@example.com", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    let access = fresh["access_token"].as_str().expect("access");
    assert_eq!(app.get_auth("/api/v1/orders", access).await.status(), 200);
}
