//! The other side of the choice: a context that runs in this process is called directly, through
//! the API it offered ([`Peers::offer`]), wrapped in what the HTTP clients do around a call (the
//! budget, the span, the `service_client_duration_seconds` series). Nothing is serialised.

use std::sync::Arc;
use std::time::Duration;

use contracts::api::ClientError;
use contracts::api::cart::{CartApi, CartView};
use contracts::api::catalog::{CatalogApi, SkuLookup};
use contracts::api::inventory::{
    AdjustmentRequest, BatchAvailability, CreateReservationRequest, InventoryApi, ReservationView, StockView,
};
use contracts::api::payments::{
    CreatePaymentRequest, CreateRefundRequest, MethodView, PaymentView, PaymentsApi, RefundView,
};
use contracts::kernel::Sku;
use platform::client::{Peers, call_direct};
use uuid::Uuid;

/// `T` (a `dyn …Api`), as another context of this process offered it, called within `budget`.
pub struct Direct<T: ?Sized> {
    target: &'static str,
    budget: Duration,
    api: Arc<T>,
}

impl<T: ?Sized + Send + Sync + 'static> Direct<T> {
    /// `target`'s API for `caller` when it runs in this process and offered one (`None`: call
    /// it over HTTP).
    pub fn offered(peers: &Peers, caller: &'static str, target: &'static str, budget: Duration) -> Option<Arc<Self>> {
        let api = peers.direct::<T>(caller, target)?;
        Some(Arc::new(Self { target, budget, api }))
    }
}

#[async_trait::async_trait]
impl CatalogApi for Direct<dyn CatalogApi> {
    async fn products_by_sku(&self, skus: &[Sku]) -> Result<SkuLookup, ClientError> {
        call_direct(
            self.target,
            "products_by_sku",
            self.budget,
            self.api.products_by_sku(skus),
        )
        .await
    }
}

#[async_trait::async_trait]
impl InventoryApi for Direct<dyn InventoryApi> {
    async fn availability(&self, skus: &[Sku]) -> Result<BatchAvailability, ClientError> {
        call_direct(self.target, "availability", self.budget, self.api.availability(skus)).await
    }

    async fn reserve(&self, key: &str, request: &CreateReservationRequest) -> Result<ReservationView, ClientError> {
        call_direct(self.target, "reserve", self.budget, self.api.reserve(key, request)).await
    }

    async fn release(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        call_direct(self.target, "release", self.budget, self.api.release(reservation)).await
    }

    async fn commit(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        call_direct(self.target, "commit", self.budget, self.api.commit(reservation)).await
    }

    async fn adjust(&self, sku: &str, key: &str, request: &AdjustmentRequest) -> Result<StockView, ClientError> {
        call_direct(self.target, "adjust", self.budget, self.api.adjust(sku, key, request)).await
    }
}

#[async_trait::async_trait]
impl PaymentsApi for Direct<dyn PaymentsApi> {
    async fn method(&self, bearer: &str, id: &str) -> Result<MethodView, ClientError> {
        call_direct(self.target, "method", self.budget, self.api.method(bearer, id)).await
    }

    async fn create_payment(&self, key: &str, request: &CreatePaymentRequest) -> Result<PaymentView, ClientError> {
        call_direct(
            self.target,
            "create_payment",
            self.budget,
            self.api.create_payment(key, request),
        )
        .await
    }

    async fn refund(&self, payment: &str, key: &str, request: &CreateRefundRequest) -> Result<RefundView, ClientError> {
        call_direct(
            self.target,
            "refund",
            self.budget,
            self.api.refund(payment, key, request),
        )
        .await
    }
}

#[async_trait::async_trait]
impl CartApi for Direct<dyn CartApi> {
    async fn cart(&self, bearer: &str) -> Result<CartView, ClientError> {
        call_direct(self.target, "cart", self.budget, self.api.cart(bearer)).await
    }
}
