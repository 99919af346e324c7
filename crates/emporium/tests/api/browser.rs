//! A browser without JavaScript, as the page tests drive one: cookies, forms with their CSRF token
//! (and hidden idempotency key), redirects looked at rather than followed.

use test_support::app::TestApp;

/// A browser: keeps cookies, does not follow redirects (the tests look at them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `application/x-www-form-urlencoded`, as a browser encodes a form.
pub fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => char::from(b).to_string(),
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first `name="<name>" value="…"` input in `html`, as written (escaped).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The value of the input `name`, which the page must have.
pub fn hidden(html: &str, name: &str) -> String {
    input_value(html, name).unwrap_or_else(|| panic!("no {name} in the page"))
}

/// The `_csrf` value of the first form in `html`.
pub fn csrf(html: &str) -> String {
    hidden(html, "_csrf")
}

/// A browser signed in through the login form of the server at `base` (a real binary, not a
/// [`TestApp`]), sent on to `/admin` as staff would be.
pub async fn signed_in(base: &str, email: &str, password: &str) -> reqwest::Client {
    let browser = browser();
    let page = browser
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let r = browser
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("_csrf", &csrf(&page)),
            ("email", email),
            ("password", password),
            ("next", "/admin"),
        ]))
        .send()
        .await
        .expect("login");
    assert_eq!(
        r.status(),
        303,
        "sign-in of {email} failed: {}",
        r.text().await.unwrap_or_default()
    );
    browser
}

/// Undoes the templates' HTML escaping of an attribute value (they escape `/` too).
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub async fn get_page(browser: &reqwest::Client, app: &TestApp, path: &str) -> (u16, String) {
    let r = browser.get(app.url(path)).send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

pub async fn post_form(
    browser: &reqwest::Client,
    app: &TestApp,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(app.url(action))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(fields))
        .send()
        .await
        .expect("request")
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Posts `fields` to `action` with the CSRF token of the form page `html` (and its hidden
/// idempotency key, when the form carries one), as the browser would.
async fn post_from_page(
    browser: &reqwest::Client,
    app: &TestApp,
    html: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = input_value(html, "_csrf").unwrap_or_else(|| panic!("no CSRF field for {action} in: {html}"));
    let key = input_value(html, "idempotency_key");
    let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf.as_str())];
    if let Some(key) = &key {
        form.push(("idempotency_key", key.as_str()));
    }
    form.extend_from_slice(fields);
    post_form(browser, app, action, &form).await
}

/// Opens `form_page`, then posts `fields` to `action` from it.
pub async fn submit_form(
    browser: &reqwest::Client,
    app: &TestApp,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (_, html) = get_page(browser, app, form_page).await;
    post_from_page(browser, app, &html, action, fields).await
}

/// [`submit_form`] from a page that must open (200): the answer's status, `Location` and body.
pub async fn submit(
    browser: &reqwest::Client,
    app: &TestApp,
    form_page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> (u16, String, String) {
    let (status, html) = get_page(browser, app, form_page).await;
    assert_eq!(status, 200, "{form_page}: {html}");
    let r = post_from_page(browser, app, &html, action, fields).await;
    let (status, location) = (r.status().as_u16(), location(&r));
    (status, location, r.text().await.expect("body"))
}
