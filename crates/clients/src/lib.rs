//! How one context calls another: for each context another one calls, a client that implements
//! that context's trait from `contracts::api` over [`platform::client`], and [`Direct`], the
//! callee itself when it runs in the same process.
//!
//! A caller holds an `Arc<dyn CatalogApi>` (or `InventoryApi`, ...), not one of these types, and
//! gets it from [`catalog`] (or [`inventory`], ...), which picks the direct call when the callee
//! runs in this process and offered its API (ADR 0013), else HTTP. What a transport does around a
//! call is the same for both: the call's budget, a client span naming the callee, the
//! `service_client_duration_seconds` series; over HTTP also service tokens and idempotency keys
//! as headers.

mod cart;
mod catalog;
mod direct;
mod inventory;
mod payments;

use std::sync::Arc;
use std::time::Duration;

pub use cart::CartClient;
pub use catalog::CatalogClient;
use contracts::api::cart::CartApi;
use contracts::api::catalog::CatalogApi;
use contracts::api::inventory::InventoryApi;
use contracts::api::payments::PaymentsApi;
pub use direct::Direct;
pub use inventory::InventoryClient;
pub use payments::PaymentsClient;
use platform::client::Peers;

/// Catalog's API for `caller`: a direct call when catalog runs in this process, else HTTP; each
/// call within `budget`.
pub fn catalog(peers: &Peers, caller: &'static str, budget: Duration) -> anyhow::Result<Arc<dyn CatalogApi>> {
    Ok(
        match Direct::<dyn CatalogApi>::offered(peers, caller, "catalog", budget) {
            Some(direct) => direct,
            None => Arc::new(CatalogClient::new(peers.client(caller, "catalog")?).with_timeout(budget)),
        },
    )
}

/// Inventory's API for `caller`, directly or over HTTP as [`catalog`].
pub fn inventory(peers: &Peers, caller: &'static str, budget: Duration) -> anyhow::Result<Arc<dyn InventoryApi>> {
    Ok(
        match Direct::<dyn InventoryApi>::offered(peers, caller, "inventory", budget) {
            Some(direct) => direct,
            None => Arc::new(InventoryClient::new(peers.client(caller, "inventory")?).with_timeout(budget)),
        },
    )
}

/// Payments' API for `caller`, directly or over HTTP as [`catalog`]. `payment_budget` bounds the
/// charge, which waits on the card provider (and, in a direct call, every other call too); over
/// HTTP the other calls keep the platform's default.
pub fn payments(peers: &Peers, caller: &'static str, payment_budget: Duration) -> anyhow::Result<Arc<dyn PaymentsApi>> {
    Ok(
        match Direct::<dyn PaymentsApi>::offered(peers, caller, "payments", payment_budget) {
            Some(direct) => direct,
            None => {
                Arc::new(PaymentsClient::new(peers.client(caller, "payments")?).with_payment_timeout(payment_budget))
            }
        },
    )
}

/// Cart's API for `caller`, directly or over HTTP as [`catalog`].
pub fn cart(peers: &Peers, caller: &'static str, budget: Duration) -> anyhow::Result<Arc<dyn CartApi>> {
    Ok(match Direct::<dyn CartApi>::offered(peers, caller, "cart", budget) {
        Some(direct) => direct,
        None => Arc::new(CartClient::new(peers.client(caller, "cart")?)),
    })
}

/// `sku=A&sku=B`, the repeated parameter catalog's and inventory's batch reads take.
fn sku_query(skus: &[contracts::kernel::Sku]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for sku in skus {
        query.append_pair("sku", sku.as_str());
    }
    query.finish()
}

#[cfg(test)]
mod tests;
