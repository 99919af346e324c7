//! The storefront: home, categories, search, product pages, cart, checkout and order history.
//!
//! Every page is a thin handler over the JSON APIs (catalog, inventory, cart, ordering,
//! payments). The rules are the contexts': an order's page offers the actions its view lists
//! (`allowed_actions`). How pages word and read things (stock wording, status labels, how typed
//! quantities are read) are plain functions in [`present`], unit-tested there.

mod cart;
mod catalog;
mod checkout;
mod orders;
pub(crate) mod present;

use axum::Router;
use axum::routing::{get, post};

use crate::WebState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("shop/macros.html", include_str!("../../templates/shop/macros.html")),
    ("shop/home.html", include_str!("../../templates/shop/home.html")),
    ("shop/listing.html", include_str!("../../templates/shop/listing.html")),
    ("shop/product.html", include_str!("../../templates/shop/product.html")),
    ("shop/cart.html", include_str!("../../templates/shop/cart.html")),
    ("shop/checkout.html", include_str!("../../templates/shop/checkout.html")),
    ("shop/orders.html", include_str!("../../templates/shop/orders.html")),
    ("shop/order.html", include_str!("../../templates/shop/order.html")),
];

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(catalog::home))
        .route("/search", get(catalog::search))
        .route("/c/{slug}", get(catalog::category))
        .route("/p/{slug}", get(catalog::product))
        .route("/p/{slug}/reviews", post(catalog::review))
        .route("/cart", get(cart::show))
        .route("/cart/add", post(cart::add))
        .route("/cart/update", post(cart::update))
        .route("/cart/remove", post(cart::remove))
        .route("/currency", post(crate::display::choose_currency))
        .route("/checkout", get(checkout::show).post(checkout::submit))
        .route("/checkout/quote", post(checkout::quote))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::detail))
        .route("/orders/{id}/invoice.pdf", get(orders::invoice))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/orders/{id}/refund-request", post(orders::refund_request))
        .route("/orders/{id}/returns", post(orders::request_return))
}
