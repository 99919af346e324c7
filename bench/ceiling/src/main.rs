//! The "hardware ceiling" of bench/compare.sh: every GET answers the same fixed JSON body, with
//! no state, middleware, logging or metrics, on the runtime and HTTP stack Emporium uses. What a
//! read reaches of this rate is what is left after Emporium's own work per request.
//!
//! `bench-ceiling [listen address]`; without it, EMPORIUM_LISTEN (so the bench starts it as it
//! starts Emporium), else 127.0.0.1:8099.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;

/// About the size of a product summary, so the bytes on the wire are of the same order.
const BODY: &str = r#"{"id":"0193a1b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b","sku":"BENCH-000001","name":"Ceiling bench product","slug":"ceiling-bench-product","price":{"amount":"19.99","currency":"EUR"},"in_stock":true,"rating":4.5,"review_count":12}"#;

async fn fixed_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("EMPORIUM_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    // Any path: the bench points the same URLs at it as at Emporium.
    axum::serve(listener, Router::new().fallback(fixed_json)).await
}
