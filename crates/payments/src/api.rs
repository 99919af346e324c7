//! Payments' HTTP API (work in progress).

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

pub fn routes() -> OpenApiRouter<Arc<()>> {
    OpenApiRouter::new()
}
