//! Moving a placed order on by hand: cancellation (by its customer or staff), shipping and
//! delivery (by staff).

use uuid::Uuid;

use super::{Caller, OrderError, OrderingService, Result, apply, now};
use crate::domain::{OrderEvent, OrderId, parse_reason, parse_tracking, transition};
use crate::events;
use crate::store::{Emit, Mutation, Refusal, SagaStep};
use crate::views::OrderView;

impl OrderingService {
    pub async fn cancel(&self, caller: &Caller, id: OrderId, reason: Option<String>) -> Result<OrderView> {
        let lease = self.config.saga_lease;
        self.visible(caller, id).await?;
        let reason = match reason {
            None => "cancelled by the customer".to_owned(),
            Some(r) => parse_reason(&r).map_err(|m| OrderError::invalid("reason", m))?,
        };
        let actor = caller.actor();
        let token = Uuid::now_v7();
        let at = now();
        let result = self
            .store
            .update(
                id,
                at,
                Box::new(move |o| {
                    if o.leased_at(at) || matches!(o.saga_step, Some(SagaStep::Commit)) {
                        return Err(Refusal::Conflict(format!(
                            "the order is {} and being processed; retry in a few seconds",
                            o.status
                        )));
                    }
                    let mut m = Mutation::new(o.clone());
                    apply(&mut m, OrderEvent::Cancel, at, actor, &reason)?;
                    m.order.cancel_reason = Some(reason.clone());
                    m.order.saga_step = Some(if o.payment_attempted || o.payment_id.is_some() {
                        SagaStep::Refund
                    } else {
                        SagaStep::Release
                    });
                    m.order.saga_lease_owner = Some(token);
                    m.order.saga_lease_until = Some(at + lease);
                    Ok(m)
                }),
            )
            .await?;
        let cancelled = result?;
        metrics::counter!("orders_cancelled_total").increment(1);
        self.drive(cancelled, token).await;
        self.order(caller, id).await
    }

    pub async fn ship(&self, caller: &Caller, id: OrderId, carrier: &str, tracking: &str) -> Result<OrderView> {
        Self::staff_only(caller)?;
        // A state conflict (shipping a delivered order) is reported as such, before the format.
        let current = self.visible(caller, id).await?.order.status;
        if transition(current, OrderEvent::Ship).is_err() {
            return Err(OrderError::conflict(format!(
                "the order is {current}: it cannot be shipped"
            )));
        }
        let (carrier, tracking) = parse_tracking(carrier, tracking).map_err(OrderError::Validation)?;
        let actor = caller.actor();
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    apply(
                        &mut m,
                        OrderEvent::Ship,
                        now(),
                        actor,
                        &format!("shipped with {carrier} {tracking}"),
                    )?;
                    m.order.carrier = Some(carrier);
                    m.order.tracking_number = Some(tracking);
                    m.events = Emit::Order(Box::new(|o| vec![events::shipped(o)]));
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.order(caller, id).await
    }

    pub async fn deliver(&self, caller: &Caller, id: OrderId) -> Result<OrderView> {
        Self::staff_only(caller)?;
        let actor = caller.actor();
        let result = self
            .store
            .update(
                id,
                now(),
                Box::new(move |o| {
                    let mut m = Mutation::new(o.clone());
                    apply(&mut m, OrderEvent::Deliver, now(), actor, "delivered")?;
                    m.events = Emit::WithLines(Box::new(|o, lines| vec![events::delivered(o, lines)]));
                    Ok(m)
                }),
            )
            .await?;
        result?;
        self.outbox.notify();
        self.order(caller, id).await
    }
}
