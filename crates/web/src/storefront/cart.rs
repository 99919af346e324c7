//! The cart: showing it, adding from a product page, changing and removing lines.
//!
//! A visitor who is not signed in gets a guest cart from the cart API the first time they add
//! something; its token lives in the session and goes with every call (`X-Cart-Token`). Once
//! they sign in, the first cart call carries both the bearer and that token, and the cart API
//! merges the guest cart into theirs; the session then forgets the token.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::cart::{AddItemRequest, CartItemView, CartView, GuestCartCreated, SetQuantityRequest};
use contracts::api::catalog::RecommendationList;
use http::StatusCode;
use minijinja::context;
use platform::client::Reply;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::catalog::{ProductForms, ShownProduct, decorate_all, product_page, split_recommendations};
use super::present;
use crate::api::Api;
use crate::forms::{FieldErrors, Form};
use crate::render::{page_with_status, value_of};
use crate::{PageError, Session, WebState};

/// The session's cart as the cart API prices it now, or `None` when there is none yet (a
/// visitor who never added anything, or whose guest cart expired).
pub(super) async fn load_cart(api: &Api<'_>, session: &Session) -> Result<Option<CartView>, PageError> {
    if session.user().is_none() && session.cart_token().is_none() {
        return Ok(None);
    }
    let reply = api.get("cart", "/api/v1/cart").await?;
    if reply.status == StatusCode::NOT_FOUND && session.user().is_none() {
        session.set_cart_token(None);
        return Ok(None);
    }
    let cart: CartView = api.decode(reply)?;
    forget_merged_token(session);
    Ok(Some(cart))
}

/// After a signed-in cart call the guest cart (if any) has been merged: stop sending its token.
fn forget_merged_token(session: &Session) {
    if session.user().is_some() && session.cart_token().is_some() {
        session.set_cart_token(None);
    }
}

/// Starts a guest cart and keeps its token in the session.
async fn start_guest_cart(api: &Api<'_>, session: &Session) -> Result<(), PageError> {
    session.set_cart_token(None);
    let reply = api.post("cart", "/api/v1/cart/guest", &json!({})).await?;
    let created: GuestCartCreated = api.decode(reply)?;
    session.set_cart_token(Some(created.cart_token));
    Ok(())
}

/// A call that changes the cart, starting a guest cart first when a visitor has none (or theirs
/// expired: the cart API answers 404 for a token without a live cart).
async fn change_cart<'a, F, Fut>(api: &Api<'a>, session: &Session, call: F) -> Result<Reply, PageError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Reply, PageError>>,
{
    let guest = session.user().is_none();
    if guest && session.cart_token().is_none() {
        start_guest_cart(api, session).await?;
    }
    let mut reply = call().await?;
    if guest && reply.status == StatusCode::NOT_FOUND && is_missing_cart(&reply) {
        start_guest_cart(api, session).await?;
        reply = call().await?;
    }
    if reply.is_success() {
        forget_merged_token(session);
    }
    Ok(reply)
}

/// The 404 of a cart token without a live cart (not of an unknown line).
fn is_missing_cart(reply: &Reply) -> bool {
    let detail = reply.problem_detail();
    detail.contains("cart token") || detail.contains("no longer exists")
}

/// A cart line as the page shows it: cart's view plus the picture to show (the line's image
/// when it is a web URL, else a generated placeholder, which is also the fallback when the image
/// does not load).
#[derive(Debug, Serialize)]
struct ShownLine<'a> {
    #[serde(flatten)]
    line: &'a CartItemView,
    picture: String,
    placeholder: String,
}

fn shown_line(line: &CartItemView) -> ShownLine<'_> {
    let placeholder = present::placeholder_image(&line.name, &line.sku);
    let picture = line
        .image
        .as_deref()
        .filter(|u| present::is_web_url(u))
        .map_or_else(|| placeholder.clone(), str::to_owned);
    ShownLine {
        line,
        picture,
        placeholder,
    }
}

/// What to offer next to the cart: bought with its products, or related to them. A nicety: the
/// cart shows without it when catalog cannot answer.
async fn recommended_for(api: &Api<'_>, cart: Option<&CartView>) -> (Vec<ShownProduct>, Vec<ShownProduct>) {
    let Some(cart) = cart.filter(|c| !c.items.is_empty()) else {
        return (Vec::new(), Vec::new());
    };
    let ids: Vec<String> = cart.items.iter().take(50).map(|l| l.product_id.to_string()).collect();
    let path = format!("/api/v1/catalog/recommendations?products={}&limit=4", ids.join(","));
    match api.get_json::<RecommendationList>("catalog", &path).await {
        Ok(list) => {
            let (bought, related) = split_recommendations(list.items);
            (decorate_all(bought), decorate_all(related))
        }
        Err(e) => {
            tracing::info!(error = %e, "no recommendations for the cart");
            (Vec::new(), Vec::new())
        }
    }
}

async fn render_cart(
    api: &Api<'_>,
    session: &Session,
    cart: Option<CartView>,
    line_errors: BTreeMap<String, String>,
    quantities: BTreeMap<String, String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let items = cart.as_ref().map_or(&[][..], |c| c.items.as_slice());
    let lines: Vec<ShownLine> = items.iter().map(shown_line).collect();
    // A line that cannot be bought as it is must be fixed before checking out.
    let blocked = items.iter().any(|l| !l.available);
    let (bought_together, related) = recommended_for(api, cart.as_ref()).await;
    page_with_status(
        status,
        session,
        "shop/cart.html",
        context! {
            cart => value_of(&cart),
            lines => value_of(&lines),
            empty => items.is_empty(),
            blocked => blocked,
            line_errors => value_of(line_errors),
            quantities => value_of(quantities),
            bought_together => value_of(bought_together),
            related => value_of(related),
        },
    )
}

pub async fn show(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    let api = web.api(&session);
    let cart = load_cart(&api, &session).await?;
    Box::pin(render_cart(
        &api,
        &session,
        cart,
        BTreeMap::new(),
        BTreeMap::new(),
        StatusCode::OK,
    ))
    .await
}

#[derive(Debug, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    quantity: String,
}

pub async fn add(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<AddForm>,
) -> Result<Response, PageError> {
    let mut errors = FieldErrors::new();
    let quantity = match present::parse_quantity(&form.quantity, present::MAX_LINE_QUANTITY) {
        Ok(q) => Some(q),
        Err(message) => {
            errors.add("quantity", message);
            None
        }
    };
    if form.sku.trim().is_empty() {
        return Err(PageError::BadRequest("the form names no product".into()));
    }
    if let Some(quantity) = quantity {
        let api = web.api(&session);
        let body = AddItemRequest {
            sku: form.sku.trim().to_owned(),
            quantity,
        };
        let reply = change_cart(&api, &session, || api.post("cart", "/api/v1/cart/items", &body)).await?;
        if reply.is_success() {
            let cart: CartView = api.decode(reply)?;
            let name = cart
                .items
                .iter()
                .find(|l| l.sku == body.sku)
                .map_or("the item", |l| l.name.as_str());
            session.flash("success", format!("Added {quantity} × {name} to your cart."));
            return Ok(Redirect::to("/cart").into_response());
        }
        match reply.status {
            // Not enough stock (409) or over the line limit (422): the API's words, on the field.
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
                let problem = FieldErrors::from_problem(&reply);
                let message = problem
                    .get("quantity")
                    .or_else(|| problem.get("sku"))
                    .or_else(|| problem.get("_form"))
                    .map_or_else(|| reply.problem_detail(), str::to_owned);
                errors.add("quantity", capitalize(&message));
            }
            _ => return Err(api.error_for(&reply)),
        }
    }
    if form.slug.trim().is_empty() {
        // No product page to return to: show the message on the cart.
        session.flash(
            "error",
            errors.get("quantity").unwrap_or("That quantity cannot be added."),
        );
        return Ok(Redirect::to("/cart").into_response());
    }
    let forms = ProductForms {
        quantity: form.quantity,
        cart_errors: errors,
        ..ProductForms::default()
    };
    product_page(
        &web,
        &session,
        form.slug.trim(),
        forms,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

fn capitalize(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LineForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    quantity: String,
}

pub async fn update(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<LineForm>,
) -> Result<Response, PageError> {
    if session.user().is_none() && session.cart_token().is_none() {
        // Nothing to change: the visitor has no cart (yet, or any more).
        return Ok(Redirect::to("/cart").into_response());
    }
    let api = web.api(&session);
    let sku = form.sku.trim().to_owned();
    let path = format!("/api/v1/cart/items/{}", present::path_segment(&sku));
    let outcome = match present::parse_line_quantity(&form.quantity) {
        Err(message) => Err(message),
        Ok(quantity) => {
            let reply = api.put("cart", &path, &SetQuantityRequest { quantity }).await?;
            if reply.is_success() {
                forget_merged_token(&session);
                let message = if quantity == 0 {
                    "Removed the item from your cart."
                } else {
                    "Updated the quantity."
                };
                session.flash("success", message);
                Ok(())
            } else if matches!(reply.status, StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY) {
                Err(capitalize(&reply.problem_detail()))
            } else if reply.status == StatusCode::NOT_FOUND {
                session.flash("info", "That item is no longer in your cart.");
                Ok(())
            } else {
                return Err(api.error_for(&reply));
            }
        }
    };
    match outcome {
        Ok(()) => Ok(Redirect::to("/cart").into_response()),
        Err(message) => {
            let cart = load_cart(&api, &session).await?;
            Box::pin(render_cart(
                &api,
                &session,
                cart,
                BTreeMap::from([(sku.clone(), message)]),
                BTreeMap::from([(sku, form.quantity)]),
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    sku: String,
}

pub async fn remove(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<RemoveForm>,
) -> Result<Response, PageError> {
    if session.user().is_none() && session.cart_token().is_none() {
        return Ok(Redirect::to("/cart").into_response());
    }
    let api = web.api(&session);
    let path = format!("/api/v1/cart/items/{}", present::path_segment(form.sku.trim()));
    let reply = api.delete("cart", &path).await?;
    if reply.is_success() || reply.status == StatusCode::NOT_FOUND {
        forget_merged_token(&session);
        session.flash("success", "Removed the item from your cart.");
        return Ok(Redirect::to("/cart").into_response());
    }
    Err(api.error_for(&reply))
}
