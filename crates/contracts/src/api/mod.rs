//! The request and view types each context publishes over HTTP, one module per context.
//! The context itself serialises them, the contexts that call it and the web tier deserialise
//! them, so a renamed field breaks the build instead of blanking a page.
//!
//! A call from one context to another is a method of the callee's trait here (`CatalogApi`,
//! `InventoryApi`, ...): typed input, typed output, [`ClientError`] when no such output came.
//! Over HTTP the `clients` crate implements them; the traits name no transport, so a process
//! running both sides could call the callee directly.

mod client;
pub mod money;

pub use client::{ClientError, FieldError};

pub mod cart;
pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod notifications;
pub mod ordering;
pub mod payments;
