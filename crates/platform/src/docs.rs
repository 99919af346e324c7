//! `/openapi.json` and an interactive API docs page at `/docs`, served entirely from the binary
//! (Swagger UI is vendored under `web/vendor/swagger-ui`), so it works offline.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const BUNDLE_JS: &[u8] = include_bytes!("../../../web/vendor/swagger-ui/swagger-ui-bundle.js");
const UI_CSS: &[u8] = include_bytes!("../../../web/vendor/swagger-ui/swagger-ui.css");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Emporium API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"#;

// Kept out of the page so the Content-Security-Policy can forbid inline scripts.
const INIT_JS: &str = r#"window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null
  });
});
"#;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400")),
        ],
        body,
    )
        .into_response()
}

/// Serves `spec` at `/openapi.json` and the docs page at `/docs`.
pub fn router(spec: utoipa::openapi::OpenApi) -> Router {
    let json: Arc<String> = Arc::new(spec.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], (*json).clone()) }
            }),
        )
        .route(
            "/docs",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CONTENT_SECURITY_POLICY, CSP),
                    ],
                    PAGE,
                )
            }),
        )
        .route(
            "/docs/assets/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript", BUNDLE_JS) }),
        )
        .route(
            "/docs/assets/swagger-ui.css",
            get(|| async { asset("text/css", UI_CSS) }),
        )
        .route(
            "/docs/assets/init.js",
            get(|| async { asset("text/javascript", INIT_JS.as_bytes()) }),
        )
}
