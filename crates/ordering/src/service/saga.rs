//! The order saga after checkout: capture the payment, commit the reservation, and on the way
//! back (cancelled, failed, expired) refund, release or restock. Each step is persisted before it
//! acts and runs under the order's lease; the recovery loop resumes steps whose lease has passed.

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{ORPHAN_CLAIM_AGE, OrderError, OrderingService, Result, apply, now};
use crate::domain::{Actor, OrderEvent, OrderId, OrderStatus, StatusRules};
use crate::events;
use contracts::api::payments::{CreatePaymentRequest, PaymentStatus, PaymentView};

use crate::peers::{Charged, Finished};
use crate::store::{Decide, Emit, Mutation, Order, Refusal, SagaStep, StoreError};

/// What a step changes in the order (decided again if the order moved since the saga's last write).
type StepChange = dyn Fn(&Order, &mut Mutation, OffsetDateTime) -> Result<(), Refusal> + Send + Sync;

/// How a saga step ended.
enum Step {
    /// The next step (or the end) was persisted, as this order: keep going from it.
    Continue(Box<Order>),
    /// Try again later (payment processing, a peer down).
    Wait(String),
    /// Someone else moved the order: stop without touching it.
    Stale,
}

impl OrderingService {
    /// Runs the saga steps of `order`, as just written with `token` holding its lease. Each step
    /// starts from the order its predecessor wrote (the write checked the lease), so the loop never
    /// reads the order back. Answers the order as its last step wrote it when the saga ran to its
    /// end here; `None` when it stopped early (it will resume from the stored order).
    pub async fn drive(&self, mut order: Order, token: Uuid) -> Option<Order> {
        let id = order.id;
        for _ in 0..16 {
            let Some(step) = order.saga_step else {
                return Some(order);
            };
            if order.saga_lease_owner != Some(token) {
                return None;
            }
            let started = Instant::now();
            let outcome = match step {
                SagaStep::Capture => self.step_capture(&order, token).await,
                SagaStep::Commit => self.step_commit(&order, token).await,
                SagaStep::Refund => self.step_refund(&order, token).await,
                SagaStep::Release => self.step_release(&order, token).await,
                SagaStep::Restock => self.step_restock(&order, token).await,
            };
            let label = match &outcome {
                Ok(Step::Continue(_)) => "done",
                Ok(Step::Wait(_)) => "retry",
                Ok(Step::Stale) => "stale",
                Err(_) => "error",
            };
            metrics::histogram!("order_saga_step_duration_seconds", "step" => step.as_str(), "outcome" => label)
                .record(started.elapsed().as_secs_f64());
            self.outbox.notify();
            match outcome {
                Ok(Step::Continue(next)) => order = *next,
                Ok(Step::Stale) => return None,
                Ok(Step::Wait(why)) => {
                    tracing::info!(order = %id, step = step.as_str(), why, "saga step will be retried");
                    self.pause(id, token, step).await;
                    return None;
                }
                Err(e) => {
                    tracing::warn!(order = %id, step = step.as_str(), error = %e, "saga step failed; will retry");
                    self.pause(id, token, step).await;
                    return None;
                }
            }
        }
        None
    }

    /// Gives the lease back with a retry time, for the recovery loop. The first time the capture
    /// has to wait, the payment did not settle within the checkout request: that is when the
    /// customer hears "received, waiting for the payment" (`ordering.order.payment_pending`);
    /// a payment that settles at once gets only its outcome mailed.
    async fn pause(&self, id: OrderId, token: Uuid, step: SagaStep) {
        let retry_at =
            now() + time::Duration::try_from(self.config.recovery_interval).unwrap_or(time::Duration::SECOND);
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    if o.saga_lease_owner != Some(token) {
                        return Err(Refusal::Stale);
                    }
                    let first_wait_for_payment =
                        step == SagaStep::Capture && o.status == OrderStatus::AwaitingPayment && o.saga_attempts == 0;
                    let mut next = o.clone();
                    next.saga_lease_owner = None;
                    next.saga_lease_until = Some(retry_at);
                    next.saga_attempts += 1;
                    let mut m = Mutation::new(next);
                    if first_wait_for_payment {
                        m.events = Emit::WithLines(Box::new(|o, lines| vec![events::payment_pending(o, lines)]));
                    }
                    Ok(m)
                }),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, order = %id, "saga: cannot release the lease; it will lapse");
        }
    }

    /// Persists the change `f` makes if `token` still holds the order at `step`. `known` is the
    /// order as this saga last wrote it: the change is decided on it and written if the order has
    /// not moved since (no locking read), else decided again on the order as stored.
    async fn advance(
        &self,
        known: &Order,
        token: Uuid,
        step: SagaStep,
        f: impl Fn(&Order, &mut Mutation, OffsetDateTime) -> Result<(), Refusal> + Send + Sync + 'static,
    ) -> Result<Step> {
        let lease = self.config.saga_lease;
        let at = now();
        let f: Arc<StepChange> = Arc::new(f);
        let decide = |f: Arc<StepChange>| -> Decide {
            Box::new(move |o: &Order| {
                if o.saga_lease_owner != Some(token) || o.saga_step != Some(step) {
                    return Err(Refusal::Stale);
                }
                let mut m = Mutation::new(o.clone());
                m.order.saga_lease_until = Some(at + lease);
                f(o, &mut m, at)?;
                if m.order.saga_step.is_none() {
                    m.order.saga_lease_owner = None;
                    m.order.saga_lease_until = None;
                }
                Ok(m)
            })
        };
        if let Some(order) = self.store.update_known(known, at, decide(f.clone())).await? {
            return Ok(Step::Continue(Box::new(order)));
        }
        match self.store.update(known.id, at, decide(f)).await? {
            Ok(order) => Ok(Step::Continue(Box::new(order))),
            Err(Refusal::Stale) => Ok(Step::Stale),
            Err(other) => Err(other.into()),
        }
    }

    async fn step_capture(&self, order: &Order, token: Uuid) -> Result<Step> {
        let id = order.id;
        if order.status != OrderStatus::AwaitingPayment {
            return self
                .advance(order, token, SagaStep::Capture, |_, m, _| {
                    m.order.saga_step = Some(SagaStep::Commit).filter(|_| m.order.status == OrderStatus::Paid);
                    Ok(())
                })
                .await;
        }
        let deadline_passed = order.reservation_expires_at.is_some_and(|t| now() >= t);
        if deadline_passed {
            // Give up: the stock is gone. Refund anything that was captured meanwhile.
            metrics::counter!("orders_cancelled_total").increment(1);
            return self
                .advance(order, token, SagaStep::Capture, |o, m, at| {
                    apply(
                        m,
                        OrderEvent::ReservationExpired,
                        at,
                        Actor::System,
                        "payment not confirmed before the reservation expired",
                    )?;
                    m.order.cancel_reason = Some("payment not confirmed before the reservation expired".into());
                    m.order.saga_step = Some(if o.payment_attempted {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    Ok(())
                })
                .await;
        }
        if !order.payment_attempted {
            // From here on a payment may exist: persisted before calling out. (Checkout writes
            // orders with this already set; orders written by earlier versions come here.)
            if let Step::Stale = self
                .advance(order, token, SagaStep::Capture, |_, m, _| {
                    m.order.payment_attempted = true;
                    Ok(())
                })
                .await?
            {
                return Ok(Step::Stale);
            }
        }
        let charged = self
            .payments
            .charge(&self.capture_request(order), &format!("order-{id}-payment"))
            .await;
        let charged = match charged {
            Ok(c) => c,
            Err(e) => return Ok(Step::Wait(e.to_string())),
        };
        match charged {
            Charged::Payment(p) if is_captured(p.status) => {
                metrics::counter!("orders_paid_total").increment(1);
                self.advance(order, token, SagaStep::Capture, move |_, m, at| {
                    apply(m, OrderEvent::PaymentCaptured, at, Actor::System, "payment captured")?;
                    record_payment(&mut m.order, &p);
                    m.order.paid_at = Some(at);
                    // The invoice number and `ordering.order.paid` come first in the commit step.
                    m.order.saga_step = Some(SagaStep::Commit);
                    Ok(())
                })
                .await
            }
            Charged::Payment(p) if p.status == PaymentStatus::Declined => {
                let reason = p.decline_code.map_or("card_declined", |c| c.as_str()).to_owned();
                metrics::counter!("orders_failed_total", "reason" => reason.clone()).increment(1);
                self.fail_payment(order, token, Some(*p), reason).await
            }
            Charged::Refused { field, message } => {
                metrics::counter!("orders_failed_total", "reason" => "refused").increment(1);
                self.fail_payment(order, token, None, format!("payment refused: {field} {message}"))
                    .await
            }
            Charged::Payment(p) => Ok(Step::Wait(format!("payment is {}", p.status.as_str()))),
            Charged::AlreadyPaid(why) => Ok(Step::Wait(format!("payments says already paid: {why}"))),
        }
    }

    fn capture_request(&self, order: &Order) -> CreatePaymentRequest {
        CreatePaymentRequest {
            order_id: order.id.0,
            customer_id: order.user_id,
            amount: platform::money::MoneyView::new(order.totals.total, order.currency.to_string()).into(),
            currency: None,
            payment_method: order.payment_method.clone(),
            capture: true,
        }
    }

    async fn fail_payment(&self, order: &Order, token: Uuid, p: Option<PaymentView>, reason: String) -> Result<Step> {
        self.advance(order, token, SagaStep::Capture, move |_, m, at| {
            apply(m, OrderEvent::PaymentFailed, at, Actor::System, &reason)?;
            if let Some(p) = &p {
                record_payment(&mut m.order, p);
            }
            m.order.saga_step = Some(SagaStep::Release);
            let reason = reason.clone();
            m.events = Emit::Order(Box::new(move |o| vec![events::payment_failed(o, &reason)]));
            Ok(())
        })
        .await
    }

    async fn step_commit(&self, order: &Order, token: Uuid) -> Result<Step> {
        let invoiced;
        let order = if order.paid_at.is_some() && order.invoice_number.is_none() {
            invoiced = self.invoiced(order).await?;
            &invoiced
        } else {
            order
        };
        let Some(reservation) = order.reservation_id else {
            return Err(OrderError::Internal(anyhow::anyhow!(
                "order {} has no reservation",
                order.id
            )));
        };
        match self.stock.commit(reservation).await {
            Err(e) => Ok(Step::Wait(e.to_string())),
            Ok(Finished::Done) => {
                self.advance(order, token, SagaStep::Commit, |_, m, at| {
                    apply(
                        m,
                        OrderEvent::ReservationCommitted,
                        at,
                        Actor::System,
                        "stock committed",
                    )?;
                    m.order.reservation_committed = true;
                    m.order.saga_step = None;
                    m.events = Emit::WithLines(Box::new(|o, lines| vec![events::confirmed(o, lines)]));
                    Ok(())
                })
                .await
            }
            Ok(Finished::Conflict | Finished::Missing) => {
                metrics::counter!("orders_cancelled_total").increment(1);
                self.advance(order, token, SagaStep::Commit, |_, m, at| {
                    let reason = "the stock reservation expired before it could be committed";
                    apply(m, OrderEvent::Cancel, at, Actor::System, reason)?;
                    m.order.cancel_reason = Some(reason.into());
                    m.order.saga_step = Some(SagaStep::Refund);
                    Ok(())
                })
                .await
            }
        }
    }

    /// The paid `order` with its invoice number, numbered in the invoicer's next batch.
    async fn invoiced(&self, order: &Order) -> Result<Order> {
        let numbered = self
            .invoicer
            .invoice(order.id)
            .await
            .map_err(|why| OrderError::Internal(anyhow::anyhow!("cannot number the invoice: {why}")))?;
        match numbered {
            Some(numbered) => Ok(numbered),
            // Numbered meanwhile (this copy was stale): go on from the stored order.
            None => Ok(self.store.order(order.id).await?.ok_or(StoreError::NotFound)?.order),
        }
    }

    async fn step_refund(&self, order: &Order, token: Uuid) -> Result<Step> {
        let id = order.id;
        let next = if order.reservation_committed {
            SagaStep::Restock
        } else {
            SagaStep::Release
        };
        let Some(payment_id) = order.payment_id.clone() else {
            if !order.payment_attempted {
                return self
                    .advance(order, token, SagaStep::Refund, move |_, m, _| {
                        m.order.saga_step = Some(next);
                        Ok(())
                    })
                    .await;
            }
            // A payment may exist: read it through the same key (never a second charge).
            let charged = match self
                .payments
                .charge(&self.capture_request(order), &format!("order-{id}-payment"))
                .await
            {
                Ok(c) => c,
                Err(e) => return Ok(Step::Wait(e.to_string())),
            };
            return match charged {
                Charged::Payment(p) if is_captured(p.status) => {
                    self.advance(order, token, SagaStep::Refund, move |_, m, _| {
                        record_payment(&mut m.order, &p);
                        Ok(())
                    })
                    .await
                }
                Charged::Payment(p) if matches!(p.status, PaymentStatus::Processing | PaymentStatus::Authorized) => {
                    Ok(Step::Wait(format!("payment is {}", p.status.as_str())))
                }
                Charged::AlreadyPaid(why) => Ok(Step::Wait(why)),
                // Declined, failed or refused: nothing was charged.
                _ => {
                    self.advance(order, token, SagaStep::Refund, move |_, m, _| {
                        m.order.saga_step = Some(next);
                        Ok(())
                    })
                    .await
                }
            };
        };
        let amount = order.totals.total - order.refunded;
        if amount > 0 {
            let reason = order.cancel_reason.clone().unwrap_or_else(|| "order cancelled".into());
            if let Err(e) = self
                .payments
                .refund(&payment_id, amount, &reason, &format!("order-{id}-refund-cancel"))
                .await
            {
                return Ok(Step::Wait(e.to_string()));
            }
        }
        self.advance(order, token, SagaStep::Refund, move |_, m, _| {
            m.order.refunded = m.order.totals.total;
            m.order.saga_step = Some(next);
            Ok(())
        })
        .await
    }

    async fn step_release(&self, order: &Order, token: Uuid) -> Result<Step> {
        if let Some(reservation) = order.reservation_id
            && let Err(e) = self.stock.release(reservation).await
        {
            return Ok(Step::Wait(e.to_string()));
        }
        self.finish_compensation(order, token, SagaStep::Release).await
    }

    async fn step_restock(&self, order: &Order, token: Uuid) -> Result<Step> {
        let detail = self.store.order(order.id).await?.ok_or(StoreError::NotFound)?;
        for line in &detail.lines {
            if let Err(e) = self.stock.restock(order.id, &line.sku, line.quantity).await {
                return Ok(Step::Wait(e.to_string()));
            }
        }
        self.finish_compensation(order, token, SagaStep::Restock).await
    }

    async fn finish_compensation(&self, order: &Order, token: Uuid, step: SagaStep) -> Result<Step> {
        self.advance(order, token, step, |o, m, _| {
            m.order.saga_step = None;
            if o.status == OrderStatus::Cancelled {
                m.events = Emit::Order(Box::new(|o| vec![events::cancelled(o)]));
            }
            Ok(())
        })
        .await
    }

    /// One pass of the recovery loop: resumes every order whose saga lease has passed.
    pub async fn recover(&self) -> Result<usize> {
        let lease = self.config.saga_lease;
        let due = self.store.due_sagas(now(), 100).await?;
        let mut resumed = 0;
        for id in due {
            let token = Uuid::now_v7();
            let at = now();
            let claimed = self
                .store
                .update(
                    id,
                    at,
                    Box::new(move |o| {
                        if o.saga_step.is_none() || o.leased_at(at) || o.saga_lease_until.is_some_and(|u| u > at) {
                            return Err(Refusal::Stale);
                        }
                        let mut next = o.clone();
                        next.saga_lease_owner = Some(token);
                        next.saga_lease_until = Some(at + lease);
                        Ok(Mutation::new(next))
                    }),
                )
                .await?;
            if let Ok(order) = claimed {
                resumed += 1;
                self.drive(order, token).await;
            }
        }
        Ok(resumed)
    }

    /// Refreshes `orders_stuck{status}` and forgets orphaned checkout claims.
    pub async fn housekeeping(&self) -> Result<()> {
        let at = now();
        let stuck_before = at - time::Duration::try_from(self.config.stuck_after).unwrap_or(time::Duration::MINUTE);
        for (status, n) in self.store.stuck(&OrderStatus::IN_FLIGHT, stuck_before).await? {
            metrics::gauge!("orders_stuck", "status" => status).set(n as f64);
        }
        self.store.purge_orphan_claims(at - ORPHAN_CLAIM_AGE).await?;
        Ok(())
    }

    /// `inventory.reservation.expired`: an order still waiting for its payment is cancelled, and
    /// its saga will refund anything captured meanwhile (it never charges again).
    pub async fn reservation_expired(&self, order: OrderId, reservation: Uuid) -> Result<()> {
        let lease = self.config.saga_lease;
        let token = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .update(
                order,
                at,
                Box::new(move |o| {
                    if o.reservation_id != Some(reservation)
                        || o.status != OrderStatus::AwaitingPayment
                        || o.payment_id.is_some()
                    {
                        return Err(Refusal::Stale);
                    }
                    let mut m = Mutation::new(o.clone());
                    apply(
                        &mut m,
                        OrderEvent::ReservationExpired,
                        at,
                        Actor::System,
                        "reservation expired",
                    )?;
                    m.order.cancel_reason = Some("reservation expired".into());
                    m.order.saga_step = Some(if o.payment_attempted {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    m.order.saga_lease_owner = Some(token);
                    m.order.saga_lease_until = Some(at + lease);
                    Ok(m)
                }),
            )
            .await;
        match result {
            Err(StoreError::NotFound) | Ok(Err(_)) => Ok(()),
            Err(e) => Err(e.into()),
            Ok(Ok(cancelled)) => {
                metrics::counter!("orders_cancelled_total").increment(1);
                self.drive(cancelled, token).await;
                Ok(())
            }
        }
    }
}

/// Payments reports a captured payment that was later refunded as `partially_refunded` or
/// `refunded`: the money was taken all the same.
fn is_captured(status: PaymentStatus) -> bool {
    matches!(
        status,
        PaymentStatus::Captured | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
    )
}

fn record_payment(order: &mut Order, p: &PaymentView) {
    order.payment_id = Some(p.id.to_string());
    order.payment_status = Some(p.status.as_str().to_owned());
    order.payment_brand = Some(p.brand.as_str().to_owned());
    order.payment_last4 = Some(p.last4.clone());
}
