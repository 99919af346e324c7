//! Checkout: address, shipping method, coupon and card, the total to pay, and placing the order
//! from the cart.
//!
//! The page always shows the total payable (items, shipping, tax, discount) next to "Place order":
//! it is quoted when the page is rendered (from the destination country, shipping method and
//! coupon: nothing else changes it), again by the page's script whenever those change
//! (`POST /checkout/quote`), and on "Update totals" without the script. The total shown travels
//! with the form as `expected_total`, always: ordering refuses the order (409) when the total is
//! not the one the shopper saw, and the page then shows the new total to confirm.
//!
//! The form carries an `Idempotency-Key` made when it was rendered, so submitting the same form
//! twice (a double click, a reload) places one order: ordering answers the second request with
//! the first one's order. A form re-rendered after a refusal gets a new key (it is a new attempt).

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::cart::{AddItemRequest, SetQuantityRequest};
use contracts::api::identity::{AddressBook, AddressRequest, AddressView};
use contracts::api::money::{MoneyInput, MoneyView};
use contracts::api::ordering::{CheckoutRequest, OrderStatus, OrderView, QuoteView, RawAddress, ShippingMethods};
use contracts::api::payments::{CreateMethodRequest, MethodList, MethodView};
use contracts::kernel::PostalAddress;
use http::StatusCode;
use minijinja::context;
use platform::client::Reply;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::cart::load_cart;
use super::present;
use crate::api::Api;
use crate::countries::{country_name, country_options};

const ADDRESS_BOOK: &str = "/api/v1/users/me/addresses";
use crate::forms::{FieldErrors, Form, Refusal, RefusedField};
use crate::render::{format_money, page_with_status, value_of};
use crate::{CardEntry, PageError, Session, WebState};

/// The form's fields, all as typed (re-rendered as they were, except the card number and CVC).
#[derive(Debug, Default, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    idempotency_key: String,
    /// `quote` (update totals) or `place`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    shipping_method: String,
    #[serde(default)]
    coupon: String,
    /// A saved card's id, or `new`.
    #[serde(default)]
    payment_method: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    cvc: String,
    /// Stripe mode: the token Stripe.js made of the card in the shopper's browser.
    #[serde(default)]
    provider_token: String,
    /// "Save this card for next time" (a checkbox: present when ticked).
    #[serde(default)]
    save_card: String,
    /// "Save this address to my address book" (a checkbox: present when ticked).
    #[serde(default)]
    save_address: String,
    /// The total shown next to the button (minor units of `expected_currency`).
    #[serde(default)]
    expected_total: String,
    #[serde(default)]
    expected_currency: String,
}

fn new_idempotency_key() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("web-checkout-{}", hex::encode(bytes))
}

/// Which input an API field error belongs to (`shipping_address.city` → `city`).
fn form_field(api_field: &str) -> &str {
    let field = api_field.strip_prefix("shipping_address.").unwrap_or(api_field);
    match field {
        "from_cart" | "items" => "_form",
        "holder_name" => "name",
        other if other.starts_with("items[") => "_form",
        other => other,
    }
}

/// A 409 of ordering's `…/price-changed` type carries the new quote.
#[derive(Debug, Deserialize)]
struct PriceChanged {
    quote: QuoteView,
}

fn errors_from_problem(reply: &Reply) -> FieldErrors {
    let mut errors = FieldErrors::new();
    for RefusedField { field, message } in &Refusal::of(reply).errors {
        let target = form_field(field);
        if target == "_form" || target == "Idempotency-Key" {
            errors.add("_form", message_for(field, message));
        } else {
            errors.add(target, humanize(target, message));
        }
    }
    if errors.is_empty() {
        errors.add("_form", capitalize(&reply.problem_detail()));
    }
    errors
}

fn message_for(field: &str, message: &str) -> String {
    match field {
        "from_cart" => "Your cart is empty: add something before checking out.".into(),
        "Idempotency-Key" => {
            "This checkout form was already used for another order. Please check the details and place the order again."
                .into()
        }
        _ => capitalize(message),
    }
}

/// "is required" on `city` → "City is required." (the API words messages after the field name).
fn humanize(field: &str, message: &str) -> String {
    let label = match field {
        "name" => "Full name",
        "line1" => "Address line 1",
        "line2" => "Address line 2",
        "city" => "City",
        "postal_code" => "Postal code",
        "country" => "Country",
        "phone" => "Phone",
        "shipping_method" => "Shipping method",
        "coupon" => "Coupon code",
        "payment_method" => "Payment method",
        "card_number" => "Card number",
        "exp_month" => "Expiry month",
        "exp_year" => "Expiry year",
        "cvc" => "CVC",
        _ => return capitalize(message),
    };
    let sentence = if message.starts_with(|c: char| c.is_lowercase()) {
        format!("{label} {message}")
    } else {
        message.to_owned()
    };
    if sentence.ends_with('.') {
        sentence
    } else {
        format!("{sentence}.")
    }
}

fn capitalize(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn address(form: &CheckoutForm) -> RawAddress {
    RawAddress {
        name: form.name.trim().to_owned(),
        line1: form.line1.trim().to_owned(),
        line2: Some(form.line2.trim().to_owned()).filter(|l| !l.is_empty()),
        city: form.city.trim().to_owned(),
        postal_code: form.postal_code.trim().to_owned(),
        country: form.country.trim().to_ascii_uppercase(),
        phone: None,
    }
}

/// The cart to order, to `address`, by `shipping_method`, with the coupon if one was typed.
fn cart_checkout(address: RawAddress, shipping_method: &str, coupon: &str) -> CheckoutRequest {
    let coupon = coupon.trim();
    CheckoutRequest {
        items: None,
        from_cart: Some(true),
        shipping_address: address,
        shipping_method: shipping_method.trim().to_owned(),
        coupon: (!coupon.is_empty()).then(|| coupon.to_owned()),
        payment_method: None,
        expected_total: None,
    }
}

fn checkout_body(form: &CheckoutForm) -> CheckoutRequest {
    cart_checkout(address(form), &form.shipping_method, &form.coupon)
}

/// A quote needs only the destination country, the shipping method and the coupon.
fn quote_body(country: &str, shipping_method: &str, coupon: &str) -> CheckoutRequest {
    let destination = RawAddress {
        country: country.trim().to_ascii_uppercase(),
        ..RawAddress::default()
    };
    cart_checkout(destination, shipping_method, coupon)
}

/// The total the form says was shown, as ordering takes it; `None` when the form has none.
fn expected_total(form: &CheckoutForm) -> Option<MoneyInput> {
    let amount = form.expected_total.trim().parse::<i64>().ok()?;
    let currency = form.expected_currency.trim();
    Some(MoneyInput::Object {
        amount,
        currency: (!currency.is_empty()).then(|| currency.to_ascii_uppercase()),
    })
}

/// Quotes with what changes the total; `Err` with a sentence to show when ordering refuses.
async fn quote_for(
    api: &Api<'_>,
    country: &str,
    shipping_method: &str,
    coupon: &str,
) -> Result<Result<QuoteView, String>, PageError> {
    let reply = api
        .post(
            "ordering",
            "/api/v1/orders/quote",
            &quote_body(country, shipping_method, coupon),
        )
        .await?;
    if reply.is_success() {
        return Ok(Ok(api.decode(reply)?));
    }
    match reply.status {
        StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = errors_from_problem(&reply);
            let message = ["coupon", "country", "shipping_method", "_form"]
                .iter()
                .find_map(|f| errors.get(f))
                .map_or_else(|| capitalize(&reply.problem_detail()), str::to_owned);
            Ok(Err(message))
        }
        _ => Err(api.error_for(&reply)),
    }
}

/// The figures of a quote as the page (and its script) shows them: formatted amounts, and the
/// total the form sends back as `expected_total`.
#[derive(Debug, Serialize)]
struct QuoteFigures {
    subtotal: String,
    /// `None` without a discount (the row is hidden).
    discount: Option<String>,
    coupon: Option<String>,
    shipping: String,
    tax: String,
    tax_label: String,
    total: String,
    expected_total: i64,
    expected_currency: String,
}

fn quote_figures(quote: &QuoteView) -> QuoteFigures {
    let money = |m: &MoneyView| format_money(m.amount, &m.currency);
    let t = &quote.totals;
    QuoteFigures {
        subtotal: money(&t.subtotal),
        discount: (t.discount.amount != 0).then(|| money(&t.discount)),
        coupon: quote.coupon.clone(),
        shipping: money(&t.shipping),
        tax: money(&t.tax),
        tax_label: format!("Tax ({})", percent(u64::from(t.tax_rate_bp))),
        total: money(&t.total),
        expected_total: t.total.amount,
        expected_currency: t.total.currency.clone(),
    }
}

/// 2100 basis points → "21%", 1950 → "19.5%".
fn percent(bp: u64) -> String {
    let whole = bp / 100;
    match bp % 100 {
        0 => format!("{whole}%"),
        rest if rest % 10 == 0 => format!("{whole}.{}%", rest / 10),
        rest => format!("{whole}.{rest:02}%"),
    }
}

/// `POST /checkout/quote` (the page's script): the total for the form's country, shipping method
/// and coupon, as the figures to show; 422 with a `message` when it cannot be quoted.
pub async fn quote(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let api = web.api(&session);
    match quote_for(&api, &form.country, &form.shipping_method, &form.coupon).await? {
        Ok(quote) => Ok(Json(quote_figures(&quote)).into_response()),
        Err(message) => Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "message": message }))).into_response()),
    }
}

/// What the page shows besides the form: a message, the quote, and how to answer.
struct Outcome {
    errors: FieldErrors,
    message: Option<String>,
    quote: Option<QuoteView>,
    status: StatusCode,
}

impl Outcome {
    fn refused(errors: FieldErrors) -> Self {
        Self {
            errors,
            message: None,
            quote: None,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// Renders the checkout page with the cart, shipping methods and saved cards read now.
async fn render(
    web: &WebState,
    session: &Session,
    form: CheckoutForm,
    outcome: Outcome,
) -> Result<Response, PageError> {
    render_with_book(web, session, form, outcome, None).await
}

/// [`render`], with the address book when the caller has read it already (`None`: read it here,
/// beside the other calls).
async fn render_with_book(
    web: &WebState,
    session: &Session,
    form: CheckoutForm,
    outcome: Outcome,
    known_book: Option<Vec<AddressView>>,
) -> Result<Response, PageError> {
    let api = web.api(session);
    let book = async {
        match known_book {
            Some(book) => book,
            None => address_book(&api).await,
        }
    };
    let (cart, methods, cards, book) = tokio::join!(
        load_cart(&api, session),
        api.get_json::<ShippingMethods>("ordering", "/api/v1/orders/shipping-methods"),
        api.get_json::<MethodList>("payments", "/api/v1/payments/methods"),
        // Boxed: four calls in one join make every caller's future too large to move around.
        Box::pin(book),
    );
    let (cart, methods, cards) = (cart?, methods?, cards?.items);
    let Some(cart) = cart.filter(|c| !c.items.is_empty()) else {
        session.flash(
            "info",
            "Your cart is empty. If you have just placed an order, you will find it under Orders.",
        );
        return Ok(Redirect::to("/cart").into_response());
    };
    let countries = &methods.countries;
    let first_method = methods.methods.first().map(|m| m.id.clone()).unwrap_or_default();
    let default_country = if countries.iter().any(|c| c == "DE") {
        "DE".to_owned()
    } else {
        countries.first().cloned().unwrap_or_default()
    };
    // No card is chosen for the shopper: a saved card is used only when picked. A card typed for
    // this checkout and not saved is not listed, so the form asks for a card again.
    let payment_method = match form.payment_method.as_str() {
        chosen if cards.iter().any(|c| c.id == chosen) => chosen.to_owned(),
        _ => "new".to_owned(),
    };
    let country = if form.country.is_empty() {
        default_country
    } else {
        form.country.to_ascii_uppercase()
    };
    let shipping_method = if form.shipping_method.is_empty() {
        first_method
    } else {
        form.shipping_method.clone()
    };
    // The total next to "Place order", whenever the button can be pressed.
    let (quote, quote_error) = match outcome.quote {
        Some(q) => (Some(q), None),
        None => match quote_for(&api, &country, &shipping_method, &form.coupon).await? {
            Ok(q) => (Some(q), None),
            Err(message) => (None, Some(message)),
        },
    };
    // Never show a card number again; the last four digits help the shopper see which one it was.
    let digits: String = form.card_number.chars().filter(char::is_ascii_digit).collect();
    let card_hint = (digits.len() >= 4).then(|| digits[digits.len() - 4..].to_owned());
    let figures = quote.as_ref().map(quote_figures);
    let stripe = match &web.config().card_entry {
        CardEntry::Typed => None,
        CardEntry::Stripe {
            publishable_key,
            js_url,
            csp,
        } => Some((
            context! { publishable_key => publishable_key, js_url => js_url },
            csp.clone(),
        )),
    };
    let mut page = page_with_status(
        outcome.status,
        session,
        "shop/checkout.html",
        context! {
            stripe => stripe.as_ref().map(|(s, _)| s.clone()),
            cart => value_of(&cart),
            methods => value_of(&methods.methods),
            currency => methods.currency.clone(),
            countries => value_of(country_options(countries)),
            cards => value_of(&cards),
            addresses => value_of(saved_address_options(&book, countries)),
            quote => value_of(&quote),
            figures => value_of(&figures),
            quote_error => quote_error,
            message => outcome.message,
            errors => outcome.errors,
            idempotency_key => new_idempotency_key(),
            card_hint => card_hint,
            form => context! {
                name => form.name,
                line1 => form.line1,
                line2 => form.line2,
                city => form.city,
                postal_code => form.postal_code,
                country => country,
                shipping_method => shipping_method,
                coupon => form.coupon,
                payment_method => payment_method,
                save_card => !form.save_card.is_empty(),
                save_address => !form.save_address.is_empty(),
                exp_month => form.exp_month,
                exp_year => form.exp_year,
            },
        },
    )?;
    // Stripe.js comes from Stripe's origin: this page's policy allows it, and only this page's.
    if let Some((_, csp)) = stripe
        && let Ok(csp) = axum::http::HeaderValue::from_str(&csp)
    {
        page.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(page)
}

/// `/checkout?address=<id>`: start from that saved address instead of the default.
#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    address: Option<String>,
}

pub async fn show(
    State(web): State<WebState>,
    session: Session,
    Query(query): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let user = session.require_user()?;
    let book = address_book(&web.api(&session)).await;
    let chosen = match query.address.as_deref() {
        Some(id) => book.iter().find(|a| a.id.to_string() == id),
        None => book.iter().find(|a| a.is_default),
    };
    let form = match chosen {
        Some(saved) => {
            let a = &saved.address;
            CheckoutForm {
                name: a.name.clone(),
                line1: a.line1.clone(),
                line2: a.line2.clone().unwrap_or_default(),
                city: a.city.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
                ..CheckoutForm::default()
            }
        }
        None => CheckoutForm {
            name: user.name,
            ..CheckoutForm::default()
        },
    };
    let outcome = Outcome {
        errors: FieldErrors::new(),
        message: None,
        quote: None,
        status: StatusCode::OK,
    };
    render_with_book(&web, &session, form, outcome, Some(book)).await
}

pub async fn submit(
    State(web): State<WebState>,
    session: Session,
    Form(mut form): Form<CheckoutForm>,
) -> Result<Response, PageError> {
    if session.user().is_none() {
        return Err(PageError::LoginRequired {
            next: "/checkout".into(),
        });
    }
    let api = web.api(&session);
    let mut body = checkout_body(&form);
    let saved_card = !form.payment_method.is_empty() && form.payment_method != "new";
    let placing = form.action == "place";
    if placing {
        // Never charge a total the page did not show: an old page without one shows it first.
        let Some(expected) = expected_total(&form) else {
            let outcome = Outcome {
                errors: FieldErrors::new(),
                message: Some("Please check the total to pay below, then place the order.".into()),
                quote: None,
                status: StatusCode::CONFLICT,
            };
            return render(&web, &session, form, outcome).await;
        };
        body.expected_total = Some(expected);
    }

    // With a saved card the order is placed straight away: the same form submitted twice sends
    // the same body with the same key, so ordering answers the second with the first's order.
    // Otherwise the quote checks the address, shipping method, coupon, stock and the total shown
    // before the card is stored (a typo in the address must not leave a card behind).
    let quote = if placing && saved_card {
        None
    } else {
        // "Update totals" asks only what changes the total (the address is checked on placing).
        let asked = if placing {
            body.clone()
        } else {
            quote_body(&form.country, &form.shipping_method, &form.coupon)
        };
        let reply = api.post("ordering", "/api/v1/orders/quote", &asked).await?;
        match reply.status {
            s if s.is_success() => Some(api.decode::<QuoteView>(reply)?),
            StatusCode::CONFLICT => return render(&web, &session, form, conflict(&reply)).await,
            StatusCode::UNPROCESSABLE_ENTITY => {
                return render(&web, &session, form, Outcome::refused(errors_from_problem(&reply))).await;
            }
            _ => return Err(api.error_for(&reply)),
        }
    };
    if !placing {
        let outcome = Outcome {
            errors: FieldErrors::new(),
            message: None,
            quote,
            status: StatusCode::OK,
        };
        return render(&web, &session, form, outcome).await;
    }

    let payment_method = if saved_card {
        form.payment_method.clone()
    } else {
        match save_card(&api, &web.config().card_entry, &form).await? {
            Ok(id) => id,
            Err(errors) => {
                let outcome = Outcome {
                    quote,
                    ..Outcome::refused(errors)
                };
                return render(&web, &session, form, outcome).await;
            }
        }
    };
    // A saved card is offered by a re-rendered form instead of asking for it again.
    form.payment_method = payment_method.clone();

    body.payment_method = Some(payment_method);
    let keyed = web.api(&session).idempotency_key(idempotency_key_of(&form));
    let reply = place(&keyed, &body).await?;
    match reply.status {
        s if s.is_success() => {
            let order: OrderView = api.decode(reply)?;
            if !form.save_address.is_empty() {
                save_address(&api, &session, &body.shipping_address).await;
            }
            // An order view is large: its future goes on the heap.
            Box::pin(placed(&web, &session, form, order)).await
        }
        StatusCode::CONFLICT => render(&web, &session, form, conflict(&reply)).await,
        StatusCode::UNPROCESSABLE_ENTITY if names_field(&reply, "Idempotency-Key") => {
            // This form already placed an order (submitted again with a card typed anew).
            session.flash(
                "info",
                "This order was already placed: you will find it at the top of your orders.",
            );
            Ok(Redirect::to("/orders").into_response())
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let outcome = Outcome {
                quote,
                ..Outcome::refused(errors_from_problem(&reply))
            };
            render(&web, &session, form, outcome).await
        }
        _ => Err(api.error_for(&reply)),
    }
}

/// The shopper's saved addresses; none when identity cannot answer now (checkout still works,
/// with the address typed).
async fn address_book(api: &Api<'_>) -> Vec<AddressView> {
    match api.get_json::<AddressBook>("identity", ADDRESS_BOOK).await {
        Ok(book) => book.items,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the address book for checkout");
            Vec::new()
        }
    }
}

/// A saved address as checkout lists it: where the shop does not ship, it is shown but cannot
/// be used.
#[derive(Debug, Serialize)]
struct SavedAddressOption<'a> {
    id: String,
    title: &'a str,
    summary: String,
    is_default: bool,
    shipped_to: bool,
}

fn saved_address_options<'a>(book: &'a [AddressView], countries: &[String]) -> Vec<SavedAddressOption<'a>> {
    book.iter()
        .map(|saved| {
            let a = &saved.address;
            SavedAddressOption {
                id: saved.id.to_string(),
                title: saved.label.as_deref().unwrap_or(&a.name),
                summary: format!(
                    "{}, {} {}, {}",
                    a.line1,
                    a.postal_code,
                    a.city,
                    country_name(&a.country)
                ),
                is_default: saved.is_default,
                shipped_to: countries.iter().any(|c| c.eq_ignore_ascii_case(&a.country)),
            }
        })
        .collect()
}

/// Whether two addresses are the same place for the same person, once both are normalised by
/// the kernel's address rules (trimmed, country upper-cased, a blank line 2 absent). The phone
/// is left out: checkout does not ask for one.
fn same_address(saved: &RawAddress, typed: &RawAddress) -> bool {
    let place = |raw: &RawAddress| {
        PostalAddress::parse(raw, |_| Ok(())).ok().map(|a| RawAddress {
            phone: None,
            ..a.to_raw()
        })
    };
    matches!((place(saved), place(typed)), (Some(a), Some(b)) if a == b)
}

/// "Save this address": adds the order's address to the book unless it is there already. The
/// order is placed whatever happens here; a full book is said so on the next page.
async fn save_address(api: &Api<'_>, session: &Session, address: &RawAddress) {
    if address_book(api)
        .await
        .iter()
        .any(|a| same_address(&a.address, address))
    {
        return;
    }
    let request = AddressRequest {
        label: None,
        address: address.clone(),
        default: false,
    };
    match api.post("identity", ADDRESS_BOOK, &request).await {
        Ok(reply) if reply.is_success() => {}
        Ok(reply) if reply.status == StatusCode::CONFLICT => session.flash(
            "info",
            "Your address book is full, so this address was not saved. Remove one under Account → Addresses.",
        ),
        Ok(reply) => {
            tracing::info!(status = %reply.status, detail = reply.problem_detail(), "could not save the checkout address")
        }
        Err(e) => tracing::info!(error = %e, "could not save the checkout address"),
    }
}

fn names_field(reply: &Reply, field: &str) -> bool {
    Refusal::of(reply).names(field)
}

/// The form's key, or a fresh one when the form came without (an old page).
fn idempotency_key_of(form: &CheckoutForm) -> String {
    let key = form.idempotency_key.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        new_idempotency_key()
    } else {
        key.to_owned()
    }
}

/// Places the order; while an earlier submission of the same form is still running (a double
/// submit), waits for it and answers with its order.
async fn place(api: &Api<'_>, body: &CheckoutRequest) -> Result<Reply, PageError> {
    let mut reply = api.post("ordering", "/api/v1/orders", body).await?;
    for _ in 0..3 {
        let running = reply.status == StatusCode::CONFLICT && reply.problem_detail().contains("still being processed");
        if !running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        reply = api.post("ordering", "/api/v1/orders", body).await?;
    }
    Ok(reply)
}

/// Saves the typed card with payments; its id, or the field errors to show.
async fn save_card(
    api: &Api<'_>,
    entry: &CardEntry,
    form: &CheckoutForm,
) -> Result<Result<String, FieldErrors>, PageError> {
    let mut errors = FieldErrors::new();
    if let CardEntry::Stripe { .. } = entry {
        let token = form.provider_token.trim();
        if token.is_empty() {
            errors.add(
                "provider_token",
                "Enter your card in the card form. It is Stripe's own form, and it needs JavaScript; or pick a saved card.",
            );
            return Ok(Err(errors));
        }
        let body = CreateMethodRequest {
            provider_token: Some(token.to_owned()),
            save: !form.save_card.is_empty(),
            ..CreateMethodRequest::default()
        };
        return add_method(api, &body).await;
    }
    if form.card_number.trim().is_empty() {
        errors.add("card_number", "Enter the card number.");
    }
    let month = form.exp_month.trim().parse::<i64>();
    if !matches!(month, Ok(1..=12)) {
        errors.add("exp_month", "Enter the expiry month as a number from 1 to 12.");
    }
    let year = form.exp_year.trim().parse::<i64>();
    if year.is_err() {
        errors.add("exp_year", "Enter the expiry year, e.g. 2030.");
    }
    if form.cvc.trim().is_empty() {
        errors.add("cvc", "Enter the 3 or 4 digits on the back of the card.");
    }
    let (Ok(month), Ok(year)) = (month, year) else {
        return Ok(Err(errors));
    };
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let holder = form.name.trim();
    let body = CreateMethodRequest {
        card_number: Some(form.card_number.trim().to_owned()),
        exp_month: Some(month),
        exp_year: Some(year),
        cvc: Some(form.cvc.trim().to_owned()),
        holder_name: (!holder.is_empty()).then(|| holder.to_owned()),
        provider_token: None,
        // Kept on the account only when the shopper ticked "Save this card for next time".
        save: !form.save_card.is_empty(),
    };
    add_method(api, &body).await
}

/// Adds the card with payments; its id, or the field errors to show.
async fn add_method(api: &Api<'_>, body: &CreateMethodRequest) -> Result<Result<String, FieldErrors>, PageError> {
    let reply = api.post("payments", "/api/v1/payments/methods", body).await?;
    if reply.is_success() {
        let method: MethodView = api.decode(reply)?;
        return Ok(Ok(method.id));
    }
    if reply.status == StatusCode::UNPROCESSABLE_ENTITY {
        return Ok(Err(errors_from_problem(&reply)));
    }
    Err(api.error_for(&reply))
}

/// A 409 from a quote or checkout: prices changed (the new quote is shown to confirm) or not
/// enough stock.
fn conflict(reply: &Reply) -> Outcome {
    if Refusal::of(reply).kind.ends_with("price-changed") {
        let quote = serde_json::from_slice::<PriceChanged>(&reply.body)
            .ok()
            .map(|p| p.quote);
        let total = quote
            .as_ref()
            .map(|q| format_money(q.totals.total.amount, &q.totals.total.currency));
        let message = match total {
            Some(total) => format!(
                "The total changed since it was shown: it is now {total}. Nothing was charged. Please check it below and place the order again."
            ),
            None => "Prices changed since you looked. Nothing was charged. Please check the new total below and place the order again.".into(),
        };
        return Outcome {
            errors: FieldErrors::new(),
            message: Some(message),
            quote,
            status: StatusCode::CONFLICT,
        };
    }
    Outcome {
        errors: FieldErrors::new(),
        message: Some(format!(
            "We could not place the order: {}. Please adjust your cart and try again.",
            reply.problem_detail().trim_end_matches('.')
        )),
        quote: None,
        status: StatusCode::CONFLICT,
    }
}

/// The order exists: to its page with a thank-you, or back to the form when its payment failed.
async fn placed(
    web: &WebState,
    session: &Session,
    mut form: CheckoutForm,
    order: OrderView,
) -> Result<Response, PageError> {
    let status = order.status;
    let number = &order.number;
    let id = present::path_segment(&order.id.to_string());
    match status {
        OrderStatus::PaymentFailed | OrderStatus::Cancelled => {
            let reason = order
                .timeline
                .iter()
                .rev()
                .find(|e| e.to == status)
                .map_or("card_declined", |e| e.reason.as_str())
                .to_owned();
            restore_cart(&web.api(session), &order).await;
            // Payments does not keep a card declined on its first use; the shopper picks another.
            form.payment_method = "new".into();
            let outcome = Outcome {
                errors: FieldErrors::new(),
                message: Some(present::payment_failure_message(&reason)),
                quote: None,
                status: StatusCode::UNPROCESSABLE_ENTITY,
            };
            render(web, session, form, outcome).await
        }
        _ if order.in_progress => {
            session.flash(
                "info",
                format!("Thank you! Your order {number} is placed; we are confirming the payment."),
            );
            Ok(Redirect::to(&format!("/orders/{id}")).into_response())
        }
        _ => {
            session.flash("success", format!("Thank you! Your order {number} is confirmed."));
            Ok(Redirect::to(&format!("/orders/{id}")).into_response())
        }
    }
}

/// An order whose payment failed was still placed from the cart, and the cart empties itself
/// once it hears of it. Put its lines back, so the shopper can try another card at once. Lines
/// written after the order are kept by that clean-up, so the order of events does not matter.
/// Best effort: a line that cannot go back (the stock went meanwhile) is left out.
async fn restore_cart(api: &Api<'_>, order: &OrderView) {
    for line in &order.lines {
        let (sku, quantity) = (line.sku.as_str(), line.quantity);
        let path = format!("/api/v1/cart/items/{}", present::path_segment(sku));
        for attempt in 0..5 {
            let reply = match api.put("cart", &path, &SetQuantityRequest { quantity }).await {
                Ok(r) if r.status == StatusCode::NOT_FOUND => {
                    let line = AddItemRequest {
                        sku: sku.to_owned(),
                        quantity,
                    };
                    api.post("cart", "/api/v1/cart/items", &line).await
                }
                other => other,
            };
            match reply {
                Ok(r) if r.is_success() => break,
                // The failed order's reservation may not be released yet: wait for the units.
                Ok(r) if r.status == StatusCode::CONFLICT && attempt < 4 => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Ok(r) => {
                    tracing::info!(sku, status = %r.status, detail = r.problem_detail(), "could not put a line back into the cart");
                    break;
                }
                Err(e) => {
                    tracing::info!(sku, error = %e, "could not put a line back into the cart");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_map_to_the_form_inputs() {
        assert_eq!(form_field("shipping_address.city"), "city");
        assert_eq!(form_field("shipping_address.postal_code"), "postal_code");
        assert_eq!(form_field("shipping_method"), "shipping_method");
        assert_eq!(form_field("card_number"), "card_number");
        assert_eq!(form_field("from_cart"), "_form");
        assert_eq!(form_field("items[0].quantity"), "_form");
    }

    #[test]
    fn problems_become_messages_on_the_right_inputs() {
        let reply = Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: http::HeaderMap::new(),
            body: br#"{"detail":"x","errors":[{"field":"shipping_address.city","message":"is required"},{"field":"from_cart","message":"the cart is empty"}]}"#.as_slice().into(),
        };
        let errors = errors_from_problem(&reply);
        assert_eq!(errors.get("city"), Some("City is required."));
        assert!(errors.get("_form").is_some_and(|m| m.contains("cart is empty")));
    }

    #[test]
    fn a_missing_or_odd_key_is_replaced() {
        let form = |k: &str| CheckoutForm {
            idempotency_key: k.into(),
            ..CheckoutForm::default()
        };
        assert_eq!(idempotency_key_of(&form("web-checkout-abc")), "web-checkout-abc");
        assert!(idempotency_key_of(&form("")).starts_with("web-checkout-"));
        assert_ne!(idempotency_key_of(&form("has space")), "has space");
    }
}
