//! Outbound webhooks: admins register endpoints (URL, the event types wanted, a secret shown
//! once); every matching event is delivered as a signed POST following the Standard Webhooks
//! conventions (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried on an
//! exponential schedule over about a day, logged per attempt with its status code and latency,
//! replayable, and the endpoint is switched off (with a mail to the alert list) after a long run
//! of failures. Secrets rotate with an overlap window during which both sign.

pub mod api;
pub mod client;
pub mod domain;
pub mod service;
pub mod store;

use std::sync::{Arc, Weak};
use std::time::Duration;

use platform::events::{Event, EventHandler, HandlerError};

use crate::NotificationService;
use crate::store::StoreError;
use service::WebhookService;

/// Queues every event it receives for the endpoints that want it.
pub struct WebhookQueue(pub Arc<WebhookService>);

#[async_trait::async_trait]
impl EventHandler for WebhookQueue {
    async fn handle(&self, event: &Event) -> Result<(), HandlerError> {
        self.0
            .enqueue(event)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::retryable(format!("queueing webhooks failed: {e}")))
    }

    /// Most events are wanted by no endpoint: those skip the inbox.
    async fn wants(&self, event: &Event) -> bool {
        self.0.wanted(event).await
    }
}

/// The delivery worker sleeps until the earliest pending message is due, or until new messages
/// wake it: at least this long (a message leased by a stopped worker is due but not claimable
/// until its lease ends)...
const MIN_WAIT: Duration = Duration::from_millis(250);
/// ...and at most this long (another replica may have queued messages).
const MAX_WAIT: Duration = Duration::from_secs(15);

/// Delivers due messages until none are left, then waits a poll interval; mails the alert list
/// about endpoints it switched off. Stops when the context is dropped.
pub async fn deliver(webhooks: Weak<WebhookService>, mailer: Weak<NotificationService>) {
    loop {
        let Some(svc) = webhooks.upgrade() else { break };
        match svc.deliver_due().await {
            Ok((tried, disabled)) => {
                for d in disabled {
                    if let Some(mailer) = mailer.upgrade()
                        && let Err(e) = mailer.handle_event(&d.event()).await
                    {
                        tracing::warn!(endpoint = %d.endpoint.id, error = ?e, "mailing the disabled-webhook alert failed");
                    }
                }
                if tried > 0 {
                    continue;
                }
            }
            Err(StoreError::Db(sqlx::Error::PoolClosed)) => break,
            Err(e) => tracing::warn!(error = %e, "delivering webhooks failed; retrying next tick"),
        }
        // The strong reference is dropped after at most one poll, so dropping the context stops
        // the worker.
        svc.wait_for_work(MIN_WAIT, MAX_WAIT).await;
    }
}
