//! Inventory's published API as a direct call, for the contexts of this process (ADR 0013): the
//! functions the HTTP handlers call, with the calling context as the principal its service token
//! would carry, so access rules and idempotency scopes are the same as over HTTP.

use std::sync::Arc;

use contracts::api::ClientError;
use contracts::api::inventory::{
    AdjustmentRequest, BatchAvailability, CreateReservationRequest, InventoryApi, ReservationView, StockView,
};
use contracts::kernel::Sku;
use platform::Problem;
use platform::auth::AuthUser;
use uuid::Uuid;

use crate::CONTEXT;
use crate::api;
use crate::domain::ReservationId;
use crate::service::InventoryService;

pub struct DirectApi {
    service: Arc<InventoryService>,
    caller: AuthUser,
}

impl DirectApi {
    /// Inventory's API for the `caller` context of this process.
    pub fn new(service: Arc<InventoryService>, caller: &str) -> Self {
        Self {
            service,
            caller: AuthUser::service(caller),
        }
    }
}

fn refused(problem: impl Into<Problem>) -> ClientError {
    problem.into().for_peer(CONTEXT)
}

#[async_trait::async_trait]
impl InventoryApi for DirectApi {
    async fn availability(&self, skus: &[Sku]) -> Result<BatchAvailability, ClientError> {
        api::availability(&self.service, skus).await.map_err(refused)
    }

    async fn reserve(&self, key: &str, request: &CreateReservationRequest) -> Result<ReservationView, ClientError> {
        let answer = api::reserve(&self.service, &self.caller, Some(key), request.clone())
            .await
            .map_err(refused)?;
        // The answer is kept as JSON for idempotent replays; read it as the HTTP caller would.
        serde_json::from_str(&answer.body).map_err(|e| ClientError::Malformed {
            peer: CONTEXT,
            status: answer.status,
            detail: e.to_string(),
        })
    }

    async fn release(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        let released = self.service.release(&self.caller, ReservationId(reservation)).await;
        Ok(ReservationView::from(&released.map_err(refused)?))
    }

    async fn commit(&self, reservation: Uuid) -> Result<ReservationView, ClientError> {
        let committed = self.service.commit(&self.caller, ReservationId(reservation)).await;
        Ok(ReservationView::from(&committed.map_err(refused)?))
    }

    async fn adjust(&self, sku: &str, key: &str, request: &AdjustmentRequest) -> Result<StockView, ClientError> {
        let answer = api::adjust_once(&self.service, &self.caller, sku, Some(key), request)
            .await
            .map_err(refused)?;
        Ok(StockView::from(&answer.stock))
    }
}
