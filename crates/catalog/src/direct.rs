//! Catalog's published API as a direct call, for the contexts of this process (ADR 0013): the
//! same service call the HTTP handler makes, without a request or any JSON.

use std::sync::Arc;

use contracts::api::ClientError;
use contracts::api::catalog::{CatalogApi, SkuLookup};
use contracts::kernel::Sku;

use crate::CONTEXT;
use crate::service::{CatalogService, Viewer};

pub struct DirectApi(pub Arc<CatalogService>);

#[async_trait::async_trait]
impl CatalogApi for DirectApi {
    async fn products_by_sku(&self, skus: &[Sku]) -> Result<SkuLookup, ClientError> {
        let skus: Vec<String> = skus.iter().map(|s| s.as_str().to_owned()).collect();
        // Anonymous, as the HTTP callers ask: active products only.
        self.0
            .products_by_sku(&skus, &Viewer { user: None })
            .await
            .map_err(|p| p.for_peer(CONTEXT))
    }
}
