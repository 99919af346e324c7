//! The HTTP side of the published language: for each context another one calls, a client that
//! implements that context's trait from `contracts::api` over [`platform::client`].
//!
//! A caller holds an `Arc<dyn CatalogApi>` (or `InventoryApi`, ...), not one of these types, so
//! a process that runs the callee too could hand it the callee itself. Everything the transport
//! does stays where it was: the client span (`peer.service`), the call's budget, service tokens,
//! idempotency keys, and in embedded mode the call through the process's own router.

mod cart;
mod catalog;
mod inventory;
mod payments;

pub use cart::CartClient;
pub use catalog::CatalogClient;
pub use inventory::InventoryClient;
pub use payments::PaymentsClient;

/// `sku=A&sku=B`, the repeated parameter catalog's and inventory's batch reads take.
fn sku_query(skus: &[String]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for sku in skus {
        query.append_pair("sku", sku);
    }
    query.finish()
}

#[cfg(test)]
mod tests;
