//! Payments' published API as a direct call, for the contexts of this process (ADR 0013): the
//! functions the HTTP handlers call, with the calling context as the principal its service token
//! would carry (charges and refunds), or the shopper whose token it passes along (a card).

use std::sync::Arc;

use contracts::api::ClientError;
use contracts::api::payments::{
    CreatePaymentRequest, CreateRefundRequest, MethodView, PaymentView, PaymentsApi, RefundView,
};
use platform::Problem;
use platform::auth::{AuthUser, KeySet};

use crate::CONTEXT;
use crate::api;
use crate::service::PaymentsService;

pub struct DirectApi {
    service: Arc<PaymentsService>,
    keys: KeySet,
    caller: AuthUser,
}

impl DirectApi {
    /// Payments' API for the `caller` context of this process.
    pub fn new(service: Arc<PaymentsService>, keys: KeySet, caller: &str) -> Self {
        Self {
            service,
            keys,
            caller: AuthUser::service(caller),
        }
    }
}

fn refused(problem: Problem) -> ClientError {
    problem.for_peer(CONTEXT)
}

#[async_trait::async_trait]
impl PaymentsApi for DirectApi {
    async fn method(&self, bearer: &str, id: &str) -> Result<MethodView, ClientError> {
        let method = async {
            let shopper = AuthUser::from_bearer(&self.keys, bearer).await?;
            Ok::<_, Problem>(MethodView::from(&self.service.method(&shopper, id).await?))
        };
        method.await.map_err(refused)
    }

    async fn create_payment(&self, key: &str, request: &CreatePaymentRequest) -> Result<PaymentView, ClientError> {
        let answer = api::charge(&self.service, &self.caller, Some(key), request.clone()).await;
        Ok(answer.map_err(refused)?.value)
    }

    async fn refund(&self, payment: &str, key: &str, request: &CreateRefundRequest) -> Result<RefundView, ClientError> {
        let answer = api::refund(&self.service, &self.caller, payment, Some(key), request).await;
        Ok(answer.map_err(refused)?.value)
    }
}
