//! "Customers who bought this also bought": `ordering.order.confirmed` adds the order's products
//! to the co-purchase read model, weighted by the order's time (see
//! [`crate::domain::co_purchase_weight`]). Each order counts once, however often its event
//! arrives; its cost is bounded by [`BoughtTogether::MAX`] products.

use std::sync::Arc;

use contracts::events::ordering::OrderConfirmed;
use platform::events::{Event, EventHandler, HandlerError};

use crate::domain::{BoughtTogether, ProductId, co_purchase_weight};
use crate::service::CatalogService;

pub struct CoPurchases {
    service: Arc<CatalogService>,
}

impl CoPurchases {
    pub fn new(service: Arc<CatalogService>) -> Self {
        Self { service }
    }
}

#[async_trait::async_trait]
impl EventHandler for CoPurchases {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(data) = event.payload::<OrderConfirmed>() else {
            return Ok(());
        };
        let data = data.map_err(|e| HandlerError::permanent(format!("undecodable confirmed order: {e}")))?;
        // The most valuable lines first: they are the ones that count when an order is cut short.
        let mut lines = data.lines;
        lines.sort_by_key(|l| std::cmp::Reverse(l.line_total));
        let Some(together) = BoughtTogether::of(lines.iter().map(|l| ProductId(l.product_id))) else {
            return Ok(());
        };
        let counted = self
            .service
            .store()
            .record_co_purchase(
                data.order.order_id,
                &together,
                co_purchase_weight(event.time),
                event.time,
            )
            .await
            .map_err(HandlerError::retryable)?;
        if counted {
            metrics::counter!("catalog_co_purchase_orders_total").increment(1);
        }
        Ok(())
    }

    /// `record_co_purchase` counts an order once: it records the order's id in the same
    /// transaction (`co_purchase_orders`).
    fn deduplicates(&self, _event: &Event) -> bool {
        true
    }

    /// An order of one product pairs nothing: it skips the inbox too.
    async fn wants(&self, event: &Event) -> bool {
        match event.payload::<OrderConfirmed>() {
            Some(Ok(data)) => BoughtTogether::of(data.lines.iter().map(|l| ProductId(l.product_id))).is_some(),
            // Undecodable: the handler dead-letters it.
            _ => true,
        }
    }
}
