//! Payments' use cases. Handlers call these; these check roles, apply the domain rules, call the
//! provider and the store, and wake the outbox relay for the events the store wrote.
//!
//! Provider calls run in spawned tasks: a caller that times out or disconnects never cancels a
//! charge half-way. A payment is recorded as `processing` before the provider is called and
//! settled (`UPDATE ... WHERE status = 'processing'`) by whichever answer arrives first: the call
//! itself, a signed webhook, or the reconciler, which re-drives payments left processing (after a
//! provider outage or a crash) with the same provider idempotency keys, so nothing is charged twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use platform::auth::AuthUser;
use platform::events::Outbox;
use platform::{FieldError, Problem};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::PaymentsConfig;
use crate::domain::{
    Amount, CardSource, MethodId, PaymentId, PaymentStatus, RefundId, RefundStatus, StatusRules, check_refund,
    parse_currency, parse_idempotency_key, parse_reason, validate_card,
};
use crate::provider::{
    AuthorizeRequest, PaymentProvider, ProviderError, ProviderEvent, ProviderEventKind, ProviderOutcome, WebhookError,
};
use crate::store::{
    Created, IdempotencyRecord, Method, Payment, PaymentStore, ProviderRefundReport, Refund, Settlement, StoreError,
    WebhookApplied,
};

/// Roles that may create, capture and refund payments (ordering calls with a service token).
pub const PAYMENT_WRITERS: &[&str] = &["service", "admin"];
/// Roles that may read any payment (customers read their own).
pub const PAYMENT_READERS: &[&str] = &["service", "admin", "support"];
/// Idempotency keys are remembered this long.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often a replay looks whether a processing payment has settled.
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    BadWebhook(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PaymentsError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<StoreError> for PaymentsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::OrderHasLivePayment => Self::Conflict(
                "the order already has a payment that is captured, authorized or still processing".into(),
            ),
            StoreError::NotRefundable(status) => Self::Conflict(format!(
                "only captured payments can be refunded (this one is {})",
                status.as_str()
            )),
            StoreError::RefundExceeds { remaining } => {
                Self::invalid("amount", format!("exceeds the refundable remainder of {remaining}"))
            }
            StoreError::NotFound => Self::NotFound("no such payment".into()),
            // The sqlx error itself, so Problem::from_error can tell an outage (503) from a bug.
            StoreError::Db(e) => Self::Internal(e.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<Problem> for PaymentsError {
    fn from(p: Problem) -> Self {
        match p.status.as_u16() {
            403 => Self::Forbidden(p.detail.unwrap_or_default()),
            _ => Self::Internal(anyhow::anyhow!(p.to_string())),
        }
    }
}

pub type PayResult<T> = Result<T, PaymentsError>;

/// An answer to an idempotent write: the resource, its status code (201 settled, 202 still with
/// the provider), and whether it is a replay.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub value: T,
    pub status: u16,
    pub replayed: bool,
}

/// A card as received by `POST /methods`.
pub struct NewMethod<'a> {
    pub source: CardSource<'a>,
    /// Keep it on the account for next time; otherwise it serves one payment.
    pub save: bool,
}

/// A payment request as received (after JSON typing).
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub capture: bool,
}

pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "payments_total",
        "Payments settled, by outcome (captured, authorized, declined, failed)."
    );
    metrics::describe_histogram!(
        "payment_amount",
        "Captured payment amounts in minor units, by currency."
    );
    metrics::describe_histogram!(
        "payment_provider_call_duration_seconds",
        metrics::Unit::Seconds,
        "Payment provider call latency, by operation (tokenize, authorize, capture, refund) and outcome."
    );
    metrics::describe_counter!("refunds_total", "Refunds finished, by outcome (completed, failed).");
}

/// Timestamps are stored to the whole second, so SQLite's RFC 3339 text sorts as time does.
pub use platform::clock::now_to_second as now;

fn provider_timer(operation: &'static str, started: Instant, outcome: &'static str) {
    metrics::histogram!(
        "payment_provider_call_duration_seconds",
        "operation" => operation,
        "outcome" => outcome
    )
    .record(started.elapsed().as_secs_f64());
}

fn outcome_label(result: &Result<ProviderOutcome, ProviderError>) -> &'static str {
    match result {
        Ok(ProviderOutcome::Authorized { .. } | ProviderOutcome::Captured { .. }) => "ok",
        Ok(ProviderOutcome::Declined { .. }) => "declined",
        Ok(ProviderOutcome::Failed { .. }) => "failed",
        Err(ProviderError::Rejected(_)) => "rejected",
        Err(ProviderError::Unavailable(_)) => "unavailable",
    }
}

fn settled_metrics(p: &Payment) {
    metrics::counter!("payments_total", "outcome" => p.status.as_str()).increment(1);
    if p.status == PaymentStatus::Captured {
        metrics::histogram!("payment_amount", "currency" => p.currency.to_string()).record(p.captured_amount as f64);
    }
}

/// A digest of what a request asks for, to tell a retry from a different request under one key.
fn request_hash(value: &serde_json::Value) -> Vec<u8> {
    Sha256::digest(value.to_string().as_bytes()).to_vec()
}

/// Removes a payment or refund id from the in-flight set when its driver ends, however it ends.
struct InFlight {
    set: Arc<Mutex<HashSet<Uuid>>>,
    id: Uuid,
}

impl InFlight {
    fn claim(set: &Arc<Mutex<HashSet<Uuid>>>, id: Uuid) -> Option<Self> {
        let fresh = set.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        fresh.then(|| Self { set: set.clone(), id })
    }

    /// Claims the id of a payment or refund about to be written, before any other request can
    /// read it: a replay that finds the new row then finds it in flight and waits for its
    /// driver, instead of starting a second one that leaves the first answering 202.
    fn claim_new(set: &Arc<Mutex<HashSet<Uuid>>>, id: Uuid) -> Self {
        set.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
        Self { set: set.clone(), id }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

/// Talks to the provider and records its answers; cloned into the spawned tasks.
#[derive(Clone)]
struct Driver {
    store: Arc<dyn PaymentStore>,
    provider: Arc<dyn PaymentProvider>,
    outbox: Outbox,
    in_flight: Arc<Mutex<HashSet<Uuid>>>,
}

impl Driver {
    fn in_flight(&self, id: Uuid) -> bool {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).contains(&id)
    }

    /// Asks the provider about a processing payment and settles it. `Ok(None)` when another task
    /// is already driving it or the provider is unavailable (it stays processing). `token` is the
    /// method's provider token when the caller has just read the method; otherwise it is read.
    async fn drive_payment(self, payment: Payment, token: Option<String>) -> anyhow::Result<Option<Payment>> {
        let Some(claim) = InFlight::claim(&self.in_flight, payment.id.0) else {
            return Ok(None);
        };
        self.drive_claimed_payment(claim, payment, token).await
    }

    /// [`Self::drive_payment`] under a claim already held.
    async fn drive_claimed_payment(
        self,
        _claim: InFlight,
        payment: Payment,
        token: Option<String>,
    ) -> anyhow::Result<Option<Payment>> {
        let Some(settlement) = self.ask_provider(&payment, token).await else {
            return Ok(None);
        };
        let settled = self.store.settle(payment.id, &settlement, now()).await?;
        if let Some(p) = &settled {
            settled_metrics(p);
            self.outbox.notify();
        }
        Ok(settled)
    }

    /// Authorizes (and captures, when asked: in the same call, or with a second one when the
    /// provider only authorized) with idempotency keys derived from the payment id, so asking
    /// again after a lost answer returns the first result.
    async fn ask_provider(&self, p: &Payment, token: Option<String>) -> Option<Settlement> {
        let method_token = match token {
            Some(token) => token,
            None => self.method_token(p).await?,
        };
        let request = AuthorizeRequest {
            amount: p.amount,
            currency: p.currency.to_string(),
            method_token,
            idempotency_key: authorize_key(p.id),
            capture: p.capture,
        };
        let started = Instant::now();
        let answer = self.provider.authorize(&request).await;
        let operation = if p.capture { "charge" } else { "authorize" };
        provider_timer(operation, started, outcome_label(&answer));
        let settlement = match answer {
            Ok(ProviderOutcome::Authorized { intent_id }) if p.capture => {
                let started = Instant::now();
                let captured = self.provider.capture(&intent_id, p.amount, &capture_key(p.id)).await;
                provider_timer("capture", started, outcome_label(&captured));
                match captured {
                    Ok(ProviderOutcome::Captured { intent_id, amount }) => Settlement::Captured { intent_id, amount },
                    Ok(ProviderOutcome::Authorized { intent_id }) => Settlement::Authorized { intent_id },
                    Ok(ProviderOutcome::Declined { code, .. }) => Settlement::Declined {
                        intent_id: Some(intent_id),
                        code,
                    },
                    Ok(ProviderOutcome::Failed { reason, .. }) | Err(ProviderError::Rejected(reason)) => {
                        Settlement::Failed {
                            intent_id: Some(intent_id),
                            reason,
                        }
                    }
                    Err(ProviderError::Unavailable(why)) => {
                        tracing::warn!(payment = %p.id, error = %why, "capture unanswered; the payment stays processing");
                        return None;
                    }
                }
            }
            Ok(ProviderOutcome::Authorized { intent_id }) => Settlement::Authorized { intent_id },
            Ok(ProviderOutcome::Captured { intent_id, amount }) => Settlement::Captured { intent_id, amount },
            Ok(ProviderOutcome::Declined { intent_id, code }) => Settlement::Declined { intent_id, code },
            Ok(ProviderOutcome::Failed { intent_id, reason, .. }) => Settlement::Failed { intent_id, reason },
            Err(ProviderError::Rejected(reason)) => Settlement::Failed {
                intent_id: None,
                reason,
            },
            Err(ProviderError::Unavailable(why)) => {
                tracing::warn!(payment = %p.id, error = %why, "authorization unanswered; the payment stays processing");
                return None;
            }
        };
        Some(settlement)
    }

    async fn method_token(&self, p: &Payment) -> Option<String> {
        match self.store.method(p.method_id).await {
            Ok(Some(m)) => Some(m.provider_token),
            Ok(None) => {
                tracing::error!(payment = %p.id, "the payment's method is missing");
                None
            }
            Err(e) => {
                tracing::warn!(payment = %p.id, error = %e, "cannot read the payment method; retrying later");
                None
            }
        }
    }

    /// Sends a pending refund to the provider and records the answer.
    async fn drive_refund(self, refund: Refund) -> anyhow::Result<Option<Refund>> {
        let Some(claim) = InFlight::claim(&self.in_flight, refund.id.0) else {
            return Ok(None);
        };
        self.drive_claimed_refund(claim, refund).await
    }

    /// [`Self::drive_refund`] under a claim already held.
    async fn drive_claimed_refund(self, _claim: InFlight, refund: Refund) -> anyhow::Result<Option<Refund>> {
        let Some(payment) = self.store.payment(refund.payment_id).await? else {
            anyhow::bail!("refund {} names a missing payment", refund.id);
        };
        let Some(intent) = payment.provider_intent.as_deref() else {
            anyhow::bail!("captured payment {} has no provider intent", payment.id);
        };
        let started = Instant::now();
        let answer = self
            .provider
            .refund(intent, refund.amount, &refund_key(refund.id))
            .await;
        let outcome = match answer {
            Ok(r) => {
                provider_timer("refund", started, "ok");
                Ok(r.refund_id)
            }
            Err(ProviderError::Rejected(reason)) => {
                provider_timer("refund", started, "rejected");
                Err(reason)
            }
            Err(ProviderError::Unavailable(why)) => {
                provider_timer("refund", started, "unavailable");
                tracing::warn!(refund = %refund.id, error = %why, "refund unanswered; it stays pending");
                return Ok(None);
            }
        };
        let finished = self.store.finish_refund(refund.id, outcome, now()).await?;
        if let Some(r) = &finished {
            metrics::counter!("refunds_total", "outcome" => r.status.as_str()).increment(1);
            self.outbox.notify();
        }
        Ok(finished)
    }
}

pub fn authorize_key(id: PaymentId) -> String {
    format!("{id}:authorize")
}

fn capture_key(id: PaymentId) -> String {
    format!("{id}:capture")
}

fn refund_key(id: RefundId) -> String {
    format!("{id}:refund")
}

pub struct PaymentsService {
    driver: Driver,
    config: PaymentsConfig,
}

impl PaymentsService {
    pub fn new(
        store: Arc<dyn PaymentStore>,
        provider: Arc<dyn PaymentProvider>,
        config: PaymentsConfig,
        outbox: Outbox,
    ) -> Self {
        Self {
            driver: Driver {
                store,
                provider,
                outbox,
                in_flight: Arc::default(),
            },
            config,
        }
    }

    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }

    fn store(&self) -> &dyn PaymentStore {
        self.driver.store.as_ref()
    }

    // ---- payment methods ----------------------------------------------------------------------

    /// Tokenizes a card for the caller. Only brand, last four, expiry and the token are kept.
    pub async fn add_method(&self, auth: &AuthUser, card: NewMethod<'_>) -> PayResult<Method> {
        let today = now();
        let provider = &self.driver.provider;
        let started = Instant::now();
        let (tokenized, operation) = match &card.source {
            CardSource::Typed(_) if !provider.takes_card_data() => {
                return Err(PaymentsError::invalid(
                    "card_number",
                    format!(
                        "this shop takes cards through {}'s own form in the browser: send provider_token, never the card number",
                        provider.name()
                    ),
                ));
            }
            CardSource::Typed(raw) => {
                let details = validate_card(raw, (today.year(), u8::from(today.month()))).map_err(|errors| {
                    PaymentsError::Validation(errors.into_iter().map(|(f, m)| FieldError::new(f, m)).collect())
                })?;
                (provider.tokenize_card(&details).await, "tokenize")
            }
            CardSource::ProviderToken(token) => (provider.adopt_method(token).await, "adopt"),
        };
        provider_timer(operation, started, if tokenized.is_ok() { "ok" } else { "error" });
        let provider_method = match tokenized {
            Ok(m) => m,
            Err(ProviderError::Rejected(m)) => {
                let field = match card.source {
                    CardSource::Typed(_) => "card_number",
                    CardSource::ProviderToken(_) => "provider_token",
                };
                return Err(PaymentsError::invalid(field, m));
            }
            Err(ProviderError::Unavailable(m)) => return Err(PaymentsError::Unavailable(m)),
        };
        let method = Method {
            id: MethodId::new(),
            user_id: auth.id(),
            brand: provider_method.brand,
            last4: provider_method.last4,
            exp_month: provider_method.exp_month,
            exp_year: provider_method.exp_year,
            provider: self.driver.provider.name().to_owned(),
            provider_token: provider_method.token,
            created_at: today,
            saved: card.save,
            removed_at: None,
        };
        self.store().insert_method(&method).await?;
        Ok(method)
    }

    /// One saved card: its owner, or staff and services (404 for anyone else).
    pub async fn method(&self, auth: &AuthUser, id: &str) -> PayResult<Method> {
        let missing = || PaymentsError::NotFound("no such payment method".into());
        let id = MethodId::parse(id).map_err(|_| missing())?;
        let method = self
            .store()
            .method(id)
            .await?
            .filter(|m| m.removed_at.is_none())
            .ok_or_else(missing)?;
        if method.user_id == auth.id() || PAYMENT_READERS.iter().any(|r| auth.has_role(r)) {
            Ok(method)
        } else {
            Err(missing())
        }
    }

    /// Removes one of the caller's cards (only its owner may; 404 for anyone else, as for a card
    /// that does not exist). Past payments keep naming it; new payments cannot use it.
    pub async fn remove_method(&self, auth: &AuthUser, id: &str) -> PayResult<()> {
        let missing = || PaymentsError::NotFound("no such payment method".into());
        let id = MethodId::parse(id).map_err(|_| missing())?;
        if self.store().remove_method(id, auth.id(), now()).await? {
            Ok(())
        } else {
            Err(missing())
        }
    }

    pub async fn methods(&self, auth: &AuthUser) -> PayResult<Vec<Method>> {
        Ok(self.store().methods_of(auth.id()).await?)
    }

    // ---- payments -----------------------------------------------------------------------------

    /// Creates and submits a payment. See the API docs for the idempotency rules.
    pub async fn create_payment(
        &self,
        auth: &AuthUser,
        idempotency_key: Option<&str>,
        req: PaymentRequest,
    ) -> PayResult<Answer<Payment>> {
        auth.require_any_role(PAYMENT_WRITERS)?;
        let mut errors = Vec::new();
        let key = parse_idempotency_key(idempotency_key)
            .map_err(|m| errors.push(FieldError::new("Idempotency-Key", m)))
            .ok();
        let amount = Amount::parse(req.amount)
            .map_err(|m| errors.push(FieldError::new("amount", m)))
            .ok();
        let currency = parse_currency(&req.currency, &self.config.currencies)
            .map_err(|m| errors.push(FieldError::new("currency", m)))
            .ok();
        let method_id = MethodId::parse(&req.payment_method)
            .map_err(|m| errors.push(FieldError::new("payment_method", m)))
            .ok();
        let (Some(key), Some(amount), Some(currency), Some(method_id)) = (key, amount, currency, method_id) else {
            return Err(PaymentsError::Validation(errors));
        };
        let hash = request_hash(&serde_json::json!({
            "order_id": req.order_id,
            "customer_id": req.customer_id,
            "amount": amount.get(),
            "currency": currency.as_str(),
            "payment_method": method_id.to_string(),
            "capture": req.capture,
        }));
        // A key used before is found by the claim in `create_payment`. A retry must get the
        // first answer even when its card can no longer pay (a card used once without saving is
        // removed after the charge), so a refused card looks for the key before refusing.
        let today = now();
        let method = match self.usable_method(method_id, req.customer_id, today).await? {
            Ok(method) => method,
            Err(refusal) => {
                return match self.store().idempotency_record(auth.id(), "payment", &key).await? {
                    Some(record) => self.replay_payment(record, &hash).await,
                    None => Err(refusal),
                };
            }
        };

        let payment = Payment {
            id: PaymentId::new(),
            order_id: req.order_id,
            customer_id: req.customer_id,
            method_id,
            amount: amount.get(),
            currency,
            capture: req.capture,
            status: PaymentStatus::Processing,
            brand: method.brand,
            last4: method.last4.clone(),
            provider: method.provider.clone(),
            provider_intent: None,
            decline_code: None,
            failure_reason: None,
            created_by: auth.id(),
            created_at: today,
            updated_at: today,
            version: 1,
            captured_amount: 0,
            refunded_amount: 0,
            refunds_pending: 0,
        };
        let record = IdempotencyRecord {
            owner: auth.id(),
            scope: "payment",
            key,
            request_hash: hash.clone(),
            resource_id: payment.id.0,
        };
        let claim = InFlight::claim_new(&self.driver.in_flight, payment.id.0);
        match self.store().create_payment(&payment, &record).await? {
            Created::KeyUsed(record) => {
                drop(claim);
                self.replay_payment(record, &hash).await
            }
            Created::New(payment) => {
                let id = payment.id;
                // In the request's span: the provider call and the payment's events belong
                // to the caller's trace.
                let task = tokio::spawn(tracing::Instrument::in_current_span(
                    self.driver
                        .clone()
                        .drive_claimed_payment(claim, payment, Some(method.provider_token)),
                ));
                let settled = match tokio::time::timeout(self.config.provider_wait, task).await {
                    Ok(Ok(Ok(settled))) => settled,
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(payment = %id, error = %format!("{e:#}"), "settling failed; the reconciler retries");
                        None
                    }
                    Ok(Err(e)) => {
                        tracing::error!(payment = %id, error = %e, "payment driver panicked; the reconciler retries");
                        None
                    }
                    Err(_) => None,
                };
                // The driver's settled payment is the row as written; read it only when the
                // driver did not settle it (still processing, or settled by another task).
                let current = match settled {
                    Some(p) => p,
                    None => self.load(id).await?,
                };
                if current.status == PaymentStatus::Processing {
                    metrics::counter!("payments_total", "outcome" => "processing").increment(1);
                }
                Ok(Answer {
                    status: if current.status.is_settled() { 201 } else { 202 },
                    value: current,
                    replayed: false,
                })
            }
        }
    }

    /// The card `id` if `customer` may pay with it today, else why not (a 422 naming the field).
    async fn usable_method(
        &self,
        id: MethodId,
        customer: Uuid,
        today: time::OffsetDateTime,
    ) -> PayResult<Result<Method, PaymentsError>> {
        let refuse = |message: &str| Ok(Err(PaymentsError::invalid("payment_method", message)));
        let Some(method) = self.store().method(id).await? else {
            return refuse("no such payment method");
        };
        if method.removed_at.is_some() {
            return refuse("was removed (declined, used once without saving, or removed by its owner)");
        }
        if method.user_id != customer {
            return refuse("does not belong to the customer");
        }
        let expiry = crate::domain::Expiry {
            month: method.exp_month,
            year: method.exp_year,
        };
        if !expiry.valid_in(today.year(), u8::from(today.month())) {
            return refuse("the card has expired");
        }
        Ok(Ok(method))
    }

    /// The answer to a repeated request: the payment as it is now (waiting a little for a
    /// processing one to settle, and re-driving it when nobody is).
    async fn replay_payment(&self, record: IdempotencyRecord, hash: &[u8]) -> PayResult<Answer<Payment>> {
        if record.request_hash != hash {
            return Err(PaymentsError::invalid(
                "Idempotency-Key",
                "was already used with a different request body",
            ));
        }
        let id = PaymentId(record.resource_id);
        let deadline = Instant::now() + self.config.provider_wait;
        let mut payment = self.load(id).await?;
        if payment.status == PaymentStatus::Processing && !self.driver.in_flight(id.0) {
            let driver = self.driver.clone();
            let stuck = payment.clone();
            tokio::spawn(async move {
                if let Err(e) = driver.drive_payment(stuck, None).await {
                    tracing::warn!(error = %format!("{e:#}"), "re-driving a processing payment failed");
                }
            });
        }
        while payment.status == PaymentStatus::Processing && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            payment = self.load(id).await?;
        }
        Ok(Answer {
            status: if payment.status.is_settled() { 201 } else { 202 },
            value: payment,
            replayed: true,
        })
    }

    async fn load(&self, id: PaymentId) -> PayResult<Payment> {
        self.store()
            .payment(id)
            .await?
            .ok_or_else(|| PaymentsError::NotFound("no such payment".into()))
    }

    fn may_read(auth: &AuthUser, p: &Payment) -> bool {
        PAYMENT_READERS.iter().any(|r| auth.has_role(r)) || p.customer_id == auth.id()
    }

    /// One payment: staff and services, or the customer it belongs to (404 for anyone else).
    pub async fn payment(&self, auth: &AuthUser, id: PaymentId) -> PayResult<Payment> {
        let payment = self.load(id).await?;
        if !Self::may_read(auth, &payment) {
            return Err(PaymentsError::NotFound("no such payment".into()));
        }
        Ok(payment)
    }

    /// An order's payments the caller may read, oldest first.
    pub async fn payments_of_order(&self, auth: &AuthUser, order_id: Uuid) -> PayResult<Vec<Payment>> {
        let mut payments = self.store().payments_of_order(order_id).await?;
        payments.retain(|p| Self::may_read(auth, p));
        Ok(payments)
    }

    /// Captures an authorized payment (idempotent: a captured one is returned as it is).
    pub async fn capture(&self, auth: &AuthUser, id: PaymentId) -> PayResult<Payment> {
        auth.require_any_role(PAYMENT_WRITERS)?;
        let payment = self.load(id).await?;
        match payment.status {
            PaymentStatus::Captured => return Ok(payment),
            PaymentStatus::Authorized => {}
            PaymentStatus::Processing => {
                return Err(PaymentsError::Conflict(
                    "the payment is still processing; capture it once authorized".into(),
                ));
            }
            other => {
                return Err(PaymentsError::Conflict(format!(
                    "a {} payment cannot be captured",
                    other.as_str()
                )));
            }
        }
        let intent = payment
            .provider_intent
            .clone()
            .ok_or_else(|| anyhow::anyhow!("authorized payment {id} has no provider intent"))?;
        let provider = self.driver.provider.clone();
        let amount = payment.amount;
        let task = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let started = Instant::now();
            let answer = provider.capture(&intent, amount, &capture_key(id)).await;
            provider_timer("capture", started, outcome_label(&answer));
            answer
        }));
        let answer = match tokio::time::timeout(self.config.provider_wait, task).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(anyhow::anyhow!("capture task failed: {e}").into()),
            Err(_) => {
                return Err(PaymentsError::Unavailable(
                    "the payment provider did not answer in time; retry the capture".into(),
                ));
            }
        };
        match answer {
            Ok(ProviderOutcome::Captured { intent_id, amount }) => {
                if let Some(p) = self.store().capture_authorized(id, &intent_id, amount, now()).await? {
                    settled_metrics(&p);
                    self.driver.outbox.notify();
                    return Ok(p);
                }
                self.load(id).await
            }
            Ok(other) => Err(PaymentsError::Conflict(format!(
                "the provider refused the capture: {other:?}"
            ))),
            Err(ProviderError::Rejected(m)) => Err(PaymentsError::Conflict(format!(
                "the provider refused the capture: {m}"
            ))),
            Err(ProviderError::Unavailable(m)) => Err(PaymentsError::Unavailable(m)),
        }
    }

    // ---- refunds ------------------------------------------------------------------------------

    /// Refunds part or all of a captured payment. `Idempotency-Key` required, as for payments.
    pub async fn refund(
        &self,
        auth: &AuthUser,
        id: PaymentId,
        idempotency_key: Option<&str>,
        amount: i64,
        reason: Option<&str>,
    ) -> PayResult<Answer<Refund>> {
        auth.require_any_role(PAYMENT_WRITERS)?;
        let mut errors = Vec::new();
        let key = parse_idempotency_key(idempotency_key)
            .map_err(|m| errors.push(FieldError::new("Idempotency-Key", m)))
            .ok();
        let parsed_amount = Amount::parse(amount)
            .map_err(|m| errors.push(FieldError::new("amount", m)))
            .ok();
        let reason = parse_reason(reason)
            .map_err(|m| errors.push(FieldError::new("reason", m)))
            .ok();
        let (Some(key), Some(_), Some(reason)) = (key, parsed_amount, reason) else {
            return Err(PaymentsError::Validation(errors));
        };
        let payment = self.load(id).await?;
        let hash = request_hash(&serde_json::json!({"payment_id": id.0, "amount": amount, "reason": reason}));
        if let Some(record) = self.store().idempotency_record(auth.id(), "refund", &key).await? {
            return self.replay_refund(record, &hash).await;
        }
        if payment.status != PaymentStatus::Captured {
            return Err(PaymentsError::Conflict(format!(
                "only captured payments can be refunded (this one is {})",
                payment.status.as_str()
            )));
        }
        // A state conflict, not a bad amount: nothing is left to refund.
        if payment.captured_amount > 0 && payment.refunded_amount >= payment.captured_amount {
            return Err(PaymentsError::Conflict("the payment is already refunded".into()));
        }
        let amount = check_refund(
            amount,
            payment.captured_amount,
            payment.refunded_amount + payment.refunds_pending,
        )
        .map_err(|m| PaymentsError::invalid("amount", m))?;
        let today = now();
        let refund = Refund {
            id: RefundId::new(),
            payment_id: id,
            order_id: payment.order_id,
            amount: amount.get(),
            currency: payment.currency,
            reason,
            status: RefundStatus::Pending,
            provider_ref: None,
            failure_reason: None,
            created_by: auth.id(),
            created_at: today,
            updated_at: today,
        };
        let record = IdempotencyRecord {
            owner: auth.id(),
            scope: "refund",
            key,
            request_hash: hash.clone(),
            resource_id: refund.id.0,
        };
        let claim = InFlight::claim_new(&self.driver.in_flight, refund.id.0);
        match self.store().create_refund(&refund, &record).await? {
            Created::KeyUsed(record) => {
                drop(claim);
                self.replay_refund(record, &hash).await
            }
            Created::New(refund) => {
                let rid = refund.id;
                let task = tokio::spawn(tracing::Instrument::in_current_span(
                    self.driver.clone().drive_claimed_refund(claim, refund),
                ));
                match tokio::time::timeout(self.config.provider_wait, task).await {
                    Ok(Ok(Err(e))) => {
                        tracing::warn!(refund = %rid, error = %format!("{e:#}"), "refund failed to settle; the reconciler retries")
                    }
                    Ok(Err(e)) => {
                        tracing::error!(refund = %rid, error = %e, "refund driver panicked; the reconciler retries")
                    }
                    Ok(Ok(Ok(_))) | Err(_) => {}
                }
                let current = self.load_refund(rid).await?;
                Ok(Answer {
                    status: if current.status == RefundStatus::Pending {
                        202
                    } else {
                        201
                    },
                    value: current,
                    replayed: false,
                })
            }
        }
    }

    async fn replay_refund(&self, record: IdempotencyRecord, hash: &[u8]) -> PayResult<Answer<Refund>> {
        if record.request_hash != hash {
            return Err(PaymentsError::invalid(
                "Idempotency-Key",
                "was already used with a different request body",
            ));
        }
        let id = RefundId(record.resource_id);
        let deadline = Instant::now() + self.config.provider_wait;
        let mut refund = self.load_refund(id).await?;
        while refund.status == RefundStatus::Pending && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            refund = self.load_refund(id).await?;
        }
        Ok(Answer {
            status: if refund.status == RefundStatus::Pending {
                202
            } else {
                201
            },
            value: refund,
            replayed: true,
        })
    }

    async fn load_refund(&self, id: RefundId) -> PayResult<Refund> {
        self.store()
            .refund(id)
            .await?
            .ok_or_else(|| PaymentsError::NotFound("no such refund".into()))
    }

    /// A payment's refunds, for whoever may read the payment.
    pub async fn refunds(&self, auth: &AuthUser, id: PaymentId) -> PayResult<Vec<Refund>> {
        self.payment(auth, id).await?;
        Ok(self.store().refunds_of(id).await?)
    }

    // ---- webhooks -----------------------------------------------------------------------------

    /// Verifies and applies a provider webhook. Returns the result word for the acknowledgement.
    pub async fn webhook(&self, provider: &str, headers: &HeaderMap, body: &[u8]) -> PayResult<&'static str> {
        if provider != self.driver.provider.name() {
            return Err(PaymentsError::NotFound(format!("no payment provider named {provider}")));
        }
        let event = match self.driver.provider.verify_webhook(headers, body) {
            Ok(event) => event,
            Err(WebhookError::Unhandled(kind)) => {
                tracing::debug!(kind, "webhook of a type we do not act on; acknowledged");
                return Ok("ignored");
            }
            Err(e) => return Err(PaymentsError::BadWebhook(e.to_string())),
        };
        let payment = match payment_of_event(&event) {
            Some(id) => self.store().payment(id).await?,
            None => self.store().payment_by_intent(&event.data.intent_id).await?,
        };
        let Some(payment) = payment else {
            tracing::warn!(event = %event.id, kind = event.kind.as_str(), "webhook for a payment we do not know; ignored");
            return Ok("ignored");
        };
        if payment.amount != event.data.amount || !payment.currency.as_str().eq_ignore_ascii_case(&event.data.currency)
        {
            tracing::warn!(event = %event.id, payment = %payment.id, "webhook amount or currency differs from the payment; ignored");
            return Ok("ignored");
        }
        if event.kind == ProviderEventKind::Refunded {
            return self.provider_refunds(provider, &event, &payment).await;
        }
        let intent_id = event.data.intent_id.clone();
        let settlement = match event.kind {
            ProviderEventKind::Succeeded => Settlement::Captured {
                intent_id,
                amount: event.data.amount,
            },
            // A payment we capture ourselves waits for the capture, not for the hold.
            ProviderEventKind::Authorized if payment.capture => return Ok("ignored"),
            ProviderEventKind::Authorized => Settlement::Authorized { intent_id },
            ProviderEventKind::PaymentFailed => match event.data.decline_code {
                Some(code) => Settlement::Declined {
                    intent_id: Some(intent_id),
                    code,
                },
                None => Settlement::Failed {
                    intent_id: Some(intent_id),
                    reason: event
                        .data
                        .failure_reason
                        .clone()
                        .unwrap_or_else(|| "processing_error".into()),
                },
            },
            ProviderEventKind::Refunded => unreachable!("handled above"),
        };
        match self
            .store()
            .apply_webhook(&event.id, provider, event.kind.as_str(), payment.id, &settlement, now())
            .await?
        {
            WebhookApplied::Duplicate => Ok("duplicate"),
            WebhookApplied::AlreadySettled => Ok("already_settled"),
            WebhookApplied::Settled(p) => {
                settled_metrics(&p);
                self.driver.outbox.notify();
                Ok("applied")
            }
        }
    }

    /// `charge.refunded`: completes our refunds the provider reports done (when its answer to
    /// our call was lost) and records refunds made at the provider, so the ledger matches the
    /// money. Each provider refund is recorded once, however often the event comes.
    async fn provider_refunds(
        &self,
        provider: &str,
        event: &ProviderEvent,
        payment: &Payment,
    ) -> PayResult<&'static str> {
        if payment.status != PaymentStatus::Captured {
            tracing::warn!(event = %event.id, payment = %payment.id, status = payment.status.as_str(), "refund event for a payment that is not captured; ignored");
            return Ok("ignored");
        }
        let refunds = self
            .driver
            .provider
            .refunds_of(&event.data.intent_id, &event.data.refunds)
            .await
            .map_err(|e| PaymentsError::Unavailable(e.to_string()))?;
        let reports: Vec<ProviderRefundReport> = refunds
            .iter()
            .filter(|r| r.amount > 0)
            .map(|r| ProviderRefundReport {
                provider_ref: r.refund_id.clone(),
                amount: r.amount,
                ours: r.idempotency_key.as_deref().and_then(refund_of_key),
            })
            .collect();
        match self
            .store()
            .apply_provider_refunds(&event.id, provider, event.kind.as_str(), payment.id, &reports, now())
            .await?
        {
            None => Ok("duplicate"),
            Some(completed) => {
                for r in &completed {
                    metrics::counter!("refunds_total", "outcome" => r.status.as_str()).increment(1);
                }
                if completed.is_empty() {
                    Ok("already_settled")
                } else {
                    self.driver.outbox.notify();
                    Ok("applied")
                }
            }
        }
    }

    // ---- background work ----------------------------------------------------------------------

    /// Re-drives payments left processing and refunds left pending for longer than the reconcile
    /// period (provider outage, crash). Safe with several replicas: provider calls are idempotent
    /// and settling is conditional. Returns how many were settled here.
    pub async fn reconcile(&self) -> anyhow::Result<usize> {
        let before = now() - self.config.reconcile_after;
        let mut settled = 0;
        for id in self.store().stale_payments(before, 100).await? {
            if self.driver.in_flight(id.0) {
                continue;
            }
            if let Some(p) = self.store().payment(id).await?
                && p.status == PaymentStatus::Processing
                && self.driver.clone().drive_payment(p, None).await?.is_some()
            {
                settled += 1;
            }
        }
        for id in self.store().stale_refunds(before, 100).await? {
            if self.driver.in_flight(id.0) {
                continue;
            }
            if let Some(r) = self.store().refund(id).await?
                && r.status == RefundStatus::Pending
                && self.driver.clone().drive_refund(r).await?.is_some()
            {
                settled += 1;
            }
        }
        Ok(settled)
    }

    pub async fn purge_idempotency_keys(&self) -> anyhow::Result<u64> {
        Ok(self.store().purge_idempotency(now() - IDEMPOTENCY_RETENTION).await?)
    }
}

/// Our payment id from the intent's idempotency key (`<payment id>:authorize`).
fn payment_of_event(event: &ProviderEvent) -> Option<PaymentId> {
    let id = event.data.idempotency_key.as_deref()?.strip_suffix(":authorize")?;
    Uuid::parse_str(id).ok().map(PaymentId)
}

/// Our refund id from a provider refund's idempotency key (`<refund id>:refund`).
fn refund_of_key(key: &str) -> Option<RefundId> {
    Uuid::parse_str(key.strip_suffix(":refund")?).ok().map(RefundId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::IntentData;

    #[test]
    fn request_hashes_tell_bodies_apart() {
        let a = request_hash(&serde_json::json!({"amount": 1, "currency": "EUR"}));
        assert_eq!(a, request_hash(&serde_json::json!({"amount": 1, "currency": "EUR"})));
        assert_ne!(a, request_hash(&serde_json::json!({"amount": 2, "currency": "EUR"})));
    }

    #[test]
    fn store_refusals_map_to_statuses_and_fields() {
        let p = Problem::from(PaymentsError::from(StoreError::RefundExceeds { remaining: 5 }));
        assert_eq!(p.status.as_u16(), 422);
        assert_eq!(p.errors[0].field, "amount");
        let p = Problem::from(PaymentsError::from(StoreError::OrderHasLivePayment));
        assert_eq!(p.status.as_u16(), 409);
        let p = Problem::from(PaymentsError::BadWebhook("nope".into()));
        assert_eq!(p.status.as_u16(), 400);
    }

    #[test]
    fn events_find_their_payment_by_the_authorize_key() {
        let id = PaymentId::new();
        let mut event = ProviderEvent {
            id: "evt_1".into(),
            kind: ProviderEventKind::Succeeded,
            created: 0,
            data: IntentData {
                intent_id: "pi_1".into(),
                idempotency_key: Some(authorize_key(id)),
                amount: 1,
                currency: "EUR".into(),
                decline_code: None,
                failure_reason: None,
                refunds: vec![],
            },
        };
        assert_eq!(payment_of_event(&event), Some(id));
        event.data.idempotency_key = Some("something-else".into());
        assert_eq!(payment_of_event(&event), None);
        event.data.idempotency_key = None;
        assert_eq!(payment_of_event(&event), None);
        let refund = RefundId(Uuid::now_v7());
        assert_eq!(refund_of_key(&refund_key(refund)), Some(refund));
        assert_eq!(refund_of_key(&authorize_key(id)), None);
    }
}
