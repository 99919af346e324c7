use std::time::Duration;

use contracts::api::ClientError;
use contracts::api::payments::{
    CreatePaymentRequest, CreateRefundRequest, MethodView, PaymentView, PaymentsApi, RefundView,
};
use platform::client::ServiceClient;

/// [`PaymentsApi`] over HTTP. Charges and refunds go as the calling service.
#[derive(Clone)]
pub struct PaymentsClient {
    client: ServiceClient,
    payment_timeout: Option<Duration>,
}

impl PaymentsClient {
    pub fn new(client: ServiceClient) -> Self {
        Self {
            client,
            payment_timeout: None,
        }
    }

    /// The budget of [`PaymentsApi::create_payment`], which waits on the card provider (the
    /// platform's default otherwise, as for every other call).
    pub fn with_payment_timeout(mut self, timeout: Duration) -> Self {
        self.payment_timeout = Some(timeout);
        self
    }
}

#[async_trait::async_trait]
impl PaymentsApi for PaymentsClient {
    async fn method(&self, bearer: &str, id: &str) -> Result<MethodView, ClientError> {
        self.client
            .get(&format!("/api/v1/payments/methods/{id}"))
            .bearer(bearer)
            .fetch()
            .await
    }

    async fn create_payment(&self, key: &str, request: &CreatePaymentRequest) -> Result<PaymentView, ClientError> {
        let mut call = self
            .client
            .post("/api/v1/payments")
            .as_service()
            .idempotency_key(key)
            .json(request);
        if let Some(timeout) = self.payment_timeout {
            call = call.timeout(timeout);
        }
        call.fetch().await
    }

    async fn refund(&self, payment: &str, key: &str, request: &CreateRefundRequest) -> Result<RefundView, ClientError> {
        self.client
            .post(&format!("/api/v1/payments/{payment}/refunds"))
            .as_service()
            .idempotency_key(key)
            .json(request)
            .fetch()
            .await
    }
}
