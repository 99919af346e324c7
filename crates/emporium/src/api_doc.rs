//! The OpenAPI 3.1 document of everything a process serves, at `/openapi.json`.
//!
//! A test build generates it from the handlers' annotations (`platform::routes!`, the `openapi`
//! feature). The binary serves `crates/emporium/openapi.json` instead, checked in and gzipped
//! into it by `build.rs`: generating it took 1.6 MB of the binary for a document that only
//! changes with the source. The tests below keep the file equal to the generated document; after
//! an API change, refresh it with `EMPORIUM_TEST_WRITE_OPENAPI=1 cargo test -p emporium --lib
//! api_doc`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

/// The checked-in document (with the dev mailbox), gzipped by `build.rs`.
const CHECKED_IN_GZ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.gz"));

/// The dev mailbox's path: in the document only where a process serves the mailbox.
const DEV_MAILBOX_PATH: &str = "/api/v1/dev/mailbox";

/// The document this process serves, as JSON: generated in a build that can
/// ([`platform::docs::DOCUMENT_GENERATED`]), else the checked-in one.
pub fn served(with_dev_mailbox: bool) -> String {
    if platform::docs::DOCUMENT_GENERATED {
        generated(with_dev_mailbox)
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned())
    } else {
        checked_in(with_dev_mailbox)
    }
}

/// The checked-in document; without the dev mailbox, its path and the schemas only it uses go.
pub fn checked_in(with_dev_mailbox: bool) -> String {
    let json = platform::gzip::gunzip(CHECKED_IN_GZ).unwrap_or_default();
    let json = String::from_utf8(json).unwrap_or_default();
    if with_dev_mailbox {
        return json;
    }
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&json) else {
        return json;
    };
    if let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) {
        paths.remove(DEV_MAILBOX_PATH);
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    {
        schemas.remove("MailMessage");
    }
    serde_json::to_string_pretty(&doc).unwrap_or(json)
}

/// The merged OpenAPI document of everything a process serves.
pub fn generated(with_dev_mailbox: bool) -> OpenApi {
    let mut doc = base_document();
    doc.merge(identity::openapi());
    doc.merge(catalog::openapi());
    doc.merge(inventory::openapi());
    doc.merge(cart::openapi());
    doc.merge(ordering::openapi());
    doc.merge(payments::openapi());
    doc.merge(notifications::openapi());
    doc.merge(platform::events::openapi());
    doc.merge(platform::health::openapi());
    if with_dev_mailbox {
        doc.merge(platform::dev_mailbox::openapi());
    }
    platform::docs::document_problems(&mut doc);
    doc
}

fn base_document() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Emporium API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "E-commerce platform API. Errors are RFC 9457 problem+json; lists use `limit` and `cursor`; \
                     authenticate with `Authorization: Bearer <access token>` from `/api/v1/auth/login`.",
                ))
                .build(),
        )
        .build();
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "metrics_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The scrape token configured in EMPORIUM_METRICS_TOKEN"))
                .build(),
        ),
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(json: &str) -> serde_json::Value {
        serde_json::from_str(json).expect("the document is JSON")
    }

    /// Fails when an API change is not in crates/emporium/openapi.json; with
    /// `EMPORIUM_TEST_WRITE_OPENAPI=1` it writes the file instead (the next build embeds it).
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        const {
            assert!(
                platform::docs::DOCUMENT_GENERATED,
                "test builds generate the document (platform's `openapi` feature)"
            );
        }
        let generated_json = generated(true).to_pretty_json().expect("serialises");
        if std::env::var_os("EMPORIUM_TEST_WRITE_OPENAPI").is_some() {
            let file = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
            std::fs::write(file, format!("{generated_json}\n")).expect("writing openapi.json");
            return;
        }
        assert!(
            value(&checked_in(true)) == value(&generated_json),
            "crates/emporium/openapi.json is not the API's document: \
             refresh it with `EMPORIUM_TEST_WRITE_OPENAPI=1 cargo test -p emporium --lib api_doc`"
        );
    }

    #[test]
    fn without_the_dev_mailbox_the_checked_in_document_drops_exactly_its_parts() {
        let generated_json = generated(false).to_pretty_json().expect("serialises");
        assert!(
            value(&checked_in(false)) == value(&generated_json),
            "the document without the dev mailbox differs from the generated one"
        );
        assert!(value(&checked_in(true))["paths"].get(DEV_MAILBOX_PATH).is_some());
    }
}
