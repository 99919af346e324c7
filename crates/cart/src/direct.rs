//! Cart's published API as a direct call, for the contexts of this process (ADR 0013): the same
//! service call the HTTP handler makes, for the shopper whose token the caller passes along.

use std::sync::Arc;

use contracts::api::ClientError;
use contracts::api::cart::{CartApi, CartView};
use platform::Problem;
use platform::auth::{AuthUser, KeySet};

use crate::CONTEXT;
use crate::service::{Caller, CartService};

pub struct DirectApi {
    pub service: Arc<CartService>,
    pub keys: KeySet,
}

#[async_trait::async_trait]
impl CartApi for DirectApi {
    async fn cart(&self, bearer: &str) -> Result<CartView, ClientError> {
        let view = async {
            let user = AuthUser::from_bearer(&self.keys, bearer).await?;
            let caller = Caller {
                user: Some(user.id()),
                token: None,
            };
            Ok::<_, Problem>(CartView::from(&self.service.view(&caller).await?))
        };
        view.await.map_err(|p| p.for_peer(CONTEXT))
    }
}
