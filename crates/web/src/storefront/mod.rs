//! The storefront: home, categories, search, product pages, cart, checkout and order history.

use axum::Router;

use crate::WebState;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub fn routes() -> Router<WebState> {
    Router::new()
}
