//! The account pages over HTTP, as a browser without JavaScript uses them: forms with their CSRF
//! token, cookies, redirects. (The browser tests cover the journeys; these pin the rules.)

use crate::browser::*;
use test_support::Backend;
use test_support::app::{PASSWORD, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_password_is_explained_and_the_typed_name_and_address_are_kept() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let b = browser();
    let weak = "password1234";
    let r = submit_form(
        &b,
        &app,
        "/register",
        "/register",
        &[
            ("name", "Ada <Lovelace>"),
            ("email", "ada@example.com"),
            ("password", weak),
            ("password_confirm", weak),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="error-password""#), "{html}");
    assert!(html.contains("Password is too weak"), "{html}");
    assert!(html.contains(r#"value="ada@example.com""#), "{html}");
    assert!(
        html.contains("Ada &lt;Lovelace&gt;"),
        "the name is kept, escaped: {html}"
    );
    assert!(!html.contains(weak), "passwords are never echoed");

    // Typed differently twice: caught before identity is asked.
    let r = submit_form(
        &b,
        &app,
        "/register",
        "/register",
        &[
            ("name", "Ada"),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
            ("password_confirm", "something else entirely"),
        ],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains(r#"data-testid="error-password_confirm""#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_confirm_by_the_mailed_link_sign_in_and_see_the_account() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let b = browser();
    let email = "grace@example.com";
    let r = submit_form(
        &b,
        &app,
        "/register",
        "/register",
        &[
            ("name", "Grace Hopper"),
            ("email", email),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="registration-success""#), "{html}");
    assert!(
        unescape(&html).contains(r#"href="/api/v1/dev/mailbox?to=grace%40example.com" data-testid="dev-mailbox-link""#),
        "embedded mode links the dev mailbox: {html}"
    );

    // Not confirmed yet: signing in says so and offers a new message.
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[("email", email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains(r#"data-testid="login-unverified""#)
    );

    let mail = app.wait_for_mail(email, 1).await.remove(0);
    let start = mail.text.find("/verify-email?token=").expect("the mail links the page");
    let link = mail.text[start..].split_whitespace().next().expect("link").to_owned();
    // Opening the link changes nothing (mail scanners open links): it shows a button.
    let (status, html) = get_page(&b, &app, &link).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-testid="verify-email-button""#), "{html}");
    let token = input_value(&html, "token")
        .map(|v| unescape(&v))
        .expect("the form carries the token");
    let r = submit_form(&b, &app, &link, "/verify-email", &[("token", &token)]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/login");
    // The token worked once.
    let r = submit_form(&b, &app, &link, "/verify-email", &[("token", &token)]).await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("body").contains(r#"data-testid="verify-failed""#));

    let r = submit_form(
        &b,
        &app,
        "/login?next=/account",
        "/login",
        &[("email", email), ("password", PASSWORD), ("next", "/account")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/account");
    let (status, html) = get_page(&b, &app, "/account").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<dd data-testid="profile-name">Grace Hopper</dd>"#),
        "{html}"
    );

    // A form post with someone else's token is refused, and changes nothing.
    let forged = "0".repeat(64);
    let r = post_form(&b, &app, "/account", &[("_csrf", &forged), ("name", "Mallory")]).await;
    assert_eq!(r.status(), 403);
    let (_, html) = get_page(&b, &app, "/account").await;
    assert!(html.contains("Grace Hopper") && !html.contains("Mallory"));

    // With the page's own token the name changes, in the header too.
    let r = submit_form(&b, &app, "/account", "/account", &[("name", "Grace B. Hopper")]).await;
    assert_eq!(r.status(), 303);
    let (_, html) = get_page(&b, &app, "/account").await;
    assert!(
        html.contains(r#"data-testid="profile-name">Grace B. Hopper<"#),
        "{html}"
    );
    assert!(html.contains("Your profile is saved."), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_explains_a_wrong_password_and_never_leaves_the_site() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let user = app.signed_up("linus@example.com").await;
    let b = browser();
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[("email", &user.email), ("password", "not my password at all")],
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("body");
    assert!(html.contains(r#"data-testid="error-_form""#), "{html}");
    assert!(html.contains("The e-mail address or password is not right."), "{html}");
    assert!(
        html.contains(r#"value="linus@example.com""#),
        "the address is kept: {html}"
    );

    let (_, html) = get_page(&b, &app, "/login?next=https://evil.example/steal").await;
    assert_eq!(
        input_value(&html, "next").map(|v| unescape(&v)).as_deref(),
        Some("/"),
        "{html}"
    );
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[
            ("email", &user.email),
            ("password", PASSWORD),
            ("next", "https://evil.example/steal"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/");

    // The sessions page names this browser's session as the current one.
    let (status, html) = get_page(&b, &app, "/account/sessions").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-current="true""#), "{html}");
}

/// A session cookie copied before logout is worthless afterwards, though its access
/// token has not expired: logout revokes the session and every context refuses its tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_copied_before_logout_no_longer_works() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let email = "copied@example.com";
    app.signed_up(email).await;
    let b = browser();
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[("email", email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 303, "signed in");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("emporium_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let (status, _) = get_page(&b, &app, "/orders").await;
    assert_eq!(status, 200);

    let r = submit_form(&b, &app, "/account", "/logout", &[]).await;
    assert_eq!(r.status(), 303, "signed out");

    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = copy
        .get(app.url("/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 303, "the copied cookie is signed out");
    assert!(location(&r).starts_with("/login"), "{}", location(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mail_preferences_are_shown_and_saved_and_staff_only_choices_stay_put() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let user = app.signed_up("grace@example.com").await;
    let b = browser();
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[("email", &user.email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 303);

    let page = "/account/notifications";
    let (status, html) = get_page(&b, &app, page).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        !html.contains("pref-low-stock"),
        "a customer is not offered staff alerts: {html}"
    );
    let marketing_box = |html: &str| {
        let start = html.find(r#"data-testid="pref-marketing""#).expect("marketing box");
        html[start..start + html[start..].find('>').expect("tag end")].contains("checked")
    };
    assert!(!marketing_box(&html), "offers are off until switched on: {html}");

    let r = submit_form(&b, &app, page, page, &[("marketing", "on")]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, page.to_owned()));
    let (_, html) = get_page(&b, &app, page).await;
    assert!(html.contains("Your e-mail preferences are saved."), "{html}");
    assert!(marketing_box(&html), "{html}");
    let prefs: serde_json::Value = app
        .get_auth("/api/v1/notifications/preferences", &user.access)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(prefs["marketing"], true);
    assert_eq!(prefs["low_stock_alerts"], true, "the customer's form left it alone");

    // An unticked box is not sent at all: saving without it switches offers off again.
    let r = submit_form(&b, &app, page, page, &[]).await;
    assert_eq!(r.status(), 303);
    let (_, html) = get_page(&b, &app, page).await;
    assert!(!marketing_box(&html), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_your_data_is_requested_and_downloaded_from_the_account() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let user = app.signed_up("hedy@example.com").await;
    let b = browser();
    let r = submit_form(
        &b,
        &app,
        "/login",
        "/login",
        &[("email", &user.email), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 303);

    let page = "/account/privacy";
    let (status, html) = get_page(&b, &app, page).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Request a copy of my data") && !html.contains(r#"data-testid="exports""#),
        "{html}"
    );
    let r = submit_form(&b, &app, page, "/account/privacy/export", &[]).await;
    assert_eq!((r.status().as_u16(), location(&r)), (303, page.to_owned()));
    // Ready once every context sent its part (a mail says so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let html = loop {
        let (_, html) = get_page(&b, &app, page).await;
        if html.contains(r#"data-status="ready""#) {
            break html;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {html}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        app.wait_for_mail(&user.email, 2)
            .await
            .iter()
            .any(|m| m.subject == "Your data export is ready")
    );
    let start = html.find("/account/privacy/exports/").expect("download link");
    let link = &html[start..start + html[start..].find('"').expect("link end")];
    let r = b.get(app.url(link)).send().await.expect("download");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/gzip");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .contains(".tar.gz")
    );
    let bytes = r.bytes().await.expect("bytes");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    // Someone else's copy is not found; a malformed id neither.
    let (status, _) = get_page(&browser(), &app, link).await;
    assert_ne!(status, 200);
    let (status, _) = get_page(&b, &app, "/account/privacy/exports/nope").await;
    assert_eq!(status, 404);
}
