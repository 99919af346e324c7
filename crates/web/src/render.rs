//! Page templates (minijinja, compiled into the binary, HTML autoescaped) and the filters and
//! functions every page may use.

use std::sync::LazyLock;

use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use minijinja::value::Value;
use minijinja::{Environment, State, UndefinedBehavior, context};

use crate::error::PageError;
use crate::session::Session;

const SHARED: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// Debug builds (every test, the browser suite, `emporium dev`) fail a page on any variable or
/// field its template reads and its handler did not give: a renamed field is an error in the
/// tests, not a blank page. Release builds render it as nothing instead: what reaches a template
/// is typed (API answers are decoded into the contexts' published views, so a drifted answer
/// already fails at decoding), so an undefined value there can only be a page path no test
/// walked, and a shopper is better served by a page with a blank than by an error page.
/// Templates say where absence is legitimate (`is defined`, `default`).
#[cfg(debug_assertions)]
const UNDEFINED: UndefinedBehavior = UndefinedBehavior::Strict;
#[cfg(not(debug_assertions))]
const UNDEFINED: UndefinedBehavior = UndefinedBehavior::Lenient;

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UNDEFINED);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    let all = SHARED
        .iter()
        .chain(crate::storefront::TEMPLATES)
        .chain(crate::account::TEMPLATES)
        .chain(crate::admin::TEMPLATES);
    for (name, source) in all {
        if let Err(e) = env.add_template(name, source) {
            // Caught by the unit test below long before a release; keep serving other pages.
            tracing::error!(template = name, error = %e, "template does not compile");
        }
    }
    env.add_filter("money", money_filter);
    env.add_filter("datetime", datetime_filter);
    env.add_filter("localtime", localtime_filter);
    env.add_filter("date", date_filter);
    env.add_function("csrf_field", csrf_field);
    env.add_function("field_error", field_error);
    env.add_function("static_url", |name: String| {
        Value::from_safe_string(crate::assets::url(&name))
    });
    env
});

/// Any serde value (API answers, view structs) as a template value: `context! { product => value_of(&json) }`.
pub fn value_of<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// Renders `name` with `ctx` only (error pages: no session, no API calls).
pub fn render_page(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    TEMPLATES.get_template(name)?.render(ctx)
}

/// Pages whose prices are shown in the visitor's display currency.
const CONVERTED_PAGES: &[&str] = &[
    "shop/home.html",
    "shop/listing.html",
    "shop/product.html",
    "shop/cart.html",
];

/// Renders a page for `session`: `ctx` plus `user`, `csrf`, `flash`, `path`, `display` (the
/// display currency) and `convert_prices`.
pub fn page(session: &Session, name: &str, ctx: Value) -> Result<Response, PageError> {
    page_with_status(StatusCode::OK, session, name, ctx)
}

/// Like [`page`] with another status (422 for a form re-rendered with errors).
pub fn page_with_status(status: StatusCode, session: &Session, name: &str, ctx: Value) -> Result<Response, PageError> {
    // Prices are converted for display on the pages where a shopper browses; checkout, orders,
    // invoices and the admin console show what is charged.
    let display = if name.starts_with("admin/") {
        None
    } else {
        session.display()
    };
    let convert_prices = display.as_ref().is_some_and(|d| d.converted) && CONVERTED_PAGES.contains(&name);
    let globals = context! {
        display => value_of(display),
        convert_prices => convert_prices,
        user => value_of(session.user()),
        csrf => session.csrf(),
        flash => value_of(session.take_flash()),
        path => session.current_path(),
    };
    let html = render_page(name, context! { ..ctx, ..globals })
        .map_err(|e| PageError::Internal(anyhow::anyhow!("rendering {name}: {e:#}")))?;
    Ok((status, Html(html)).into_response())
}

/// Integer minor units and an ISO currency → "€12.34", "$0.99", "¥500", "12.34 CHF".
pub fn format_money(minor: i64, currency: &str) -> String {
    let currency = currency.to_ascii_uppercase();
    let decimals = contracts::kernel::minor_digits(&currency);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let number = if decimals == 0 {
        group_thousands(abs)
    } else {
        let unit = 10u64.pow(decimals);
        format!(
            "{}.{:0width$}",
            group_thousands(abs / unit),
            abs % unit,
            width = decimals as usize
        )
    };
    match currency.as_str() {
        "EUR" => format!("{sign}€{number}"),
        "USD" => format!("{sign}${number}"),
        "GBP" => format!("{sign}£{number}"),
        "JPY" => format!("{sign}¥{number}"),
        _ => format!("{sign}{number} {currency}"),
    }
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A billion in major units: beyond any price or refund typed by hand.
const MAX_TYPED_AMOUNT: i64 = 100_000_000_000;

/// Parses a price typed into a form ("12.34", "12", "1,299.00") into minor units, or says why not.
pub fn parse_money(input: &str) -> Result<i64, &'static str> {
    let cleaned: String = input.trim().chars().filter(|c| *c != ',' && *c != ' ').collect();
    if cleaned.is_empty() {
        return Err("enter an amount, e.g. 12.50");
    }
    let (whole, fraction) = match cleaned.split_once('.') {
        Some((w, f)) => (w, f),
        None => (cleaned.as_str(), ""),
    };
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return Err("must be a number like 12.50");
    }
    if fraction.len() > 2 {
        return Err("at most 2 decimal places");
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "is too large")?
    };
    let cents: i64 = format!("{fraction:0<2}")
        .parse()
        .map_err(|_| "must be a number like 12.50")?;
    whole
        .checked_mul(100)
        .and_then(|w| w.checked_add(cents))
        .filter(|v| *v <= MAX_TYPED_AMOUNT)
        .ok_or("is too large")
}

/// `{{ m|money }}` for an API money object `{amount, currency}`; `{{ minor|money("EUR") }}` for
/// a bare amount of minor units. Anything else (a missing field) renders as nothing.
/// On pages that convert prices (`convert_prices`), an amount of the shop's currency shows as
/// "≈ $21.70" in the visitor's display currency.
fn money_filter(state: &minijinja::State, amount: Value, currency: Option<String>) -> String {
    if amount.kind() == minijinja::value::ValueKind::Map {
        let currency = amount
            .get_attr("currency")
            .ok()
            .and_then(|c| c.as_str().map(str::to_owned))
            .or(currency);
        return amount
            .get_attr("amount")
            .map_or_else(|_| String::new(), |a| money_filter(state, a, currency));
    }
    let Ok(minor) = i64::try_from(amount) else {
        return String::new();
    };
    let currency = currency.as_deref().unwrap_or("EUR");
    let converting = state.lookup("convert_prices").is_some_and(|v| v.is_true());
    let converted = converting.then(|| state.lookup("display")).flatten().and_then(|d| {
        let text = |key: &str| d.get_attr(key).ok().and_then(|v| v.as_str().map(str::to_owned));
        crate::display::convert(minor, currency, &text("base")?, &text("currency")?, &text("rate")?)
    });
    match converted {
        Some(m) => format!("≈ {}", format_money(m.amount, m.currency.as_str())),
        None => format_money(minor, currency),
    }
}

fn parse_rfc3339(value: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()
}

fn datetime_filter(value: String) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[day padding:none] [month repr:short] [year], [hour]:[minute] UTC");
    parse_rfc3339(&value)
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(FORMAT).ok())
        .unwrap_or(value)
}

/// `<time datetime="…" data-local-time>3 Dec 2026, 14:05 UTC</time>`: the zone is named without
/// scripts, and the page's script rewrites it in the shopper's own time zone.
fn localtime_filter(value: String) -> Value {
    const ISO: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    match parse_rfc3339(&value).and_then(|t| t.to_offset(time::UtcOffset::UTC).format(ISO).ok()) {
        // Both parts are built from the parsed time: nothing of the input reaches the HTML.
        Some(iso) => Value::from_safe_string(format!(
            r#"<time datetime="{iso}" data-local-time>{}</time>"#,
            datetime_filter(value)
        )),
        None => Value::from(value),
    }
}

fn date_filter(value: String) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
        time::macros::format_description!("[day padding:none] [month repr:short] [year]");
    parse_rfc3339(&value)
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or(value)
}

/// The hidden CSRF input every form carries.
fn csrf_field(state: &State) -> Value {
    let token = state.lookup("csrf").map(|v| v.to_string()).unwrap_or_default();
    let token: String = token.chars().filter(char::is_ascii_hexdigit).collect();
    Value::from_safe_string(format!(r#"<input type="hidden" name="_csrf" value="{token}">"#))
}

/// The message for `field` in `errors` (a map field → message), with the id the input's
/// `aria-describedby` points at, or nothing.
fn field_error(errors: Option<Value>, field: String) -> Value {
    let message = errors
        .and_then(|errors| errors.get_attr(&field).ok())
        .filter(|m| !m.is_undefined() && !m.is_none())
        .map(|m| m.to_string());
    match message {
        Some(message) => {
            let id: String = field
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            Value::from_safe_string(format!(
                r#"<p class="field-error" id="error-{id}" data-testid="error-{id}" role="alert">{}</p>"#,
                escape_html(&message)
            ))
        }
        None => Value::from_safe_string(String::new()),
    }
}

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let all = SHARED
            .iter()
            .chain(crate::storefront::TEMPLATES)
            .chain(crate::account::TEMPLATES)
            .chain(crate::admin::TEMPLATES);
        for (name, _) in all {
            if let Err(e) = TEMPLATES.get_template(name) {
                panic!("{name}: {e:#}");
            }
        }
    }

    /// Star ratings are images with a name: an `aria-label` on a plain `span` is not announced
    /// (and axe reports it), so the span says `role="img"`.
    #[test]
    fn star_ratings_have_an_accessible_name() {
        let html = TEMPLATES
            .render_str(
                r#"{% from "shop/macros.html" import stars %}{{ stars(4.4, 3) }}"#,
                context! {},
            )
            .expect("renders");
        assert!(
            html.contains(r#"role="img" aria-label="Rated 4.4 out of 5 (3 reviews)""#),
            "{html}"
        );
        assert!(html.contains(r#"<span aria-hidden="true">★★★★☆</span>"#), "{html}");
    }

    #[test]
    fn a_value_the_handler_did_not_give_fails_the_page_in_tests() {
        assert!(TEMPLATES.render_str("{{ missing }}", context! {}).is_err());
        assert!(
            TEMPLATES
                .render_str("{% if order.coupon %}x{% endif %}", context! { order => context! {} })
                .is_err()
        );
        let declared = "{% if order.coupon is defined %}{{ order.coupon }}{% endif %}";
        assert_eq!(
            TEMPLATES
                .render_str(declared, context! { order => context! {} })
                .expect("renders"),
            ""
        );
        // A form without errors: every field reads as none, not as a missing value.
        let errors = crate::FieldErrors::new();
        let form = "{% if errors.email %}bad{% else %}ok{% endif %}{{ field_error(errors, 'email') }}";
        assert_eq!(
            TEMPLATES
                .render_str(form, context! { errors => errors })
                .expect("renders"),
            "ok"
        );
    }

    #[test]
    fn money_is_shown_with_its_currency() {
        assert_eq!(format_money(1234, "EUR"), "€12.34");
        assert_eq!(format_money(5, "usd"), "$0.05");
        assert_eq!(format_money(-250, "GBP"), "-£2.50");
        assert_eq!(format_money(6639, "KWD"), "6.639 KWD", "three decimals (ISO 4217)");
        assert_eq!(format_money(3245, "JPY"), "¥3,245");
        assert_eq!(format_money(123_456_789, "EUR"), "€1,234,567.89");
        assert_eq!(format_money(500, "JPY"), "¥500");
        assert_eq!(format_money(1000, "CHF"), "10.00 CHF");
    }

    fn money(template: &str, ctx: Value) -> String {
        TEMPLATES.render_str(template, ctx).expect("render")
    }

    #[test]
    fn the_money_filter_reads_api_money_objects() {
        let object = value_of(serde_json::json!({"amount": 1234, "currency": "GBP"}));
        assert_eq!(money("{{ m|money('EUR') }}", context! { m => object }), "£12.34");
        assert_eq!(money("{{ 1234|money('EUR') }}", context! {}), "€12.34");
        assert_eq!(money("{{ none|money }}", context! {}), "");
    }

    #[test]
    fn the_money_filter_converts_the_shops_currency_only_where_asked() {
        let display = value_of(serde_json::json!({"base": "EUR", "currency": "USD", "rate": "1.0856"}));
        let on = context! { display => display.clone(), convert_prices => true };
        assert_eq!(money("{{ 1999|money('EUR') }}", on.clone()), "≈ $21.70");
        assert_eq!(
            money("{{ 1999|money('GBP') }}", on),
            "£19.99",
            "only the shop's currency"
        );
        let off = context! { display => display, convert_prices => false };
        assert_eq!(money("{{ 1999|money('EUR') }}", off), "€19.99");
    }

    #[test]
    fn times_name_their_zone_and_carry_the_instant_for_the_script() {
        let html = localtime_filter("2026-12-03T14:05:09.5+01:00".into()).to_string();
        assert_eq!(
            html,
            r#"<time datetime="2026-12-03T13:05:09Z" data-local-time>3 Dec 2026, 13:05 UTC</time>"#
        );
        // Not a time: shown as text (escaped by the template), never as markup.
        assert!(!localtime_filter("<b>".into()).is_safe());
    }

    #[test]
    fn typed_prices_become_minor_units() {
        assert_eq!(parse_money("12.34"), Ok(1234));
        assert_eq!(parse_money(" 12 "), Ok(1200));
        assert_eq!(parse_money("12.5"), Ok(1250));
        assert_eq!(parse_money(".99"), Ok(99));
        assert_eq!(parse_money("1,299.00"), Ok(129_900));
        assert!(parse_money("").is_err());
        assert!(parse_money("abc").is_err());
        assert!(parse_money("-1").is_err());
        assert!(parse_money("1.234").is_err());
        assert!(parse_money(".").is_err());
        assert!(parse_money("99999999999999999999").is_err());
    }

    #[test]
    fn field_errors_are_escaped() {
        let errors = value_of(std::collections::BTreeMap::from([("name", "<b>bad</b>")]));
        let html = field_error(Some(errors), "name".into()).to_string();
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt;"), "{html}");
        assert!(html.contains(r#"id="error-name""#));
        assert_eq!(field_error(None, "name".into()).to_string(), "");
    }

    #[test]
    fn dates_are_readable() {
        assert_eq!(datetime_filter("2026-11-23T17:05:00Z".into()), "23 Nov 2026, 17:05 UTC");
        assert_eq!(date_filter("2026-11-03T17:05:00Z".into()), "3 Nov 2026");
        assert_eq!(datetime_filter("not a date".into()), "not a date");
    }
}
