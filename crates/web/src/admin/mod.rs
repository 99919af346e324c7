//! The admin console (staff roles): catalog, inventory, orders, users, audit log, dead letters
//! and live system status.
//!
//! Every handler starts with `session.require_staff()`: anonymous visitors are sent to the login
//! page, customers get the 403 page. Finer rules (who may refund, who may change roles) are the
//! APIs' own; a 403 from an API shows the same 403 page.

mod catalog;
mod console;
mod events;
mod faults;
mod inventory;
mod orders;
mod rates;
mod returns;
mod status;
mod users;
mod webhooks;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use crate::render::page;
use crate::{PageError, Session, WebState};

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "admin/user_privacy.html",
        include_str!("../../templates/admin/user_privacy.html"),
    ),
    ("admin/_nav.html", include_str!("../../templates/admin/_nav.html")),
    (
        "admin/_faults_banner.html",
        include_str!("../../templates/admin/_faults_banner.html"),
    ),
    (
        "admin/_status_panel.html",
        include_str!("../../templates/admin/_status_panel.html"),
    ),
    (
        "admin/dashboard.html",
        include_str!("../../templates/admin/dashboard.html"),
    ),
    (
        "admin/products.html",
        include_str!("../../templates/admin/products.html"),
    ),
    (
        "admin/product_form.html",
        include_str!("../../templates/admin/product_form.html"),
    ),
    (
        "admin/categories.html",
        include_str!("../../templates/admin/categories.html"),
    ),
    (
        "admin/category.html",
        include_str!("../../templates/admin/category.html"),
    ),
    (
        "admin/category_delete.html",
        include_str!("../../templates/admin/category_delete.html"),
    ),
    (
        "admin/inventory.html",
        include_str!("../../templates/admin/inventory.html"),
    ),
    ("admin/stock.html", include_str!("../../templates/admin/stock.html")),
    (
        "admin/low_stock.html",
        include_str!("../../templates/admin/low_stock.html"),
    ),
    ("admin/orders.html", include_str!("../../templates/admin/orders.html")),
    ("admin/order.html", include_str!("../../templates/admin/order.html")),
    ("admin/returns.html", include_str!("../../templates/admin/returns.html")),
    ("admin/rates.html", include_str!("../../templates/admin/rates.html")),
    (
        "admin/webhooks.html",
        include_str!("../../templates/admin/webhooks.html"),
    ),
    ("admin/webhook.html", include_str!("../../templates/admin/webhook.html")),
    (
        "admin/webhook_message.html",
        include_str!("../../templates/admin/webhook_message.html"),
    ),
    ("admin/users.html", include_str!("../../templates/admin/users.html")),
    ("admin/audit.html", include_str!("../../templates/admin/audit.html")),
    (
        "admin/dead_letters.html",
        include_str!("../../templates/admin/dead_letters.html"),
    ),
    (
        "admin/notifications.html",
        include_str!("../../templates/admin/notifications.html"),
    ),
    ("admin/status.html", include_str!("../../templates/admin/status.html")),
    ("admin/faults.html", include_str!("../../templates/admin/faults.html")),
    ("admin/traces.html", include_str!("../../templates/admin/traces.html")),
    ("admin/trace.html", include_str!("../../templates/admin/trace.html")),
    ("admin/logs.html", include_str!("../../templates/admin/logs.html")),
    (
        "admin/_log_table.html",
        include_str!("../../templates/admin/_log_table.html"),
    ),
    (
        "admin/console_off.html",
        include_str!("../../templates/admin/console_off.html"),
    ),
];

/// Every admin page a browser can open with GET (the 403 test walks this list).
pub const PAGES: &[&str] = &[
    "/admin",
    "/admin/products",
    "/admin/products/new",
    "/admin/categories",
    "/admin/inventory",
    "/admin/inventory/low-stock",
    "/admin/orders",
    "/admin/returns",
    "/admin/rates",
    "/admin/webhooks",
    "/admin/users",
    "/admin/audit",
    "/admin/dead-letters",
    "/admin/notifications",
    "/admin/status",
    "/admin/faults",
    "/admin/status.json",
    "/admin/status/history.json",
    "/admin/traces",
    "/admin/logs",
];

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin", get(dashboard))
        .merge(catalog::routes())
        .merge(inventory::routes())
        .merge(orders::routes())
        .merge(returns::routes())
        .merge(rates::routes())
        .merge(webhooks::routes())
        .merge(users::routes())
        .merge(events::routes())
        .merge(status::routes())
        .merge(faults::routes())
        .merge(console::routes())
}

/// Background work of the admin pages (the status history sampler, when the console is on).
pub(crate) fn start(state: &WebState) {
    console::start_sampler(state);
}

async fn dashboard(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let snapshot = status::snapshot(&web, &session).await;
    page(
        &session,
        "admin/dashboard.html",
        context! { status => crate::render::value_of(&snapshot) },
    )
}

/// A query string from the filters that have a value (`?status=paid&limit=50`), or "".
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs {
        let value = value.trim();
        if !value.is_empty() {
            out.append_pair(key, value);
            any = true;
        }
    }
    if any {
        format!("?{}", out.finish())
    } else {
        String::new()
    }
}

/// A fresh `Idempotency-Key`, put into a form when it is rendered: a double submit or a retry
/// after a lost answer sends the same key, so the stock or the money moves once.
pub(crate) fn new_idempotency_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A path segment taken from the URL or a form, percent-encoded for an API path.
pub(crate) fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An API message as a sentence ("must be greater than zero" → "Must be greater than zero.").
pub(crate) fn sentence(message: &str) -> String {
    let message = message.trim();
    let mut chars = message.chars();
    let mut out = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The field errors of a problem+json reply with the API's field paths mapped onto the form's
/// input names by `to_input` (`price.amount` → `price`); a reply without field errors puts its
/// detail under `_form`.
pub(crate) fn problem_errors(reply: &platform::client::Reply, to_input: impl Fn(&str) -> String) -> crate::FieldErrors {
    let mut errors = crate::FieldErrors::new();
    let problem = reply.problem().unwrap_or_default();
    if let Some(list) = problem.get("errors").and_then(|e| e.as_array()) {
        for entry in list {
            if let (Some(field), Some(message)) = (
                entry.get("field").and_then(|f| f.as_str()),
                entry.get("message").and_then(|m| m.as_str()),
            ) {
                errors.add(&to_input(field), sentence(message));
            }
        }
    }
    if errors.is_empty() {
        errors.add("_form", sentence(&reply.problem_detail()));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_without_a_value_are_left_out() {
        assert_eq!(query_string(&[("status", ""), ("q", " ")]), "");
        assert_eq!(
            query_string(&[("status", "paid"), ("q", "red shoes"), ("x", "")]),
            "?status=paid&q=red+shoes"
        );
        assert_eq!(query_string(&[("q", "a&b=c")]), "?q=a%26b%3Dc");
    }

    #[test]
    fn api_messages_read_as_sentences() {
        assert_eq!(sentence("must be greater than zero"), "Must be greater than zero.");
        assert_eq!(sentence("Is taken."), "Is taken.");
        assert_eq!(sentence(""), "");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("ABC-1"), "ABC-1");
        assert_eq!(segment("../x y"), "..%2Fx%20y");
    }
}
