//! Verified purchases from ordering: `ordering.order.delivered` records which products the
//! customer received, so their reviews (existing and future) carry `verified_purchase`.
//! Idempotent: recording a purchase twice changes nothing.

use std::sync::Arc;

use platform::events::{Event, EventHandler, HandlerError};
use serde::Deserialize;
use uuid::Uuid;

use crate::service::CatalogService;

pub const ORDER_DELIVERED: &str = "ordering.order.delivered";

#[derive(Debug, Deserialize)]
struct Delivered {
    user_id: Uuid,
    lines: Vec<DeliveredLine>,
}

#[derive(Debug, Deserialize)]
struct DeliveredLine {
    sku: String,
}

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
        if event.event_type != ORDER_DELIVERED {
            return Ok(());
        }
        let data: Delivered = event
            .data_as()
            .map_err(|e| HandlerError::permanent(format!("undecodable delivered order: {e}")))?;
        let skus: Vec<String> = data.lines.into_iter().map(|l| l.sku).collect();
        self.service
            .record_purchases(data.user_id, &skus)
            .await
            .map_err(|e| HandlerError::retryable(format!("{e:#}")))?;
        Ok(())
    }
}
