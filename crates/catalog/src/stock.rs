//! Stock levels from inventory: `inventory.stock.changed` sets a product's `available` count
//! (matched by SKU; unknown SKUs are ignored). Idempotent and tolerant of reordering: an event
//! older than the last one applied to a product (UUIDv7 ids are time-ordered) changes nothing.
//! Cached pages follow within `EMPORIUM_CATALOG_PAGE_STOCK_LAG_MS` unless the product came into
//! or went out of stock ([`CatalogService::stock_moved`]).

use std::sync::Arc;

use contracts::events::inventory::StockChanged;
use platform::events::{Event, EventHandler, HandlerError};

use crate::domain::normalise_sku;
use crate::service::CatalogService;

pub struct StockLevels {
    service: Arc<CatalogService>,
}

impl StockLevels {
    pub fn new(service: Arc<CatalogService>) -> Self {
        Self { service }
    }
}

#[async_trait::async_trait]
impl EventHandler for StockLevels {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        let Some(data) = event.payload::<StockChanged>() else {
            return Ok(());
        };
        let data = data.map_err(|e| HandlerError::permanent(format!("undecodable stock event: {e}")))?;
        let Ok(sku) = normalise_sku(&data.sku) else {
            return Ok(());
        };
        let change = self
            .service
            .store()
            .set_available(&sku, data.available.max(0), event.id)
            .await
            .map_err(HandlerError::retryable)?;
        if let Some(change) = change {
            self.service
                .stock_moved(change.id, &change.slug, data.crossed_in_stock())
                .await;
        }
        Ok(())
    }

    /// `set_available` applies an event only when it is newer than the product's last one.
    fn deduplicates(&self, _event: &Event) -> bool {
        true
    }
}
