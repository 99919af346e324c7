use std::time::Duration;

use contracts::api::ClientError;
use contracts::api::catalog::{CatalogApi, SkuLookup};
use contracts::kernel::Sku;
use platform::client::ServiceClient;

/// [`CatalogApi`] over HTTP.
#[derive(Clone)]
pub struct CatalogClient {
    client: ServiceClient,
    timeout: Option<Duration>,
}

impl CatalogClient {
    pub fn new(client: ServiceClient) -> Self {
        Self { client, timeout: None }
    }

    /// The budget of every call (the platform's default otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

#[async_trait::async_trait]
impl CatalogApi for CatalogClient {
    async fn products_by_sku(&self, skus: &[Sku]) -> Result<SkuLookup, ClientError> {
        let mut call = self
            .client
            .get(&format!("/api/v1/catalog/products/by-sku?{}", crate::sku_query(skus)));
        if let Some(timeout) = self.timeout {
            call = call.timeout(timeout);
        }
        call.fetch().await
    }
}
