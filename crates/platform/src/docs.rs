//! `/openapi.json` and an interactive API docs page at `/docs`, served entirely from the binary
//! (Swagger UI is vendored under `web/vendor/swagger-ui`), so it works offline.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Whether this build generates the OpenAPI document (the `openapi` feature, on in every test
/// build) or serves the checked-in one (see [`routes!`](crate::routes)).
pub const DOCUMENT_GENERATED: bool = cfg!(feature = "openapi");

/// Gzipped at build time (`build.rs`); unpacked once, on demand, for a client that takes no gzip.
const BUNDLE_JS_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js.gz"));
const UI_CSS_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css.gz"));
static BUNDLE_JS: OnceLock<Vec<u8>> = OnceLock::new();
static UI_CSS: OnceLock<Vec<u8>> = OnceLock::new();

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

/// A vendored asset kept gzipped: sent as it is to a client that accepts gzip (every browser),
/// unpacked for one that does not.
fn gzipped_asset(
    headers: &HeaderMap,
    content_type: &'static str,
    gz: &'static [u8],
    plain: &'static OnceLock<Vec<u8>>,
) -> Response {
    let mut response = if accepts_gzip(headers) {
        let mut response = asset(content_type, gz);
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        asset(content_type, plain.get_or_init(|| gunzip(gz)))
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    // The bytes were written by build.rs in this build: they always unpack.
    crate::gzip::gunzip(gz).unwrap_or_default()
}

/// Whether `Accept-Encoding` lists gzip (or `*`) without refusing it with `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Serves `json`, the OpenAPI document, at `/openapi.json` and the docs page at `/docs`.
pub fn router(json: String) -> Router {
    let json: Arc<String> = Arc::new(json);
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
            get(|headers: HeaderMap| async move {
                gzipped_asset(&headers, "text/javascript", BUNDLE_JS_GZ, &BUNDLE_JS)
            }),
        )
        .route(
            "/docs/assets/swagger-ui.css",
            get(|headers: HeaderMap| async move { gzipped_asset(&headers, "text/css", UI_CSS_GZ, &UI_CSS) }),
        )
        .route(
            "/docs/assets/init.js",
            get(|| async { asset("text/javascript", INIT_JS.as_bytes()) }),
        )
}

const PROBLEM_JSON: &str = crate::problem::PROBLEM_CONTENT_TYPE;

/// Makes the document say what the server does with errors: every 4xx/5xx body is
/// `application/problem+json` (the annotations default to `application/json`), and each
/// operation lists the refusals the shared stack can give it — 400 (unreadable body or path
/// parameter), 401/403 (secured operations), 415/422 (JSON bodies; 422 also for query
/// parameters) and 429 (every API route is behind the edge's rate limit). Run it on the
/// finished document.
pub fn document_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::path::ParameterIn;
    let components = doc.components.get_or_insert_with(Default::default);
    if !components.schemas.contains_key("Problem") {
        let mut schemas = vec![(
            <crate::Problem as utoipa::ToSchema>::name().into_owned(),
            <crate::Problem as utoipa::PartialSchema>::schema(),
        )];
        <crate::Problem as utoipa::ToSchema>::schemas(&mut schemas);
        schemas.push((
            <crate::FieldError as utoipa::ToSchema>::name().into_owned(),
            <crate::FieldError as utoipa::PartialSchema>::schema(),
        ));
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
        ];
        for operation in operations.into_iter().flatten() {
            let parameters: Vec<ParameterIn> = operation
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    RefOr::T(p) => Some(p.parameter_in.clone()),
                    RefOr::Ref(_) => None,
                })
                .collect();
            let body = operation.request_body.is_some();
            let path_params = parameters.iter().any(|p| matches!(p, ParameterIn::Path));
            let query_params = parameters.iter().any(|p| matches!(p, ParameterIn::Query));
            let secured = operation.security.as_ref().is_some_and(|requirements| {
                requirements
                    .iter()
                    .any(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty())))
            });
            let mut standard = Vec::new();
            if body || path_params {
                standard.push((
                    "400",
                    "Malformed request: the body is not JSON, or a path parameter cannot be read",
                ));
            }
            if secured {
                standard.push(("401", "Missing, expired or invalid bearer token"));
                standard.push(("403", "The caller may not do this"));
            }
            if body {
                standard.push(("415", "The body was not sent as `application/json`"));
            }
            if body || query_params {
                standard.push(("422", "Invalid input: `errors[]` names each field or parameter"));
            }
            if api {
                standard.push(("429", "Too many requests; `Retry-After` says when to try again"));
            }
            let responses = &mut operation.responses.responses;
            for (status, description) in standard {
                responses.entry(status.to_owned()).or_insert_with(|| {
                    RefOr::T(utoipa::openapi::ResponseBuilder::new().description(description).build())
                });
            }
            for (status, response) in responses.iter_mut() {
                let error = status.starts_with('4') || status.starts_with('5') || status == "default";
                let RefOr::T(response) = response else { continue };
                if !error {
                    continue;
                }
                let json = response.content.shift_remove("application/json");
                if response.content.contains_key(PROBLEM_JSON) {
                    continue;
                }
                let content = json.unwrap_or_else(|| {
                    RefOr::T(utoipa::openapi::Content::new(Some(
                        utoipa::openapi::Ref::from_schema_name("Problem"),
                    )))
                });
                response.content.insert(PROBLEM_JSON.to_owned(), content);
            }
        }
    }
}

#[cfg(test)]
mod problem_doc_tests {
    use super::*;
    use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{HttpMethod, OpenApiBuilder, PathsBuilder, ResponseBuilder};

    #[test]
    fn error_bodies_are_problem_json_and_standard_refusals_are_listed() {
        let post = OperationBuilder::new()
            .request_body(Some(RequestBodyBuilder::new().build()))
            .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
            .response("201", ResponseBuilder::new().description("Created").build())
            .response(
                "404",
                ResponseBuilder::new()
                    .description("No such thing")
                    .content(
                        "application/json",
                        utoipa::openapi::Content::new(Some(utoipa::openapi::Ref::from_schema_name("Problem"))),
                    )
                    .build(),
            );
        let list = OperationBuilder::new()
            .parameter(
                ParameterBuilder::new()
                    .name("q")
                    .parameter_in(ParameterIn::Query)
                    .build(),
            )
            .response("200", ResponseBuilder::new().description("Ok").build());
        let mut doc = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path("/api/v1/things", PathItem::new(HttpMethod::Post, post))
                    .path("/api/v1/list", PathItem::new(HttpMethod::Get, list))
                    .path(
                        "/health/live",
                        PathItem::new(HttpMethod::Get, OperationBuilder::new().build()),
                    ),
            )
            .build();
        document_problems(&mut doc);
        let json = serde_json::to_value(&doc).expect("json");
        let things = &json["paths"]["/api/v1/things"]["post"]["responses"];
        for status in ["400", "401", "403", "404", "415", "422", "429"] {
            let content = things[status]["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{status}: {things}"));
            assert_eq!(content.keys().collect::<Vec<_>>(), [PROBLEM_JSON], "{status}");
        }
        assert_eq!(
            things["404"]["description"], "No such thing",
            "the context's own words are kept"
        );
        assert!(things["201"]["content"].is_null());
        let list = &json["paths"]["/api/v1/list"]["get"]["responses"];
        assert!(list["422"].is_object() && list["429"].is_object());
        assert!(list["401"].is_null() && list["415"].is_null(), "{list}");
        assert!(json["paths"]["/health/live"]["get"]["responses"]["429"].is_null());
        assert!(json["components"]["schemas"]["Problem"].is_object());
        assert!(json["components"]["schemas"]["FieldError"].is_object());
    }
}

#[cfg(test)]
mod gzip_tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_take_it() {
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, deflate")));
        assert!(!accepts_gzip(&with("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn the_vendored_files_unpack_to_what_is_in_the_repository() {
        let js = gunzip(BUNDLE_JS_GZ);
        assert_eq!(
            js,
            include_bytes!("../../../web/vendor/swagger-ui/swagger-ui-bundle.js").as_slice()
        );
        assert!(BUNDLE_JS_GZ.len() * 2 < js.len(), "gzip should at least halve it");
        assert_eq!(
            gunzip(UI_CSS_GZ),
            include_bytes!("../../../web/vendor/swagger-ui/swagger-ui.css").as_slice()
        );
    }
}
