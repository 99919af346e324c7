//! The returns (RMA) use cases: a customer requests, staff approve or reject, staff receive (per
//! line: back to stock or not), then the restock and refund steps run — persisted before each
//! acts, under a lease, and resumed by the recovery loop after a crash (as the order saga is).
//! Rules are in `returns`; the design in docs/adr/0010-returns.md.

use contracts::events::ordering::{ReturnApproved, ReturnReceived, ReturnRefunded, ReturnRejected, ReturnRequested};
use platform::FieldError;
use platform::money::MoneyView;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Actor, OrderId, parse_reason, refund_outcome};
use crate::events;
use crate::peers::PeerError;
use crate::returns::{
    RequestRefused, Return, ReturnAction, ReturnStatus, ReturnStep, Wanted, check_request, delivered_at, parse_note,
    refund_for, return_transition,
};
use crate::service::{Caller, OrderError, OrderingService, apply, entry, now};
use crate::store::{Mutation, Order, Refusal, ReturnFilter, ReturnMutation, StoreError};

pub use contracts::api::ordering::{
    NewReturn, ReceiveLine, ReceiveReturn, ReturnDecision, ReturnLineRequest, ReturnLineView, ReturnView,
};

type Result<T, E = OrderError> = std::result::Result<T, E>;

impl From<&Return> for ReturnView {
    fn from(r: &Return) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id.0,
            order_number: r.order_number.clone(),
            user_id: r.user_id,
            status: r.status,
            reason: r.reason.clone(),
            note: r.note.clone(),
            lines: r
                .lines
                .iter()
                .map(|l| ReturnLineView {
                    sku: l.sku.to_string(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price: MoneyView::new(l.unit_price, r.currency.clone()),
                    restock: l.restock,
                })
                .collect(),
            refund: r.refund_amount.map(|a| MoneyView::new(a, r.currency.clone())),
            processing: r.step.is_some(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// How a step after receipt ended.
enum Next {
    Continue,
    Wait(String),
    Stale,
}

/// A short, human reference for a return in timelines and mails.
pub fn return_ref(id: Uuid) -> String {
    let s = id.simple().to_string();
    format!("RMA-{}", &s[s.len() - 8..].to_ascii_uppercase())
}

fn note_entry(o: &Order, actor: Actor, text: String) -> crate::domain::TimelineEntry {
    entry(now(), Some(o.status), o.status, actor, &text)
}

fn not_found() -> OrderError {
    OrderError::NotFound("no such return".into())
}

impl OrderingService {
    /// A customer asks to return some units of a delivered order (its owner only).
    pub async fn request_return(&self, caller: &Caller, id: OrderId, req: &NewReturn) -> Result<ReturnView> {
        let detail = self.visible(caller, id).await?;
        if detail.order.user_id != caller.id {
            return Err(OrderError::Forbidden(
                "only the customer who ordered can request a return".into(),
            ));
        }
        let reason = parse_reason(&req.reason).map_err(|m| OrderError::invalid("reason", m))?;
        let wanted: Vec<Wanted> = req
            .lines
            .iter()
            .map(|l| Wanted {
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let window = self.config.return_window_days;
        let actor = caller.actor();
        let user = caller.id;
        let return_id = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .change_returns(
                id,
                at,
                Box::new(move |d, existing| {
                    let o = &d.order;
                    let lines = check_request(
                        o.status,
                        delivered_at(&d.timeline),
                        at,
                        window,
                        &d.lines,
                        existing,
                        &wanted,
                    )
                    .map_err(|r| match r {
                        RequestRefused::Conflict { detail, errors } => Refusal::Fields {
                            conflict: Some(detail),
                            errors,
                        },
                        RequestRefused::Invalid(errors) => Refusal::Fields { conflict: None, errors },
                    })?;
                    let r = Return {
                        id: return_id,
                        order_id: o.id,
                        order_number: o.number.to_string(),
                        currency: o.currency.to_string(),
                        user_id: user,
                        status: ReturnStatus::Requested,
                        reason: reason.clone(),
                        note: None,
                        refund_amount: None,
                        refund_id: None,
                        step: None,
                        lease_owner: None,
                        lease_until: None,
                        created_at: at,
                        updated_at: at,
                        lines,
                    };
                    let items: Vec<String> = r.lines.iter().map(|l| format!("{} × {}", l.quantity, l.sku)).collect();
                    Ok(ReturnMutation {
                        order: None,
                        timeline: vec![note_entry(
                            o,
                            actor,
                            format!("return {} requested ({}): {reason}", return_ref(r.id), items.join(", ")),
                        )],
                        events: vec![events::return_event::<ReturnRequested>(o, &r)],
                        save: vec![r],
                    })
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.return_view(return_id).await
    }

    async fn return_view(&self, id: Uuid) -> Result<ReturnView> {
        let r = self.store.return_by_id(id).await?.ok_or_else(not_found)?;
        Ok(ReturnView::from(&r))
    }

    /// The order's returns (its owner or staff).
    pub async fn order_returns(&self, caller: &Caller, id: OrderId) -> Result<Vec<ReturnView>> {
        self.visible(caller, id).await?;
        Ok(self.store.returns_of(id).await?.iter().map(ReturnView::from).collect())
    }

    /// One return (staff).
    pub async fn return_detail(&self, caller: &Caller, id: Uuid) -> Result<ReturnView> {
        Self::staff_only(caller)?;
        self.return_view(id).await
    }

    /// The staff queue: returns newest first, optionally of one status.
    pub async fn list_returns(&self, caller: &Caller, filter: &ReturnFilter) -> Result<Vec<Return>> {
        Self::staff_only(caller)?;
        Ok(self.store.list_returns(filter).await?)
    }

    /// Approves or rejects a requested return (staff). Deciding twice is a 409.
    pub async fn decide_return(
        &self,
        caller: &Caller,
        id: Uuid,
        approve: bool,
        decision: &ReturnDecision,
    ) -> Result<ReturnView> {
        Self::staff_only(caller)?;
        let note = parse_note(decision.note.as_deref()).map_err(|m| OrderError::invalid("note", m))?;
        if !approve && note.is_none() {
            return Err(OrderError::invalid(
                "note",
                "is required to reject a return (the customer reads it)",
            ));
        }
        let current = self.store.return_by_id(id).await?.ok_or_else(not_found)?;
        let (action, event, verb): (_, events::ReturnEvent, _) = if approve {
            (
                ReturnAction::Approve,
                events::return_event::<ReturnApproved>,
                "approved",
            )
        } else {
            (ReturnAction::Reject, events::return_event::<ReturnRejected>, "rejected")
        };
        let actor = caller.actor();
        let at = now();
        let result = self
            .store
            .change_returns(
                current.order_id,
                at,
                Box::new(move |d, returns| {
                    let mut r = returns.iter().find(|r| r.id == id).cloned().ok_or(Refusal::Stale)?;
                    r.status = return_transition(r.status, action).map_err(Refusal::Conflict)?;
                    r.note = note.clone();
                    r.updated_at = at;
                    let text = match &note {
                        Some(n) => format!("return {} {verb}: {n}", return_ref(id)),
                        None => format!("return {} {verb}", return_ref(id)),
                    };
                    Ok(ReturnMutation {
                        order: None,
                        timeline: vec![note_entry(&d.order, actor, text)],
                        events: vec![event(&d.order, &r)],
                        save: vec![r],
                    })
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.return_view(id).await
    }

    /// Staff received the parcel: fixes per line whether it goes back to stock and the refund, then
    /// runs the restock and refund steps (resumed by the recovery loop if they cannot finish now).
    pub async fn receive_return(&self, caller: &Caller, id: Uuid, req: &ReceiveReturn) -> Result<ReturnView> {
        let lease = self.config.saga_lease;
        Self::staff_only(caller)?;
        let note = parse_note(req.note.as_deref()).map_err(|m| OrderError::invalid("note", m))?;
        let current = self.store.return_by_id(id).await?.ok_or_else(not_found)?;
        let mut errors = Vec::new();
        for (i, l) in req.lines.iter().enumerate() {
            if !current
                .lines
                .iter()
                .any(|rl| rl.sku.as_str().eq_ignore_ascii_case(l.sku.trim()))
            {
                errors.push(FieldError::new(
                    format!("lines[{i}].sku"),
                    "is not a line of this return",
                ));
            }
        }
        if req.refund_amount.is_some_and(|a| a < 0) {
            errors.push(FieldError::new("refund_amount", "must not be negative"));
        }
        if !errors.is_empty() {
            return Err(OrderError::Validation(errors));
        }
        let choices: Vec<(String, bool)> = req
            .lines
            .iter()
            .map(|l| (l.sku.trim().to_ascii_uppercase(), l.restock))
            .collect();
        let requested_amount = req.refund_amount;
        let actor = caller.actor();
        let token = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .change_returns(
                current.order_id,
                at,
                Box::new(move |d, returns| {
                    let o = &d.order;
                    let mut r = returns.iter().find(|r| r.id == id).cloned().ok_or(Refusal::Stale)?;
                    r.status = return_transition(r.status, ReturnAction::Receive).map_err(Refusal::Conflict)?;
                    for line in &mut r.lines {
                        let restock = choices
                            .iter()
                            .find(|(sku, _)| sku == line.sku.as_str())
                            .is_none_or(|(_, restock)| *restock);
                        line.restock = Some(restock);
                    }
                    let remaining = o.totals.total - o.refunded;
                    let worth = refund_for(&o.totals, &r.lines).map_err(|_| Refusal::Invalid {
                        field: "refund_amount".into(),
                        message: "the amounts are too large".into(),
                    })?;
                    let amount = match requested_amount {
                        Some(a) if a > remaining => {
                            return Err(Refusal::Invalid {
                                field: "refund_amount".into(),
                                message: format!(
                                    "must be at most {remaining} (the order total minus what was already refunded)"
                                ),
                            });
                        }
                        Some(a) => a,
                        None => worth.min(remaining),
                    };
                    r.refund_amount = Some(amount);
                    r.note = note.clone().or(r.note);
                    r.step = Some(if r.lines.iter().any(|l| l.restock == Some(true)) {
                        ReturnStep::Restock
                    } else {
                        ReturnStep::Refund
                    });
                    r.lease_owner = Some(token);
                    r.lease_until = Some(at + lease);
                    r.updated_at = at;
                    let back: Vec<String> = r
                        .lines
                        .iter()
                        .map(|l| {
                            let to = if l.restock == Some(true) {
                                "to stock"
                            } else {
                                "not restocked"
                            };
                            format!("{} × {} {to}", l.quantity, l.sku)
                        })
                        .collect();
                    Ok(ReturnMutation {
                        order: None,
                        timeline: vec![note_entry(
                            o,
                            actor,
                            format!(
                                "return {} received ({}); refund {amount} {}",
                                return_ref(id),
                                back.join(", "),
                                o.currency
                            ),
                        )],
                        events: vec![events::return_event::<ReturnReceived>(o, &r)],
                        save: vec![r],
                    })
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.drive_return(current.order_id, id, token).await;
        self.return_view(id).await
    }

    /// Runs a received return's steps while `token` holds its lease.
    pub async fn drive_return(&self, order: OrderId, id: Uuid, token: Uuid) {
        for _ in 0..4 {
            let r = match self.store.return_by_id(id).await {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, %id, "return: cannot read it");
                    return;
                }
            };
            let Some(step) = r.step else { return };
            if r.lease_owner != Some(token) {
                return;
            }
            let outcome = match step {
                ReturnStep::Restock => self.return_restock(order, &r, token).await,
                ReturnStep::Refund => self.return_refund(order, &r, token).await,
            };
            self.outbox.notify();
            match outcome {
                Ok(Next::Continue) => continue,
                Ok(Next::Stale) => return,
                Ok(Next::Wait(why)) => {
                    tracing::info!(%id, step = step.as_str(), why, "return step will be retried");
                    self.pause_return(order, id, token).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(%id, step = step.as_str(), error = %e, "return step failed; will retry");
                    self.pause_return(order, id, token).await;
                    return;
                }
            }
        }
    }

    /// Persists `f`'s change to the return (and order) if `token` still holds it at `step`.
    async fn advance_return(
        &self,
        order: OrderId,
        id: Uuid,
        token: Uuid,
        step: ReturnStep,
        f: impl FnOnce(&Order, &mut Return, &mut ReturnMutation, OffsetDateTime) -> Result<(), Refusal> + Send + 'static,
    ) -> Result<Next> {
        let lease = self.config.saga_lease;
        let at = now();
        let result = self
            .store
            .change_returns(
                order,
                at,
                Box::new(move |d, returns| {
                    let mut r = returns.iter().find(|r| r.id == id).cloned().ok_or(Refusal::Stale)?;
                    if r.lease_owner != Some(token) || r.step != Some(step) {
                        return Err(Refusal::Stale);
                    }
                    let mut m = ReturnMutation {
                        order: None,
                        timeline: Vec::new(),
                        save: Vec::new(),
                        events: Vec::new(),
                    };
                    r.lease_until = Some(at + lease);
                    r.updated_at = at;
                    f(&d.order, &mut r, &mut m, at)?;
                    if r.step.is_none() {
                        r.lease_owner = None;
                        r.lease_until = None;
                    }
                    m.save.push(r);
                    Ok(m)
                }),
            )
            .await?;
        match result {
            Ok(_) => Ok(Next::Continue),
            Err(Refusal::Stale) => Ok(Next::Stale),
            Err(other) => Err(other.into()),
        }
    }

    async fn return_restock(&self, order: OrderId, r: &Return, token: Uuid) -> Result<Next> {
        for line in r.lines.iter().filter(|l| l.restock == Some(true)) {
            if let Err(e) = self
                .stock
                .restock_return(r.id, line.line, &line.sku, line.quantity)
                .await
            {
                return Ok(Next::Wait(e.to_string()));
            }
        }
        self.advance_return(order, r.id, token, ReturnStep::Restock, |_, r, _, _| {
            r.step = Some(ReturnStep::Refund);
            Ok(())
        })
        .await
    }

    async fn return_refund(&self, order: OrderId, r: &Return, token: Uuid) -> Result<Next> {
        let detail = self.store.order(order).await?.ok_or(StoreError::NotFound)?;
        let o = &detail.order;
        // Never more than is left: an admin may have refunded part of the order meanwhile.
        let amount = r.refund_amount.unwrap_or(0).min(o.totals.total - o.refunded).max(0);
        let mut refund_id = None;
        if amount > 0 {
            let Some(payment_id) = o.payment_id.clone() else {
                return Err(OrderError::conflict("the order has no captured payment"));
            };
            let reason = format!("return {}", return_ref(r.id));
            match self
                .payments
                .refund(&payment_id, amount, &reason, &format!("order-{order}-return-{}", r.id))
                .await
            {
                Ok(id) => refund_id = Some(id),
                Err(e @ PeerError::Unavailable { .. }) => return Ok(Next::Wait(e.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
        let return_id = r.id;
        self.advance_return(order, r.id, token, ReturnStep::Refund, move |o, r, m, at| {
            r.status = return_transition(r.status, ReturnAction::Refund).map_err(Refusal::Conflict)?;
            r.step = None;
            r.refund_id = refund_id;
            r.refund_amount = Some(amount);
            let reference = return_ref(return_id);
            if amount > 0 {
                let mut om = Mutation::new(o.clone());
                let (event, after) =
                    refund_outcome(o.totals.total, o.refunded, amount).map_err(|message| Refusal::Invalid {
                        field: "refund_amount".into(),
                        message,
                    })?;
                apply(
                    &mut om,
                    event,
                    at,
                    Actor::System,
                    &format!("refunded {amount}: return {reference}"),
                )?;
                om.order.refunded = after;
                om.order.payment_status = Some(payment_status_after(after, o.totals.total).into());
                m.events.push(events::refunded_by_return(&om.order, amount, return_id));
                m.events.push(events::return_event::<ReturnRefunded>(&om.order, r));
                m.timeline = om.timeline;
                m.order = Some(om.order);
            } else {
                m.timeline.push(note_entry(
                    o,
                    Actor::System,
                    format!("return {reference} closed: nothing left to refund"),
                ));
                m.events.push(events::return_event::<ReturnRefunded>(o, r));
            }
            Ok(())
        })
        .await
    }

    async fn pause_return(&self, order: OrderId, id: Uuid, token: Uuid) {
        let retry_at =
            now() + time::Duration::try_from(self.config.recovery_interval).unwrap_or(time::Duration::SECOND);
        let result = self
            .store
            .change_returns(
                order,
                now(),
                Box::new(move |_, returns| {
                    let mut r = returns.iter().find(|r| r.id == id).cloned().ok_or(Refusal::Stale)?;
                    if r.lease_owner != Some(token) {
                        return Err(Refusal::Stale);
                    }
                    r.lease_owner = None;
                    r.lease_until = Some(retry_at);
                    Ok(ReturnMutation {
                        order: None,
                        timeline: Vec::new(),
                        save: vec![r],
                        events: Vec::new(),
                    })
                }),
            )
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, %id, "return: cannot release the lease; it will lapse");
        }
    }

    /// One pass of the recovery loop for returns: resumes every received return whose restock or
    /// refund step was left unfinished (a crash, a peer down) once its lease has passed.
    pub async fn recover_returns(&self) -> Result<usize> {
        let lease = self.config.saga_lease;
        let due = self.store.due_returns(now(), 100).await?;
        let mut resumed = 0;
        for (order, id) in due {
            let token = Uuid::now_v7();
            let at = now();
            let claimed = self
                .store
                .change_returns(
                    order,
                    at,
                    Box::new(move |_, returns| {
                        let mut r = returns.iter().find(|r| r.id == id).cloned().ok_or(Refusal::Stale)?;
                        if r.step.is_none() || r.lease_until.is_some_and(|u| u > at) {
                            return Err(Refusal::Stale);
                        }
                        r.lease_owner = Some(token);
                        r.lease_until = Some(at + lease);
                        Ok(ReturnMutation {
                            order: None,
                            timeline: Vec::new(),
                            save: vec![r],
                            events: Vec::new(),
                        })
                    }),
                )
                .await?;
            if claimed.is_ok() {
                resumed += 1;
                self.drive_return(order, id, token).await;
            }
        }
        Ok(resumed)
    }
}

/// What payments calls a payment after refunds: the order keeps the same word in its summary.
pub fn payment_status_after(refunded: i64, total: i64) -> &'static str {
    if refunded >= total {
        "refunded"
    } else if refunded > 0 {
        "partially_refunded"
    } else {
        "captured"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_short_and_stable() {
        let id = Uuid::parse_str("0192f0c4-e5a8-7c3b-9d1e-2f3a4b5c6d7e").expect("uuid");
        assert_eq!(return_ref(id), "RMA-4B5C6D7E");
    }

    #[test]
    fn payment_words_follow_the_refunded_amount() {
        assert_eq!(payment_status_after(0, 100), "captured");
        assert_eq!(payment_status_after(40, 100), "partially_refunded");
        assert_eq!(payment_status_after(100, 100), "refunded");
    }
}
