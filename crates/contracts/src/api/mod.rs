//! The request and view types each context publishes over HTTP, one module per context.
//! The context itself serialises them, the contexts that call it and the web tier deserialise
//! them, so a renamed field breaks the build instead of blanking a page.

pub mod cart;
pub mod catalog;
pub mod identity;
pub mod inventory;
pub mod ordering;
pub mod payments;
