//! Sign-up, verification, login, tokens, sessions and passwords, over HTTP, on both backends.

use serde_json::{Value, json};

use test_support::app::{PASSWORD, TestApp};
use test_support::requests::{assert_problem, problem_fields};

on_both_backends!(
    walkthrough_register_verify_login_me_refresh,
    registration_rejects_bad_input_without_writing_anything,
    registering_a_taken_address_reveals_nothing_and_tells_the_owner,
    login_needs_a_verified_address,
    verification_tokens_work_once,
    repeated_failures_are_throttled_with_retry_after,
    parallel_guesses_are_counted_before_the_password_is_checked,
    a_spent_sign_up_budget_does_not_stop_checkout,
    token_attacks_are_rejected_with_401,
    reused_refresh_token_revokes_the_whole_family,
    logout_ends_the_session,
    password_reset_without_user_enumeration,
    changing_password_revokes_other_sessions,
    profile_updates_use_etags,
    sessions_can_be_listed_and_revoked,
    deleting_the_account_erases_it,
);

async fn walkthrough_register_verify_login_me_refresh(app: TestApp) {
    let r = app.register("Ada@Example.com").await;
    assert_eq!(r.status(), 202);
    let accepted: Value = r.json().await.expect("json");
    assert_eq!(
        accepted["message"],
        "Check your mailbox: we sent a message to ada@example.com."
    );

    app.verify("ada@example.com").await;
    let r = app.login("ADA@example.com", PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let tokens: Value = r.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().expect("access");

    let r = app.get_auth("/api/v1/users/me", access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"v2\"");
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["email"], "ada@example.com");
    assert_eq!(me["email_verified"], true);

    let r = app
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.expect("json");
    assert_ne!(next["refresh_token"], tokens["refresh_token"]);
    assert_eq!(next["session_id"], tokens["session_id"]);
    let r = app
        .get_auth("/api/v1/users/me", next["access_token"].as_str().expect("access"))
        .await;
    assert_eq!(r.status(), 200);
}

async fn registration_rejects_bad_input_without_writing_anything(app: TestApp) {
    let url = app.url("/api/v1/auth/register");
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"email": "not-an-email", "password": PASSWORD, "name": "A"}),
            422,
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "name": "A"}),
            422,
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "password123456", "name": "A"}),
            422,
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "   "}),
            422,
            "name",
        ),
        (json!({"email": "a@example.com", "password": PASSWORD}), 422, "name"),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "A", "role": "admin"}),
            422,
            "role",
        ),
        (json!({"email": 42, "password": PASSWORD, "name": "A"}), 422, "email"),
    ];
    for (body, status, field) in cases {
        let r = app.client.post(&url).json(&body).send().await.expect("request");
        let problem = assert_problem(r, status).await;
        assert!(
            problem_fields(&problem).contains(&field.to_owned()),
            "{body} -> {problem}"
        );
    }

    // Several invalid fields are reported together.
    let r = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "x", "password": "y", "name": ""}),
        )
        .await;
    let problem = assert_problem(r, 422).await;
    assert_eq!(problem_fields(&problem), ["email", "name", "password"]);

    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("request");
    assert_problem(r, 400).await;
    let r = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("request");
    assert_problem(r, 415).await;
    let huge = json!({"email": "a@example.com", "password": PASSWORD, "name": "x".repeat(2 * 1024 * 1024)});
    // The server answers 413 and closes the connection without reading the rest of the body, so
    // the client may still be writing it (a broken pipe): try again, on a fresh connection each time.
    let mut attempts = 0;
    let r = loop {
        attempts += 1;
        match reqwest::Client::new().post(&url).json(&huge).send().await {
            Ok(r) => break r,
            Err(e) if attempts < 5 && e.is_request() => continue,
            Err(e) => panic!("request: {e:?}"),
        }
    };
    assert_problem(r, 413).await;

    // None of the rejected requests left a half-written account behind.
    assert_eq!(app.register("a@example.com").await.status(), 202);
    app.verify("a@example.com").await;
}

/// Signing up with a taken address answers exactly like a new one, so sign-up cannot tell who is a
/// customer; the owner is told by mail, and the account is untouched.
async fn registering_a_taken_address_reveals_nothing_and_tells_the_owner(app: TestApp) {
    let owner = app.signed_up("dup@example.com").await;
    let fresh = app.register("new-one@example.com").await;
    let taken = app
        .post(
            "/api/v1/auth/register",
            json!({"email": " DUP@example.COM ", "password": "another long passphrase 42", "name": "Mallory"}),
        )
        .await;
    assert_eq!((fresh.status().as_u16(), taken.status().as_u16()), (202, 202));
    let headers = |r: &reqwest::Response| {
        let mut names: Vec<String> = r
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| !["x-request-id", "date", "content-length"].contains(&k.as_str()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(headers(&fresh), headers(&taken));
    let fresh: Value = fresh.json().await.expect("json");
    let taken: Value = taken.json().await.expect("json");
    assert_eq!(
        fresh["message"].as_str().map(|m| m.replace("new-one@", "@")),
        taken["message"].as_str().map(|m| m.replace("dup@", "@"))
    );
    let mail = app
        .wait_for_mail("dup@example.com", 2)
        .await
        .into_iter()
        .find(|m| m.subject == "Someone tried to register with your address")
        .expect("the owner is told");
    assert!(mail.text.contains("/forgot-password"), "{}", mail.text);
    assert!(mail.text.contains("/login"), "{}", mail.text);
    // Nothing changed: the old password works, the attempted one does not, the session lives.
    assert_problem(app.login("dup@example.com", "another long passphrase 42").await, 401).await;
    assert_eq!(app.login("dup@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.get_auth("/api/v1/users/me", &owner.access).await.status(), 200);
}

async fn login_needs_a_verified_address(app: TestApp) {
    app.register("new@example.com").await;
    let problem = assert_problem(app.login("new@example.com", PASSWORD).await, 403).await;
    assert_eq!(problem["type"], "tag:emporium.dev,2026:problem/email-not-verified");
    // Asking again sends a fresh token; either works until used.
    let r = app
        .post("/api/v1/auth/resend-verification", json!({"email": "new@example.com"}))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(app.wait_for_mail("new@example.com", 2).await.len(), 2);
    app.verify("new@example.com").await;
    assert_eq!(app.login("new@example.com", PASSWORD).await.status(), 200);
    // Unknown addresses get the same answer.
    let r = app
        .post(
            "/api/v1/auth/resend-verification",
            json!({"email": "ghost@example.com"}),
        )
        .await;
    assert_eq!(r.status(), 202);
}

async fn verification_tokens_work_once(app: TestApp) {
    app.register("once@example.com").await;
    let token = app.mailed_token("once@example.com").await;
    assert_eq!(
        app.post("/api/v1/auth/verify-email", json!({"token": token}))
            .await
            .status(),
        204
    );
    let problem = assert_problem(
        app.post("/api/v1/auth/verify-email", json!({"token": token})).await,
        422,
    )
    .await;
    assert_eq!(problem_fields(&problem), ["token"]);
    assert_problem(
        app.post("/api/v1/auth/verify-email", json!({"token": "forged"})).await,
        422,
    )
    .await;
}

async fn repeated_failures_are_throttled_with_retry_after(app: TestApp) {
    app.signed_up("victim@example.com").await;
    for _ in 0..5 {
        assert_problem(app.login("victim@example.com", "wrong password here").await, 401).await;
    }
    let r = app.login("victim@example.com", "wrong password here").await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    // One coherent set of limit fields: the lockout's, not the edge's request budget.
    let field = |name: &str| r.headers()[name].to_str().expect("ascii").to_owned();
    assert_eq!(field("ratelimit-limit"), "5");
    assert_eq!(field("ratelimit-remaining"), "0");
    assert_eq!(field("ratelimit-reset"), retry_after.to_string());
    assert_eq!(field("ratelimit-policy"), "5;w=900");
    assert_eq!(r.headers().get_all("ratelimit-remaining").iter().count(), 1);
    assert_problem(r, 429).await;
    // Even the right password waits: the attacker learns nothing while throttled.
    assert_problem(app.login("victim@example.com", PASSWORD).await, 429).await;
    // Unknown accounts look the same as wrong passwords.
    assert_problem(app.login("nobody@example.com", PASSWORD).await, 401).await;
}

/// A burst of concurrent guesses checked against the count from before the burst would all be
/// evaluated; attempts are reserved before argon2 runs, so the limit holds.
async fn parallel_guesses_are_counted_before_the_password_is_checked(app: TestApp) {
    app.signed_up("burst@example.com").await;
    let guesses = (0..59).map(|i| {
        let app = &app;
        async move {
            app.login("burst@example.com", &format!("wrong guess number {i}"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(guesses).await;
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        (1..=5).contains(&evaluated),
        "at most 5 guesses evaluated: {statuses:?}"
    );
    assert_eq!(evaluated + throttled, 59, "{statuses:?}");
    // The right password after the limit is refused like any other guess.
    assert_problem(app.login("burst@example.com", PASSWORD).await, 429).await;

    // The per-address limit (20) holds the same way across many accounts.
    let spread = (0..40).map(|i| {
        let app = &app;
        async move {
            app.login(&format!("nobody{i}@example.com"), "wrong guess here")
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(spread).await;
    let spread_evaluated = statuses.iter().filter(|s| **s == 401).count();
    // The first burst's failures count against this address too.
    assert!(
        evaluated + spread_evaluated <= 20,
        "at most 20 failures per address: {evaluated} + {statuses:?}"
    );
}

/// Contexts fetch their service token from identity; were that call to spend the 127.0.0.1
/// sign-up budget, 30 forgot-password requests would stop every checkout with a 503.
async fn a_spent_sign_up_budget_does_not_stop_checkout(app: TestApp) {
    use test_support::requests::*;
    use test_support::shop::*;
    let admin = app.admin().await;
    product(&app, &admin.access, "BUDGET-1", 1000, 5).await;
    let user = app.signed_up("budget@example.com").await;
    let pm = card(&app, &user.access, SUCCESS_CARD).await;
    let mut refused = false;
    for i in 0..40 {
        let r = app
            .post(
                "/api/v1/auth/forgot-password",
                json!({"email": format!("nobody{i}@example.com")}),
            )
            .await;
        if r.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the per-address budget is spent");
    // Ordering's first service token is fetched now, with the address's budget spent.
    let body = order_body(json!([{"sku": "BUDGET-1", "quantity": 1}]), &pm);
    let r = place(&app, &user.access, "budget-1", &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    // Wrong service credentials over HTTP are refused as such, not by the spent sign-up budget.
    let r = app
        .post(
            "/api/v1/auth/service-token",
            json!({"client_id": "ordering", "client_secret": "not the secret"}),
        )
        .await;
    assert_problem(r, 401).await;
}

async fn token_attacks_are_rejected_with_401(app: TestApp) {
    let user = app.signed_up("target@example.com").await;
    let parts: Vec<&str> = user.access.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("claims");
    claims["role"] = json!("admin");
    let forged_claims = b64.encode(claims.to_string());
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("header");
    let none_header = b64.encode(json!({"alg": "none", "typ": "JWT", "kid": header["kid"]}).to_string());
    let hs_header = b64.encode(json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]}).to_string());

    // A token signed by a key identity never published.
    let foreign = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let der = key.to_pkcs8_der().expect("der");
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = header["kid"].as_str().map(str::to_owned);
        platform::auth::install_token_crypto();
        jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
    };

    let attacks = [
        "garbage".to_owned(),
        format!("{}.{}.{}", parts[0], forged_claims, parts[2]),
        format!("{none_header}.{}.", parts[1]),
        format!("{hs_header}.{}.{}", parts[1], parts[2]),
        foreign,
        format!("{}.{}.{}x", parts[0], parts[1], parts[2]),
    ];
    for token in attacks {
        let r = app.get_auth("/api/v1/users/me", &token).await;
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_problem(r, 401).await;
    }
    let r = app
        .client
        .get(app.url("/api/v1/users/me"))
        .send()
        .await
        .expect("request");
    assert_problem(r, 401).await;
    let r = app
        .client
        .get(app.url("/api/v1/users/me"))
        .header("authorization", format!("Basic {}", user.access))
        .send()
        .await
        .expect("request");
    assert_problem(r, 401).await;
    // The genuine token still works.
    assert_eq!(app.get_auth("/api/v1/users/me", &user.access).await.status(), 200);
}

async fn reused_refresh_token_revokes_the_whole_family(app: TestApp) {
    let user = app.signed_up("family@example.com").await;
    let r = app
        .post("/api/v1/auth/refresh", json!({"refresh_token": user.refresh}))
        .await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.expect("json");

    // The old token comes back (stolen copy): refused, and the family is revoked.
    assert_problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": user.refresh}))
            .await,
        401,
    )
    .await;
    assert_problem(
        app.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": rotated["refresh_token"]}),
        )
        .await,
        401,
    )
    .await;
    assert_problem(
        app.get_auth("/api/v1/users/me", rotated["access_token"].as_str().expect("access"))
            .await,
        401,
    )
    .await;

    // Other sessions of the same user are untouched.
    let other: Value = app
        .login("family@example.com", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        app.get_auth("/api/v1/users/me", other["access_token"].as_str().expect("access"))
            .await
            .status(),
        200
    );

    let events = app
        .identity
        .audit_log(
            &admin_auth(&app).await,
            &identity::store::AuditFilter {
                kind: Some("token.reuse_detected".into()),
                ..Default::default()
            },
            None,
            10,
        )
        .await
        .expect("audit");
    assert_eq!(events.len(), 1);
}

/// An `AuthUser` for a fresh administrator, to call admin use cases directly.
async fn admin_auth(app: &TestApp) -> platform::auth::AuthUser {
    let admin = app.admin().await;
    let keys = app.identity.keys().key_set();
    platform::auth::AuthUser(keys.verify(&admin.access).expect("valid"))
}

async fn logout_ends_the_session(app: TestApp) {
    let user = app.signed_up("bye@example.com").await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    assert_problem(app.get_auth("/api/v1/users/me", &user.access).await, 401).await;
    assert_problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": user.refresh}))
            .await,
        401,
    )
    .await;
}

async fn password_reset_without_user_enumeration(app: TestApp) {
    let user = app.signed_up("forgetful@example.com").await;
    let known = app
        .post(
            "/api/v1/auth/forgot-password",
            json!({"email": "forgetful@example.com"}),
        )
        .await;
    let unknown = app
        .post("/api/v1/auth/forgot-password", json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.text().await.expect("body"), unknown.text().await.expect("body"));

    // The message is sent off the request path; wait for it.
    let token = app.mailed_token_about("forgetful@example.com", "Reset").await;
    let weak = app
        .post(
            "/api/v1/auth/reset-password",
            json!({"token": token, "new_password": "123"}),
        )
        .await;
    assert_eq!(problem_fields(&assert_problem(weak, 422).await), ["new_password"]);

    let new_password = "a brand new violet lamp 42";
    let r = app
        .post(
            "/api/v1/auth/reset-password",
            json!({"token": token, "new_password": new_password}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let again = app
        .post(
            "/api/v1/auth/reset-password",
            json!({"token": token, "new_password": new_password}),
        )
        .await;
    assert_eq!(problem_fields(&assert_problem(again, 422).await), ["token"]);

    assert_problem(app.get_auth("/api/v1/users/me", &user.access).await, 401).await;
    assert_problem(app.login("forgetful@example.com", PASSWORD).await, 401).await;
    assert_eq!(app.login("forgetful@example.com", new_password).await.status(), 200);
}

async fn changing_password_revokes_other_sessions(app: TestApp) {
    let first = app.signed_up("changer@example.com").await;
    let second: Value = app
        .login("changer@example.com", PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    let second_access = second["access_token"].as_str().expect("access");
    let put = |token: &str, body: Value| {
        app.client
            .put(app.url("/api/v1/users/me/password"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let wrong = put(
        &first.access,
        json!({"current_password": "not it at all", "new_password": "another fine long phrase"}),
    )
    .await
    .expect("request");
    assert_eq!(problem_fields(&assert_problem(wrong, 422).await), ["current_password"]);
    let same = put(
        &first.access,
        json!({"current_password": PASSWORD, "new_password": PASSWORD}),
    )
    .await
    .expect("request");
    assert_eq!(problem_fields(&assert_problem(same, 422).await), ["new_password"]);

    let ok = put(
        &first.access,
        json!({"current_password": PASSWORD, "new_password": "another fine long phrase"}),
    )
    .await
    .expect("request");
    assert_eq!(ok.status(), 204);
    assert_eq!(app.get_auth("/api/v1/users/me", &first.access).await.status(), 200);
    assert_problem(app.get_auth("/api/v1/users/me", second_access).await, 401).await;
    assert_eq!(
        app.login("changer@example.com", "another fine long phrase")
            .await
            .status(),
        200
    );
}

async fn profile_updates_use_etags(app: TestApp) {
    let user = app.signed_up("etag@example.com").await;
    let r = app.get_auth("/api/v1/users/me", &user.access).await;
    let tag = r.headers()["etag"].to_str().expect("etag").to_owned();
    let put = |if_match: &str, name: &str| {
        app.client
            .put(app.url("/api/v1/users/me"))
            .bearer_auth(&user.access)
            .header("if-match", if_match)
            .json(&json!({"name": name}))
            .send()
    };
    let r = put(&tag, "Renamed").await.expect("request");
    assert_eq!(r.status(), 200);
    let new_tag = r.headers()["etag"].to_str().expect("etag").to_owned();
    assert_ne!(new_tag, tag);
    assert_eq!(r.json::<Value>().await.expect("json")["name"], "Renamed");
    // A writer holding the old version loses instead of overwriting.
    assert_problem(put(&tag, "Stale").await.expect("request"), 412).await;
    assert_problem(put("garbage", "Stale").await.expect("request"), 412).await;
    let problem = assert_problem(put(&new_tag, "").await.expect("request"), 422).await;
    assert_eq!(problem_fields(&problem), ["name"]);
}

async fn sessions_can_be_listed_and_revoked(app: TestApp) {
    let user = app.signed_up("devices@example.com").await;
    let phone: Value = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "PhoneApp/1.0")
        .json(&json!({"email": "devices@example.com", "password": PASSWORD}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let sessions: Vec<Value> = app
        .get_auth("/api/v1/users/me/sessions", &user.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let phone_session = sessions
        .iter()
        .find(|s| s["device"] == "PhoneApp/1.0")
        .expect("phone session");
    assert_eq!(phone_session["ip"], "127.0.0.1");

    let url = app.url(&format!(
        "/api/v1/users/me/sessions/{}",
        phone_session["id"].as_str().expect("id")
    ));
    let r = app
        .client
        .delete(&url)
        .bearer_auth(&user.access)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    assert_problem(
        app.client
            .delete(&url)
            .bearer_auth(&user.access)
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
    assert_problem(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": phone["refresh_token"]}))
            .await,
        401,
    )
    .await;
    let bad = app.url("/api/v1/users/me/sessions/not-a-uuid");
    assert_problem(
        app.client
            .delete(&bad)
            .bearer_auth(&user.access)
            .send()
            .await
            .expect("request"),
        404,
    )
    .await;
}

async fn deleting_the_account_erases_it(app: TestApp) {
    let user = app.signed_up("leaving@example.com").await;
    let delete = |password: &str| {
        app.client
            .delete(app.url("/api/v1/users/me"))
            .bearer_auth(&user.access)
            .json(&json!({"password": password}))
            .send()
    };
    assert_problem(delete("wrong password").await.expect("request"), 422).await;
    assert_eq!(delete(PASSWORD).await.expect("request").status(), 204);
    assert_problem(app.get_auth("/api/v1/users/me", &user.access).await, 401).await;
    assert_problem(app.login("leaving@example.com", PASSWORD).await, 401).await;
    // The address is free again.
    assert_eq!(app.register("leaving@example.com").await.status(), 202);
}

#[tokio::test]
async fn unauthenticated_auth_endpoints_are_rate_limited_per_address() {
    let Some(app) = test_support::app::spawn_app_with(
        test_support::Backend::Sqlite,
        &[("EMPORIUM_AUTH_RATE_PER_MINUTE", "3")],
        true,
    )
    .await
    else {
        return;
    };
    for _ in 0..3 {
        let r = app
            .post("/api/v1/auth/forgot-password", json!({"email": "x@example.com"}))
            .await;
        assert_eq!(r.status(), 202);
    }
    let r = app
        .post(
            "/api/v1/auth/register",
            json!({"email": "y@example.com", "password": PASSWORD, "name": "Y"}),
        )
        .await;
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    assert_problem(r, 429).await;
    // Login has its own failure-based throttle and is not part of this budget.
    assert_problem(app.login("y@example.com", PASSWORD).await, 401).await;
}

/// The dev mailbox lists one address's messages, never everyone's: it holds password-reset links.
#[tokio::test]
async fn the_dev_mailbox_needs_an_address() {
    let Some(app) = test_support::app::spawn_app(test_support::Backend::Sqlite).await else {
        return;
    };
    app.register("listed@example.com").await;
    app.wait_for_mail("listed@example.com", 1).await;
    for query in ["", "?to=", "?to=%20"] {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/dev/mailbox{query}")))
            .send()
            .await
            .expect("request");
        let problem = assert_problem(r, 422).await;
        assert_eq!(problem_fields(&problem), ["to"], "{query}");
    }
    let r = app
        .client
        .get(app.url("/api/v1/dev/mailbox?to=LISTED@example.com"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
}
