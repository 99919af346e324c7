//! How the storefront pages read and word things, as plain functions: how typed quantities and
//! prices are read, how stock and order states are worded, and how the listing filters travel
//! between the page's URL and the catalog's query string. What an order allows is not decided
//! here: ordering's order view lists it (`allowed_actions`).

use base64::Engine;
use contracts::api::ordering::{OrderStatus, ReturnStatus, ReturnView};
use serde::Serialize;

use crate::render::{escape_html, parse_money};

/// The most units of one product a cart line may hold (the cart API's default
/// `EMPORIUM_CART_MAX_LINE_QUANTITY`; the API has the last word when it is configured lower).
pub const MAX_LINE_QUANTITY: i64 = 10;

/// At or below this many units a product shows "Only N left" (unless inventory's own
/// low-stock threshold is higher).
const LOW_STOCK_SHOWN: i64 = 5;

/// A quantity typed into a form: a whole number from 1 to `max`.
pub fn parse_quantity(input: &str, max: i64) -> Result<i64, String> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err("Enter a quantity.".into());
    }
    let n: i64 = trimmed
        .parse()
        .map_err(|_| "Enter a whole number, e.g. 1.".to_owned())?;
    let max = max.max(1);
    if !(1..=max).contains(&n) {
        return Err(format!("Choose a quantity from 1 to {max}."));
    }
    Ok(n)
}

/// A quantity for an existing cart line: like [`parse_quantity`], but 0 is allowed (removes it).
pub fn parse_line_quantity(input: &str) -> Result<i64, String> {
    match input.trim() {
        "0" => Ok(0),
        other => parse_quantity(other, MAX_LINE_QUANTITY)
            .map_err(|_| format!("Choose a quantity from 0 to {MAX_LINE_QUANTITY} (0 removes the item).")),
    }
}

/// The stock badge: (`in_stock` | `low` | `out`, the words shown).
pub fn stock_status(available: i64, low_threshold: i64) -> (&'static str, String) {
    if available <= 0 {
        ("out", "Out of stock".into())
    } else if available <= low_threshold.max(LOW_STOCK_SHOWN) {
        ("low", format!("Only {available} left"))
    } else {
        ("in_stock", "In stock".into())
    }
}

/// A product image to show when the product has none (or its URL does not load): an SVG with
/// the name's initials on a colour derived from `seed`, as a `data:` URL (the CSP allows them).
pub fn placeholder_image(name: &str, seed: &str) -> String {
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let hue = seed
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 300"><rect width="400" height="300" fill="hsl({hue},45%,88%)"/><text x="200" y="175" font-family="system-ui,sans-serif" font-size="96" font-weight="600" text-anchor="middle" fill="hsl({hue},40%,30%)">{}</text></svg>"##,
        escape_html(&initials)
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}

/// Only web URLs are put into `src` attributes (the catalog accepts nothing else either).
pub fn is_web_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// An order status in words: the shopper's, which staff read too (one wording for both).
pub fn status_label(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "Pending",
        OrderStatus::AwaitingPayment => "Awaiting payment",
        OrderStatus::Paid => "Paid",
        OrderStatus::Confirmed => "Confirmed",
        OrderStatus::Shipped => "Shipped",
        OrderStatus::Delivered => "Delivered",
        OrderStatus::Cancelled => "Cancelled",
        OrderStatus::PaymentFailed => "Payment failed",
        OrderStatus::Refunded => "Refunded",
        OrderStatus::PartiallyRefunded => "Partially refunded",
    }
}

/// A choice of a status filter: the status as the query carries it, and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusOption {
    pub value: &'static str,
    pub label: &'static str,
}

/// Every order status with its words, for the order filters (shopper's history and staff list).
pub fn status_options() -> Vec<StatusOption> {
    OrderStatus::ALL
        .into_iter()
        .map(|s| StatusOption {
            value: s.as_str(),
            label: status_label(s),
        })
        .collect()
}

/// A status filter as typed in a query: a known status, or none (everything).
pub fn status_filter(typed: &str) -> Option<OrderStatus> {
    typed.trim().parse().ok()
}

/// Units of `sku` (of `ordered`) that may still be returned: those not already in a return that
/// was not rejected.
pub fn returnable(sku: &str, ordered: i64, returns: &[ReturnView]) -> i64 {
    let taken: i64 = returns
        .iter()
        .filter(|r| r.status != ReturnStatus::Rejected)
        .flat_map(|r| &r.lines)
        .filter(|l| l.sku == sku)
        .map(|l| l.quantity)
        .sum();
    (ordered - taken).max(0)
}

/// The return form's `qty:<SKU>` fields: the lines with a positive whole number of units, or the
/// message for the first field that is not one.
pub fn return_lines(fields: &[(String, String)]) -> Result<Vec<(String, i64)>, (String, String)> {
    let mut lines = Vec::new();
    for (name, value) in fields {
        let Some(sku) = name.strip_prefix("qty:") else { continue };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match value.parse::<i64>() {
            Ok(0) => {}
            Ok(n) if n > 0 => lines.push((sku.to_owned(), n)),
            _ => return Err((name.clone(), "Enter a whole number of items.".to_owned())),
        }
    }
    Ok(lines)
}

/// A return's status in words.
pub fn return_status_label(status: ReturnStatus) -> &'static str {
    match status {
        ReturnStatus::Requested => "Requested — waiting for our decision",
        ReturnStatus::Approved => "Approved — please send the items",
        ReturnStatus::Rejected => "Declined",
        ReturnStatus::Received => "Received — refund on its way",
        ReturnStatus::Refunded => "Refunded",
    }
}

/// What the shopper reads when the payment of a just-placed order failed (`reason` is the
/// provider's decline code recorded in the order's timeline).
pub fn payment_failure_message(reason: &str) -> String {
    let why = match reason {
        "insufficient_funds" => "Your card was declined: insufficient funds.",
        "expired_card" => "Your card was declined: it has expired.",
        "incorrect_cvc" => "Your card was declined: the CVC is not right.",
        "processing_error" => "The payment could not be processed.",
        _ => "Your card was declined.",
    };
    format!("{why} Nothing was charged and your cart is kept: choose another card and place the order again.")
}

/// A value for one segment of a URL path (SKUs, slugs, ids from forms).
pub fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Minor units as a decimal for a form field (1250 → "12.50").
pub fn minor_to_decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// The sort orders a listing offers, with their labels.
pub const SORTS: [(&str, &str); 5] = [
    ("relevance", "Best match"),
    ("newest", "Newest"),
    ("price_asc", "Price: low to high"),
    ("price_desc", "Price: high to low"),
    ("rating", "Best rated"),
];

/// The filters of a category or search page, as they appear in the page's own URL (prices as
/// typed decimals, so a shared link reads naturally).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListingFilters {
    pub q: String,
    pub brands: Vec<String>,
    pub min_price: String,
    pub max_price: String,
    pub in_stock: bool,
    pub sort: String,
    pub cursor: String,
    /// `key:value` attribute filters, passed through to the catalog.
    pub attrs: Vec<String>,
}

impl ListingFilters {
    /// Reads the page's query string; unknown keys are ignored (tracking parameters and such).
    pub fn from_query(query: &str) -> Self {
        let mut f = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim().to_owned();
            match key.as_ref() {
                "q" => f.q = value,
                "brand" if !value.is_empty() && !f.brands.contains(&value) => f.brands.push(value),
                "min_price" => f.min_price = value,
                "max_price" => f.max_price = value,
                "in_stock" => f.in_stock = matches!(value.as_str(), "1" | "true" | "on"),
                "sort" if SORTS.iter().any(|(s, _)| *s == value) => f.sort = value,
                "cursor" => f.cursor = value,
                "attr" if value.contains(':') => f.attrs.push(value),
                _ => {}
            }
        }
        f
    }

    /// Whether anything narrows the list (besides the search words).
    pub fn is_filtered(&self) -> bool {
        !self.brands.is_empty()
            || !self.min_price.is_empty()
            || !self.max_price.is_empty()
            || self.in_stock
            || !self.attrs.is_empty()
    }

    /// The catalog's query string for these filters (`category` and `limit` added), and the
    /// messages for the price fields that could not be read (those filters are left out).
    pub fn api_query(&self, category: Option<&str>, limit: u32) -> (String, Vec<(&'static str, String)>) {
        let mut errors = Vec::new();
        let mut out = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            out.append_pair("q", &self.q);
        }
        if let Some(category) = category {
            out.append_pair("category", category);
        }
        for brand in &self.brands {
            out.append_pair("brand", brand);
        }
        let min = price_filter(&self.min_price, "min_price", &mut errors);
        let max = price_filter(&self.max_price, "max_price", &mut errors);
        match (min, max) {
            (Some(min), Some(max)) if min > max => {
                errors.push(("max_price", "Must not be below the minimum price.".to_owned()));
                out.append_pair("min_price", &min.to_string());
            }
            (min, max) => {
                if let Some(min) = min {
                    out.append_pair("min_price", &min.to_string());
                }
                if let Some(max) = max {
                    out.append_pair("max_price", &max.to_string());
                }
            }
        }
        if self.in_stock {
            out.append_pair("in_stock", "true");
        }
        for attr in &self.attrs {
            out.append_pair("attr", attr);
        }
        // Relevance needs search words; without them the catalog's default (newest) applies.
        if !self.sort.is_empty() && (self.sort != "relevance" || !self.q.is_empty()) {
            out.append_pair("sort", &self.sort);
        }
        if !self.cursor.is_empty() {
            out.append_pair("cursor", &self.cursor);
        }
        out.append_pair("limit", &limit.to_string());
        (out.finish(), errors)
    }

    /// This page's URL under `base` with the filters (no cursor: filters start from page one).
    pub fn url(&self, base: &str) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            out.append_pair("q", &self.q);
        }
        for brand in &self.brands {
            out.append_pair("brand", brand);
        }
        if !self.min_price.is_empty() {
            out.append_pair("min_price", &self.min_price);
        }
        if !self.max_price.is_empty() {
            out.append_pair("max_price", &self.max_price);
        }
        if self.in_stock {
            out.append_pair("in_stock", "1");
        }
        for attr in &self.attrs {
            out.append_pair("attr", attr);
        }
        if !self.sort.is_empty() {
            out.append_pair("sort", &self.sort);
        }
        if !self.cursor.is_empty() {
            out.append_pair("cursor", &self.cursor);
        }
        let query = out.finish();
        if query.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{query}")
        }
    }

    /// The same filters on the page after `next`.
    pub fn next_page_url(&self, base: &str, next: &str) -> String {
        Self {
            cursor: next.to_owned(),
            ..self.clone()
        }
        .url(base)
    }

    /// The same filters with another price range (a price facet's link).
    pub fn with_price_range(&self, base: &str, min: i64, max: Option<i64>) -> String {
        Self {
            min_price: minor_to_decimal(min),
            max_price: max.map(minor_to_decimal).unwrap_or_default(),
            cursor: String::new(),
            ..self.clone()
        }
        .url(base)
    }

    /// Only the search words (and sort): "clear filters".
    pub fn cleared_url(&self, base: &str) -> String {
        Self {
            q: self.q.clone(),
            sort: self.sort.clone(),
            ..Self::default()
        }
        .url(base)
    }
}

fn price_filter(typed: &str, field: &'static str, errors: &mut Vec<(&'static str, String)>) -> Option<i64> {
    if typed.is_empty() {
        return None;
    }
    match parse_money(typed) {
        Ok(minor) => Some(minor),
        Err(why) => {
            errors.push((field, format!("The price {why}.")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_whole_numbers_within_the_limit() {
        assert_eq!(parse_quantity("2", 10), Ok(2));
        assert_eq!(parse_quantity(" 10 ", 10), Ok(10));
        assert!(parse_quantity("abc", 10).expect_err("letters").contains("whole number"));
        assert!(parse_quantity("", 10).expect_err("empty").contains("Enter"));
        assert!(parse_quantity("0", 10).expect_err("zero").contains("1 to 10"));
        assert!(parse_quantity("11", 10).is_err());
        assert!(parse_quantity("1.5", 10).is_err());
        assert!(parse_quantity("-1", 10).is_err());
        assert!(parse_quantity("99999999999999999999", 10).is_err());
        // Nothing in stock still lets the shopper ask for one: the API explains the refusal.
        assert_eq!(parse_quantity("1", 0), Ok(1));
        assert_eq!(parse_line_quantity("0"), Ok(0));
        assert_eq!(parse_line_quantity("3"), Ok(3));
        assert!(parse_line_quantity("x").expect_err("letter").contains("0 removes"));
    }

    #[test]
    fn stock_is_worded_for_shoppers() {
        assert_eq!(stock_status(0, 3), ("out", "Out of stock".into()));
        assert_eq!(stock_status(-2, 3), ("out", "Out of stock".into()));
        assert_eq!(stock_status(3, 0), ("low", "Only 3 left".into()));
        assert_eq!(stock_status(8, 10), ("low", "Only 8 left".into()));
        assert_eq!(stock_status(40, 3), ("in_stock", "In stock".into()));
    }

    #[test]
    fn placeholders_escape_the_name_and_are_data_urls() {
        let url = placeholder_image("<script>alert(1)</script> lamp", "SKU-1");
        assert!(url.starts_with("data:image/svg+xml;base64,"));
        let svg = base64::engine::general_purpose::STANDARD
            .decode(url.trim_start_matches("data:image/svg+xml;base64,"))
            .expect("base64");
        let svg = String::from_utf8(svg).expect("utf8");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains(">SL<"), "{svg}");
        assert_eq!(placeholder_image("A b", "x"), placeholder_image("A b", "x"));
        assert!(is_web_url("https://img.example/x.jpg"));
        assert!(!is_web_url("javascript:alert(1)"));
    }

    #[test]
    fn order_and_return_states_are_worded_for_shoppers() {
        assert_eq!(
            return_status_label(ReturnStatus::Approved),
            "Approved — please send the items"
        );
        assert_eq!(status_label(OrderStatus::PaymentFailed), "Payment failed");
        let options = status_options();
        assert_eq!(options.len(), OrderStatus::ALL.len());
        assert_eq!(
            options[1],
            StatusOption {
                value: "awaiting_payment",
                label: "Awaiting payment"
            }
        );
        assert_eq!(status_filter(" shipped "), Some(OrderStatus::Shipped));
        assert_eq!(status_filter("lost"), None);
        assert_eq!(status_filter(""), None);
        assert!(payment_failure_message("card_declined").starts_with("Your card was declined."));
        assert!(payment_failure_message("insufficient_funds").contains("insufficient funds"));
    }

    #[test]
    fn path_segments_and_decimals() {
        assert_eq!(path_segment("TEE-RED-M"), "TEE-RED-M");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(minor_to_decimal(1250), "12.50");
        assert_eq!(minor_to_decimal(5), "0.05");
    }

    #[test]
    fn listing_filters_round_trip_and_become_the_catalog_query() {
        let f = ListingFilters::from_query(
            "q=lamp&brand=Acme&brand=Zed&brand=Acme&min_price=10&max_price=25.5&in_stock=1&sort=price_asc&utm=x",
        );
        assert_eq!(f.brands, ["Acme", "Zed"]);
        assert!(f.is_filtered());
        let (query, errors) = f.api_query(Some("cat-id"), 24);
        assert!(errors.is_empty());
        assert_eq!(
            query,
            "q=lamp&category=cat-id&brand=Acme&brand=Zed&min_price=1000&max_price=2550&in_stock=true&sort=price_asc&limit=24"
        );
        assert_eq!(ListingFilters::from_query(&f.url("/search")[8..]), f);
        assert_eq!(f.cleared_url("/search"), "/search?q=lamp&sort=price_asc");
        assert!(f.next_page_url("/search", "abc").ends_with("&cursor=abc"));
        assert!(
            f.with_price_range("/search", 0, Some(2500))
                .contains("min_price=0.00&max_price=25.00")
        );
    }

    #[test]
    fn unreadable_prices_are_reported_and_left_out() {
        let f = ListingFilters::from_query("min_price=abc&max_price=5&sort=relevance&sort=bogus");
        let (query, errors) = f.api_query(None, 10);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "min_price");
        // Relevance without search words falls back to the catalog's default order.
        assert_eq!(query, "max_price=500&limit=10");
        let f = ListingFilters::from_query("min_price=9&max_price=5");
        let (_, errors) = f.api_query(None, 10);
        assert_eq!(errors[0].0, "max_price");
    }

    #[test]
    fn what_may_still_be_returned() {
        let returned = |status: &str, quantity: i64| -> ReturnView {
            serde_json::from_value(serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000001",
                "order_id": "00000000-0000-0000-0000-000000000002",
                "order_number": "EMP-000001",
                "user_id": "00000000-0000-0000-0000-000000000003",
                "status": status,
                "reason": "too small",
                "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": quantity,
                           "unit_price": {"amount": 900, "currency": "EUR"}}],
                "processing": false,
                "created_at": "2026-11-23T10:00:00Z",
                "updated_at": "2026-11-23T10:00:00Z",
            }))
            .expect("a return view")
        };
        let returns = [returned("requested", 2), returned("rejected", 3)];
        assert_eq!(returnable("MUG-1", 3, &returns), 1);
        assert_eq!(returnable("TEE-1", 1, &returns), 1);
        assert_eq!(returnable("MUG-1", 1, &returns), 0);
    }

    #[test]
    fn the_return_form_reads_positive_quantities() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(
            return_lines(&f(&[
                ("_csrf", "x"),
                ("qty:MUG-1", "2"),
                ("qty:TEE-1", "0"),
                ("qty:CAP-1", ""),
                ("reason", "x")
            ])),
            Ok(vec![("MUG-1".to_owned(), 2)])
        );
        assert_eq!(
            return_lines(&f(&[("qty:MUG-1", "-1")])).map_err(|(field, _)| field),
            Err("qty:MUG-1".to_owned())
        );
        assert!(return_lines(&f(&[("qty:MUG-1", "two")])).is_err());
    }
}
