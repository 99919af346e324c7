//! What the API answers with: the published views (`contracts::api::ordering`), built from the
//! domain here.

pub use contracts::api::ordering::{
    CouponView, LineView, OrderAction, OrderSummary, OrderView, PaymentSummary, QuoteView, ShippingAddress,
    TimelineView, TotalsView, TrackingView,
};
use platform::money::MoneyView;

use crate::domain::{
    self, ActionFacts, Coupon, CouponKind, Currency, OrderStatus, StatusRules, TimelineEntry, Totals, Viewer,
    allowed_actions,
};
use crate::store::{Order, OrderDetail, OrderLine};

pub fn line_view(l: &OrderLine, currency: &Currency) -> LineView {
    LineView {
        sku: l.sku.to_string(),
        product_id: l.product_id,
        name: l.name.clone(),
        quantity: l.quantity,
        unit_price: MoneyView::new(l.unit_price, currency.to_string()),
        line_total: MoneyView::new(l.line_total, currency.to_string()),
    }
}

pub fn totals_of(t: &Totals, currency: &Currency) -> TotalsView {
    let money = |amount| MoneyView::new(amount, currency.to_string());
    TotalsView {
        currency: currency.to_string(),
        subtotal: money(t.subtotal),
        discount: money(t.discount),
        shipping: money(t.shipping),
        tax: money(t.tax),
        tax_rate_bp: t.tax_rate_bp,
        total: money(t.total),
    }
}

pub fn timeline_view(e: &TimelineEntry) -> TimelineView {
    TimelineView {
        at: e.at,
        from: e.from,
        to: e.to,
        actor: e.actor.clone(),
        reason: e.reason.clone(),
    }
}

pub fn address_view(a: &domain::ShippingAddress) -> ShippingAddress {
    ShippingAddress {
        name: a.name.clone(),
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.to_string(),
        phone: a.phone.clone(),
    }
}

/// What `viewer` may do with `o` now.
pub fn actions_on(o: &Order, viewer: Viewer) -> Vec<OrderAction> {
    let facts = ActionFacts {
        status: o.status,
        invoiced: o.invoice_number.is_some(),
        refundable: if o.payment_id.is_some() {
            o.totals.total - o.refunded
        } else {
            0
        },
    };
    allowed_actions(facts, viewer)
}

pub fn totals_view(o: &Order) -> TotalsView {
    totals_of(&o.totals, &o.currency)
}

/// The order as `viewer` sees it (their allowed actions).
pub fn order_view(d: &OrderDetail, viewer: Viewer) -> OrderView {
    let o = &d.order;
    OrderView {
        id: o.id.0,
        number: o.number.to_string(),
        user_id: o.user_id,
        status: o.status,
        lines: d.lines.iter().map(|l| line_view(l, &o.currency)).collect(),
        totals: totals_view(o),
        refunded: MoneyView::new(o.refunded, o.currency.to_string()),
        shipping_method: o.shipping_method.clone(),
        shipping_address: address_view(&o.shipping_address),
        coupon: o.coupon_code.clone(),
        from_cart: o.from_cart,
        payment: PaymentSummary {
            method: o.payment_method.clone(),
            payment_id: o.payment_id.clone(),
            status: o.payment_status.clone(),
            brand: o.payment_brand.clone(),
            last4: o.payment_last4.clone(),
            refunded: MoneyView::new(o.refunded, o.currency.to_string()),
        },
        invoice_number: o.invoice_number.clone(),
        tracking: match (&o.carrier, &o.tracking_number) {
            (Some(carrier), Some(tracking_number)) => Some(TrackingView {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
            }),
            _ => None,
        },
        cancel_reason: o.cancel_reason.clone(),
        pending_step: o.saga_step.map(|s| s.as_str().to_owned()),
        timeline: d.timeline.iter().map(timeline_view).collect(),
        in_progress: OrderStatus::IN_FLIGHT.contains(&o.status),
        allowed_actions: actions_on(o, viewer),
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// One row of an order list as `viewer` sees it (their allowed actions).
pub fn order_summary(o: &Order, viewer: Viewer) -> OrderSummary {
    OrderSummary {
        id: o.id.0,
        number: o.number.to_string(),
        user_id: o.user_id,
        status: o.status,
        currency: o.currency.to_string(),
        total: MoneyView::new(o.totals.total, o.currency.to_string()),
        refunded: MoneyView::new(o.refunded, o.currency.to_string()),
        allowed_actions: actions_on(o, viewer),
        created_at: o.created_at,
        updated_at: o.updated_at,
    }
}

/// `currency`: the shop's (orders') currency, that of `min_subtotal`.
pub fn coupon_view(c: &Coupon, currency: &Currency) -> CouponView {
    let (kind, percent, amount) = match &c.kind {
        CouponKind::Percentage(bp) => ("percentage", Some(bp / 100), None),
        CouponKind::Fixed { amount, currency } => ("fixed", None, Some(MoneyView::new(*amount, currency.to_string()))),
    };
    CouponView {
        code: c.code.clone(),
        kind: kind.into(),
        percent,
        amount,
        valid_from: c.valid_from,
        valid_until: c.valid_until,
        max_uses: c.max_uses,
        uses: c.uses,
        min_subtotal: c.min_subtotal.map(|m| MoneyView::new(m, currency.to_string())),
        active: c.active,
    }
}
