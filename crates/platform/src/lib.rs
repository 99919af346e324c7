//! Shared plumbing for every Emporium bounded context.
//!
//! Nothing in here knows about a particular context: contexts bring their own routers, stores and
//! error enums, and this crate gives them the same HTTP stack, errors, health, metrics, traces,
//! database access and API docs.

pub mod auth;
pub mod cache;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod context;
pub mod db;
pub mod dev_mailbox;
pub mod docs;
pub mod events;
pub mod faults;
pub mod gzip;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod money;
pub mod pagination;
pub mod privacy;
pub mod problem;
pub mod rate_limit;
mod routes;
pub mod sync;
pub mod telemetry;

pub use problem::{FieldError, Problem};

/// Makes ring the process's TLS crypto provider (idempotent). Every TLS client here (PostgreSQL,
/// Redis `rediss://`, RabbitMQ `amqps://`, SMTP) uses rustls with ring: one crypto stack.
pub fn install_tls_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
