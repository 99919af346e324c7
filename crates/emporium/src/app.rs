//! Builds the application router: contexts, platform endpoints, API docs and the shared stack.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use identity::mailers::{DevMailboxMailer, UndeliverableMailer};
use identity::{Identity, IdentityConfig, Mailer};
use platform::config::{ConfigError, ConfigSource, PlatformConfig};
use platform::db::Db;
use platform::dev_mailbox::DevMailbox;
use platform::health::Health;
use platform::http::HttpLimits;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

/// The contexts a process can run. Embedded mode runs all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Identity,
}

impl Service {
    pub const ALL: [Service; 1] = [Service::Identity];

    pub fn name(self) -> &'static str {
        match self {
            Service::Identity => identity::CONTEXT,
        }
    }

    /// The production port (architecture doc).
    pub fn default_port(self) -> u16 {
        match self {
            Service::Identity => 8081,
        }
    }
}

/// Every setting the app needs, read once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platform: PlatformConfig,
    pub identity: IdentityConfig,
}

impl Settings {
    pub fn load(src: &ConfigSource, default_listen: std::net::SocketAddr) -> Result<Self, ConfigError> {
        let platform = PlatformConfig::from_source(src, default_listen)?;
        let identity = IdentityConfig::from_source(src, &platform.public_url)?;
        Ok(Self { platform, identity })
    }
}

/// What the app runs on: one database per context, and the dev mailbox in embedded mode.
pub struct Wiring {
    pub identity_db: Db,
    pub dev_mailbox: Option<DevMailbox>,
    /// Apply migrations before serving (embedded mode and tests; production runs `emporium migrate`).
    pub migrate: bool,
}

/// A built application, ready to serve.
pub struct App {
    pub router: Router,
    pub databases: Vec<Db>,
    /// The identity use cases, for the CLI's admin commands and for tests.
    pub identity: Arc<identity::IdentityService>,
}

impl App {
    /// Closes every pool (after the server has drained).
    pub async fn close(&self) {
        for db in &self.databases {
            db.close().await;
        }
    }
}

/// The merged OpenAPI document of everything a process serves.
pub fn api_document(with_dev_mailbox: bool) -> OpenApi {
    let mut doc = base_document();
    doc.merge(identity::openapi());
    doc.merge(platform::health::openapi());
    if with_dev_mailbox {
        doc.merge(platform::dev_mailbox::openapi());
    }
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
    doc
}

pub async fn build(settings: &Settings, wiring: Wiring) -> anyhow::Result<App> {
    let mailer: Arc<dyn Mailer> = match &wiring.dev_mailbox {
        Some(mailbox) => Arc::new(DevMailboxMailer(mailbox.clone())),
        None => Arc::new(UndeliverableMailer),
    };
    let identity = Identity::start(&wiring.identity_db, settings.identity.clone(), mailer, wiring.migrate)
        .await
        .context("starting the identity context")?;

    let doc = api_document(wiring.dev_mailbox.is_some());
    let mut router = Router::new().merge(identity.router());
    if let Some(mailbox) = wiring.dev_mailbox {
        router = router.merge(platform::http::tag_routes(mailbox.router(), "dev"));
    }

    let health = Health::new().with_check(wiring.identity_db.health_check(identity::CONTEXT));
    let ops = Router::new()
        .merge(health.router())
        .merge(platform::metrics::router())
        .merge(platform::docs::router(doc));
    let mut router = router.merge(platform::http::tag_routes(ops, "platform"));
    if settings.platform.trust_forwarded_for {
        router = router.layer(axum::Extension(platform::http::TrustForwardedFor));
    }
    let limits = HttpLimits {
        max_body_bytes: settings.platform.max_body_bytes,
        request_timeout: settings.platform.request_timeout,
    };
    Ok(App {
        router: platform::http::with_platform_stack(router, limits),
        databases: vec![wiring.identity_db],
        identity: identity.service(),
    })
}
