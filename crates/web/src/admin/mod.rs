//! The admin console (staff roles): catalog, inventory, orders, users, audit log, dead letters
//! and live system status.

use axum::Router;

use crate::WebState;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub fn routes() -> Router<WebState> {
    Router::new()
}
