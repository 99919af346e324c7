use std::time::Duration;

use contracts::api::ClientError;
use contracts::api::inventory::{
    AdjustmentRequest, BatchAvailability, CreateReservationRequest, InventoryApi, ReservationView, StockView,
};
use contracts::kernel::Sku;
use platform::client::{Call, ServiceClient};
use uuid::Uuid;

/// [`InventoryApi`] over HTTP. Writes go as the calling service.
#[derive(Clone)]
pub struct InventoryClient {
    client: ServiceClient,
    timeout: Option<Duration>,
}

impl InventoryClient {
    pub fn new(client: ServiceClient) -> Self {
        Self { client, timeout: None }
    }

    /// The budget of every call (the platform's default otherwise).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn budget(&self, call: Call) -> Call {
        match self.timeout {
            Some(timeout) => call.timeout(timeout),
            None => call,
        }
    }
}

#[async_trait::async_trait]
impl InventoryApi for InventoryClient {
    async fn availability(&self, skus: &[Sku]) -> Result<BatchAvailability, ClientError> {
        let path = format!("/api/v1/inventory?{}", crate::sku_query(skus));
        self.budget(self.client.get(&path)).fetch().await
    }

    async fn reserve(&self, key: &str, request: &CreateReservationRequest) -> Result<ReservationView, ClientError> {
        let call = self
            .client
            .post("/api/v1/inventory/reservations")
            .as_service()
            .idempotency_key(key)
            .json(request);
        self.budget(call).fetch().await
    }

    async fn release(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        let call = self
            .client
            .post(&format!("/api/v1/inventory/reservations/{reservation}/release"))
            .as_service();
        self.budget(call).fetch().await
    }

    async fn commit(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        let call = self
            .client
            .post(&format!("/api/v1/inventory/reservations/{reservation}/commit"))
            .as_service();
        self.budget(call).fetch().await
    }

    async fn adjust(&self, sku: &str, key: &str, request: &AdjustmentRequest) -> Result<StockView, ClientError> {
        let call = self
            .client
            .post(&format!("/api/v1/inventory/{sku}/adjustments"))
            .as_service()
            .idempotency_key(key)
            .json(request);
        self.budget(call).fetch().await
    }
}
