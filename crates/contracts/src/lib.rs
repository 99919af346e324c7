//! The published language of Emporium.
//!
//! Every boundary between two parts — a call from one context to another, an event on the bus,
//! a page of the web tier reading an API — is typed here, once. A context depends on this crate,
//! never on another context, so the parts stay separable while agreeing on what crosses between
//! them.
//!
//! - [`kernel`]: value types every context shares (SKU, currency, money, e-mail address,
//!   idempotency key, role, ids), each with one definition and one validation.
//! - [`events`]: for every event on the bus, its type name and its payload.
//! - [`api`]: the request and view types each context publishes over HTTP.

pub mod api;
pub mod events;
pub mod kernel;
