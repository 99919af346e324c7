use contracts::api::ClientError;
use contracts::api::cart::{CartApi, CartView};
use platform::client::ServiceClient;

/// [`CartApi`] over HTTP, as the shopper whose token is passed.
#[derive(Clone)]
pub struct CartClient {
    client: ServiceClient,
}

impl CartClient {
    pub fn new(client: ServiceClient) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl CartApi for CartClient {
    async fn cart(&self, bearer: &str) -> Result<CartView, ClientError> {
        self.client.get("/api/v1/cart").bearer(bearer).fetch().await
    }
}
