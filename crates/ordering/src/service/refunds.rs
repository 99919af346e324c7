//! Refunds outside returns: a customer's request (a note for staff) and an admin's full or
//! partial refund through payments, idempotent per order and key.

use uuid::Uuid;

use super::{Caller, OrderError, OrderingService, Result, apply, entry, now};
use crate::domain::{OrderId, OrderStatus, parse_reason, refund_outcome, transition};
use crate::events;
use crate::peers::PeerError;
use crate::store::{Emit, Mutation, RefundRecord, Refusal};
use crate::views::OrderView;

impl OrderingService {
    pub async fn request_refund(&self, caller: &Caller, id: OrderId, reason: &str) -> Result<OrderView> {
        let detail = self.visible(caller, id).await?;
        let reason = parse_reason(reason).map_err(|m| OrderError::invalid("reason", m))?;
        let status = detail.order.status;
        if !matches!(
            status,
            OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::PartiallyRefunded
        ) {
            return Err(OrderError::conflict(format!(
                "the order is {status}: refunds can be requested for confirmed, shipped or delivered orders"
            )));
        }
        self.store
            .add_note(
                id,
                &entry(
                    now(),
                    Some(status),
                    status,
                    caller.actor(),
                    &format!("refund requested: {reason}"),
                ),
            )
            .await?;
        self.order(caller, id).await
    }

    /// A full or partial refund by an admin, idempotent per order and key.
    pub async fn refund(
        &self,
        caller: &Caller,
        id: OrderId,
        key: &str,
        amount: Option<i64>,
        reason: &str,
    ) -> Result<(OrderView, bool)> {
        if !caller.admin {
            return Err(OrderError::Forbidden("requires role admin".into()));
        }
        let reason = parse_reason(reason).map_err(|m| OrderError::invalid("reason", m))?;
        let detail = self.visible(caller, id).await?;
        let order = &detail.order;
        if let Some(existing) = self.store.refund_record(id, key).await?
            && existing.completed
        {
            if amount.is_some_and(|a| a != existing.amount) || existing.reason != reason {
                return Err(OrderError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request body",
                ));
            }
            return Ok((caller.view(&detail), true));
        }
        if order.status == OrderStatus::Refunded || (order.refunded > 0 && order.refunded >= order.totals.total) {
            return Err(OrderError::conflict("the order is already refunded"));
        }
        let amount = amount.unwrap_or(order.totals.total - order.refunded);
        let (event, _) =
            refund_outcome(order.totals.total, order.refunded, amount).map_err(|m| OrderError::invalid("amount", m))?;
        transition(order.status, event)
            .map_err(|_| OrderError::conflict(format!("the order is {}: it cannot be refunded", order.status)))?;
        if order.saga_step.is_some() {
            return Err(OrderError::conflict(
                "the order is being processed; retry in a few seconds",
            ));
        }
        let Some(payment_id) = order.payment_id.clone() else {
            return Err(OrderError::conflict("the order has no captured payment"));
        };
        let record = RefundRecord {
            id: Uuid::now_v7(),
            order_id: id,
            key: key.to_owned(),
            amount,
            reason: reason.clone(),
            actor: caller.actor().to_string(),
            completed: false,
            refund_id: None,
        };
        let record = match self.store.insert_refund(&record, now()).await? {
            None => record,
            Some(existing) if existing.amount == amount && existing.reason == reason => existing,
            Some(_) => {
                return Err(OrderError::invalid(
                    "Idempotency-Key",
                    "was already used with a different request body",
                ));
            }
        };
        let refund_id = self
            .payments
            .refund(
                &payment_id,
                amount,
                &reason,
                &format!("order-{id}-refund-{}", record.id),
            )
            .await
            .map_err(|e| match e {
                PeerError::Unexpected {
                    status: 422, detail, ..
                } => OrderError::invalid("amount", detail),
                PeerError::Unexpected {
                    status: 409, detail, ..
                } => OrderError::conflict(detail),
                other => other.into(),
            })?;
        let actor = caller.actor();
        let row = record.id;
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    let (event, after) =
                        refund_outcome(o.totals.total, o.refunded, amount).map_err(|message| Refusal::Invalid {
                            field: "amount".into(),
                            message,
                        })?;
                    apply(&mut m, event, now(), actor, &format!("refunded {amount}: {reason}"))?;
                    m.order.refunded = after;
                    m.order.payment_status =
                        Some(crate::return_service::payment_status_after(after, o.totals.total).into());
                    m.complete_refund = Some((row, refund_id));
                    m.events = Emit::Order(Box::new(move |o| vec![events::refunded(o, amount)]));
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        Ok((self.order(caller, id).await?, false))
    }
}
