//! Stylesheets and scripts, compiled into the binary and served with long cache lifetimes:
//! their URLs carry a hash of the content (`static_url("app.css")`), so a new release is never
//! served stale.

use std::sync::LazyLock;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use platform::http::Path;
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/app.js"),
    },
    Asset {
        name: "storefront.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/storefront.css"),
    },
    Asset {
        name: "storefront.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/storefront.js"),
    },
    Asset {
        name: "account.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/account.css"),
    },
    Asset {
        name: "admin.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/admin.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../static/favicon.svg"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/console.js"),
    },
    Asset {
        name: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/admin.js"),
    },
];

static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| hex::encode(&Sha256::digest(a.body.as_bytes())[..6]))
        .collect()
});

/// The cache-busting URL of asset `name` (`/static/app.css?v=…`).
pub fn url(name: &str) -> String {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => format!("/static/{name}?v={}", VERSIONS[i]),
        None => format!("/static/{name}"),
    }
}

pub(crate) fn routes() -> Router {
    Router::new()
        .route("/static/{name}", get(serve))
        // Browsers ask for it on their own, whatever the page says.
        .route("/favicon.ico", get(|| serve(Path("favicon.svg".to_owned()))))
}

async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}
