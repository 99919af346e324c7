//! What Emporium's tests share, so that each suite states only what it tests.
//!
//! - [`services`]: where the test PostgreSQL, RabbitMQ and Redis are, and the one rule for an
//!   unreachable one: with `CI=true` the test fails (a skipped suite must never pass as green),
//!   elsewhere it is skipped with a `SKIPPED:` note.
//! - [`db`]: a throwaway database per test (a temporary SQLite file, or a PostgreSQL database
//!   created for the test and dropped after it, even when it fails) and
//!   [`on_both_backends!`](crate::on_both_backends), which runs a test once on each.
//! - [`smtp`]: a real SMTP server (`tests/smtp_sink.py`) on a random port.
//! - [`python`]: the virtual environment both run in.
//! - [`tokens`]: access tokens signed with a test key, for a context's router without identity.
//! - With the `app` feature, [`app`]: the whole app on a random port on either backend, logged-in
//!   users and mail; [`requests`]: typed request helpers (`json_of`, `product`, ...); [`shop`]:
//!   fixtures of the order flow; [`stripe`]: localstripe, a Stripe-compatible server.
//!
//! The app part lives here, not in emporium's tests, because two test binaries use it (`api`, and
//! `outages`, which stops shared brokers and so must not run beside the main suite); a crate is
//! how two binaries share code. It sits behind a feature because it depends on `emporium`, and so
//! on every context: a context's own tests use the light part and build no other context. The
//! cycle that `emporium`'s dev-dependency on this crate makes is one cargo allows (integration
//! tests link the same `emporium` library this crate does).

pub mod db;
pub mod python;
pub mod services;
pub mod smtp;
pub mod tokens;

#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "app")]
pub mod requests;
#[cfg(feature = "app")]
pub mod shop;
#[cfg(feature = "app")]
pub mod stripe;

pub use db::{Backend, TempPostgres, TestDb};
pub use tokens::TestTokens;
