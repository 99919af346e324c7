//! Verified purchases from ordering: `ordering.order.delivered` records which products the
//! customer received, so their reviews (existing and future) carry `verified_purchase`.
//! Idempotent: recording a purchase twice changes nothing.

use std::sync::Arc;

use contracts::events::ordering::OrderDelivered;
use platform::events::{Event, EventHandler, HandlerError};

use crate::service::CatalogService;

pub struct VerifiedPurchases {
    service: Arc<CatalogService>,
}

impl VerifiedPurchases {
    pub fn new(service: Arc<CatalogService>) -> Self {
        Self { service }
    }
}

#[async_trait::async_trait]
impl EventHandler for VerifiedPurchases {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(data) = event.payload::<OrderDelivered>() else {
            return Ok(());
        };
        let data = data.map_err(|e| HandlerError::permanent(format!("undecodable delivered order: {e}")))?;
        let skus: Vec<String> = data.lines.into_iter().map(|l| l.sku).collect();
        self.service
            .record_purchases(data.order.user_id, &skus)
            .await
            .map_err(|e| HandlerError::retryable(format!("{e:#}")))?;
        Ok(())
    }
}
