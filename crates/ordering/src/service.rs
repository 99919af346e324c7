//! Ordering's use cases.

use crate::OrderingConfig;

pub struct OrderingService {
    pub(crate) config: OrderingConfig,
}

impl OrderingService {
    pub fn new(config: OrderingConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &OrderingConfig {
        &self.config
    }
}
