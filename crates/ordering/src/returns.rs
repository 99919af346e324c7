//! Returns (RMA) as plain types and rules, free of I/O: what may be returned, the return's state
//! machine and the refund a return is worth. The use cases are in `return_service`, the design in
//! docs/adr/0010-returns.md.

use platform::FieldError;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{OrderId, OrderStatus, Overflow, Sku, TimelineEntry, Totals, basis_points};
use crate::store::OrderLine;

/// Where a return stands: the published enum; its rule is [`ReturnStatusRules`].
pub use contracts::api::ordering::ReturnStatus;

/// Ordering's rule about a return's status (the enum itself is published in the contracts).
pub trait ReturnStatusRules: Copy {
    /// Whether the return's units still count against what may be returned (a rejected
    /// return gives them back).
    fn holds_units(self) -> bool;
}

impl ReturnStatusRules for ReturnStatus {
    fn holds_units(self) -> bool {
        self != Self::Rejected
    }
}

/// What staff (or the refund step) do to a return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnAction {
    Approve,
    Reject,
    Receive,
    Refund,
}

impl ReturnAction {
    fn verb(self) -> &'static str {
        match self {
            Self::Approve => "approved",
            Self::Reject => "rejected",
            Self::Receive => "received",
            Self::Refund => "refunded",
        }
    }
}

/// The return state machine; anything not listed is a 409 naming the current status.
pub fn return_transition(from: ReturnStatus, action: ReturnAction) -> Result<ReturnStatus, String> {
    use ReturnAction as A;
    use ReturnStatus as S;
    match (from, action) {
        (S::Requested, A::Approve) => Ok(S::Approved),
        (S::Requested, A::Reject) => Ok(S::Rejected),
        (S::Approved, A::Receive) => Ok(S::Received),
        (S::Received, A::Refund) => Ok(S::Refunded),
        _ => Err(format!("the return is {from}: it cannot be {}", action.verb())),
    }
}

/// The crash-safe steps after receipt, persisted before each acts (like the order saga's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnStep {
    /// Put the lines marked `restock` back on hand (idempotent per return line).
    Restock,
    /// Refund the return's amount through payments (idempotent per return).
    Refund,
}

impl ReturnStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restock => "restock",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "restock" => Ok(Self::Restock),
            "refund" => Ok(Self::Refund),
            other => Err(format!("unknown return step {other:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnLine {
    /// The order line (`order_lines.line`).
    pub line: i64,
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    /// Chosen on receipt: whether the units go back to stock.
    pub restock: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub id: Uuid,
    pub order_id: OrderId,
    /// The order's number and currency (read with the return, never written through it).
    pub order_number: String,
    pub currency: String,
    pub user_id: Uuid,
    pub status: ReturnStatus,
    pub reason: String,
    /// The staff's note on approval, rejection or receipt.
    pub note: Option<String>,
    /// Fixed on receipt.
    pub refund_amount: Option<i64>,
    pub refund_id: Option<String>,
    pub step: Option<ReturnStep>,
    pub lease_owner: Option<Uuid>,
    pub lease_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub lines: Vec<ReturnLine>,
}

impl Return {
    /// Whether a runner holds the return's steps right now.
    pub fn leased_at(&self, now: OffsetDateTime) -> bool {
        self.lease_owner.is_some() && self.lease_until.is_some_and(|until| until > now)
    }
}

/// When the order was delivered: its last `shipped → delivered` entry.
pub fn delivered_at(timeline: &[TimelineEntry]) -> Option<OffsetDateTime> {
    timeline
        .iter()
        .rev()
        .find(|e| e.to == OrderStatus::Delivered && e.from == Some(OrderStatus::Shipped))
        .map(|e| e.at)
}

/// Why a return request is refused: a state conflict (409) or a field (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRefused {
    Conflict { detail: String, errors: Vec<FieldError> },
    Invalid(Vec<FieldError>),
}

/// One requested line as the client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub sku: String,
    pub quantity: i64,
}

/// Checks a return request against the order: it must be delivered (and not fully refunded),
/// within `window_days` of delivery; every line must be on the order, at most once, for 1 to
/// (delivered − already returned) units. Returns the lines of the new return.
pub fn check_request(
    status: OrderStatus,
    delivered: Option<OffsetDateTime>,
    now: OffsetDateTime,
    window_days: u32,
    order_lines: &[OrderLine],
    existing: &[Return],
    wanted: &[Wanted],
) -> Result<Vec<ReturnLine>, RequestRefused> {
    let Some(delivered) =
        delivered.filter(|_| matches!(status, OrderStatus::Delivered | OrderStatus::PartiallyRefunded))
    else {
        return Err(RequestRefused::Conflict {
            detail: format!("the order is {status}: only delivered orders can be returned"),
            errors: Vec::new(),
        });
    };
    let closes = delivered + time::Duration::days(i64::from(window_days));
    if now >= closes {
        return Err(RequestRefused::Conflict {
            detail: format!("the return window of {window_days} days after delivery has closed"),
            errors: vec![FieldError::new(
                "order",
                format!("was delivered more than {window_days} days ago"),
            )],
        });
    }
    let mut errors = Vec::new();
    if wanted.is_empty() {
        errors.push(FieldError::new("lines", "must name at least one line"));
    }
    let mut lines: Vec<ReturnLine> = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let Some(line) = Sku::parse(&w.sku)
            .ok()
            .and_then(|sku| order_lines.iter().find(|l| l.sku == sku))
        else {
            errors.push(FieldError::new(
                format!("lines[{i}].sku"),
                "is not a line of this order",
            ));
            continue;
        };
        if lines.iter().any(|l| l.line == line.line) {
            errors.push(FieldError::new(format!("lines[{i}].sku"), "is listed twice"));
            continue;
        }
        let returned: i64 = existing
            .iter()
            .filter(|r| r.status.holds_units())
            .flat_map(|r| r.lines.iter())
            .filter(|l| l.line == line.line)
            .map(|l| l.quantity)
            .sum();
        let left = line.quantity - returned;
        if w.quantity < 1 || w.quantity > left {
            let message = if left <= 0 {
                "every unit of this line is already being returned".to_owned()
            } else {
                format!(
                    "must be between 1 and {left} (delivered {} minus already returned)",
                    line.quantity
                )
            };
            errors.push(FieldError::new(format!("lines[{i}].quantity"), message));
            continue;
        }
        lines.push(ReturnLine {
            line: line.line,
            sku: line.sku.clone(),
            name: line.name.clone(),
            quantity: w.quantity,
            unit_price: line.unit_price,
            restock: None,
        });
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(RequestRefused::Invalid(errors))
    }
}

/// What returning `lines` is worth: their goods value, less their share of the order's discount,
/// plus the order's tax rate on the rest (half up). Shipping is not refunded by a return; staff
/// can add it (or any goodwill) with an admin refund.
pub fn refund_for(totals: &Totals, lines: &[ReturnLine]) -> Result<i64, Overflow> {
    let mut goods: i64 = 0;
    for l in lines {
        goods = goods
            .checked_add(l.unit_price.checked_mul(l.quantity).ok_or(Overflow)?)
            .ok_or(Overflow)?;
    }
    let discount = if totals.subtotal > 0 && totals.discount > 0 {
        let share = (i128::from(totals.discount) * i128::from(goods) * 2 + i128::from(totals.subtotal))
            / (2 * i128::from(totals.subtotal));
        i64::try_from(share).map_err(|_| Overflow)?.min(goods)
    } else {
        0
    };
    let taxable = goods - discount;
    let tax = basis_points(taxable, totals.tax_rate_bp)?;
    taxable.checked_add(tax).ok_or(Overflow)
}

/// A staff note: optional, trimmed, at most 500 characters.
pub fn parse_note(raw: Option<&str>) -> Result<Option<String>, String> {
    match raw.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) => crate::domain::parse_reason(n).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReturnAction as A;
    use ReturnStatus as S;

    fn at(day: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::days(day)
    }

    fn order_line(line: i64, sku: &str, quantity: i64, unit_price: i64) -> OrderLine {
        OrderLine {
            line,
            sku: Sku::parse(sku).expect("sku"),
            product_id: Uuid::nil(),
            name: sku.to_lowercase(),
            quantity,
            unit_price,
            line_total: unit_price * quantity,
        }
    }

    fn wanted(sku: &str, quantity: i64) -> Wanted {
        Wanted {
            sku: sku.into(),
            quantity,
        }
    }

    fn existing(status: ReturnStatus, line: i64, quantity: i64) -> Return {
        Return {
            id: Uuid::now_v7(),
            order_id: OrderId(Uuid::nil()),
            order_number: "EMP-000001".into(),
            currency: "EUR".into(),
            user_id: Uuid::nil(),
            status,
            reason: "r".into(),
            note: None,
            refund_amount: None,
            refund_id: None,
            step: None,
            lease_owner: None,
            lease_until: None,
            created_at: at(0),
            updated_at: at(0),
            lines: vec![ReturnLine {
                line,
                sku: Sku::parse("MUG-1").expect("sku"),
                name: "mug".into(),
                quantity,
                unit_price: 1000,
                restock: None,
            }],
        }
    }

    #[test]
    fn the_return_state_machine() {
        assert_eq!(return_transition(S::Requested, A::Approve), Ok(S::Approved));
        assert_eq!(return_transition(S::Requested, A::Reject), Ok(S::Rejected));
        assert_eq!(return_transition(S::Approved, A::Receive), Ok(S::Received));
        assert_eq!(return_transition(S::Received, A::Refund), Ok(S::Refunded));
        // Approving twice, receiving before approval, anything after the end: refused.
        let err = return_transition(S::Approved, A::Approve).expect_err("twice");
        assert!(err.contains("approved"), "{err}");
        for (from, action) in [
            (S::Requested, A::Receive),
            (S::Requested, A::Refund),
            (S::Approved, A::Reject),
            (S::Rejected, A::Approve),
            (S::Received, A::Receive),
            (S::Refunded, A::Refund),
            (S::Refunded, A::Approve),
        ] {
            assert!(return_transition(from, action).is_err(), "{from} {action:?}");
        }
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<ReturnStatus>(), Ok(s));
        }
        assert!("lost".parse::<ReturnStatus>().is_err());
    }

    #[test]
    fn only_delivered_orders_within_the_window() {
        let lines = [order_line(0, "MUG-1", 2, 1000)];
        let w = [wanted("mug-1", 1)];
        let refused = check_request(OrderStatus::Shipped, None, at(1), 30, &lines, &[], &w).expect_err("shipped");
        assert!(matches!(refused, RequestRefused::Conflict { .. }));
        assert!(check_request(OrderStatus::Delivered, Some(at(0)), at(29), 30, &lines, &[], &w).is_ok());
        match check_request(OrderStatus::Delivered, Some(at(0)), at(30), 30, &lines, &[], &w) {
            Err(RequestRefused::Conflict { errors, .. }) => assert_eq!(errors[0].field, "order"),
            other => panic!("expected the window to be closed: {other:?}"),
        }
        // A partly refunded delivered order may still be returned; a refunded one not.
        assert!(check_request(OrderStatus::PartiallyRefunded, Some(at(0)), at(1), 30, &lines, &[], &w).is_ok());
        assert!(check_request(OrderStatus::Refunded, Some(at(0)), at(1), 30, &lines, &[], &w).is_err());
    }

    #[test]
    fn quantities_are_bounded_by_what_is_left() {
        let lines = [order_line(0, "MUG-1", 3, 1000), order_line(1, "TEE-1", 1, 2000)];
        let earlier = [existing(S::Approved, 0, 2), existing(S::Rejected, 0, 3)];
        let ok = check_request(
            OrderStatus::Delivered,
            Some(at(0)),
            at(1),
            30,
            &lines,
            &earlier,
            &[wanted("MUG-1", 1), wanted("TEE-1", 1)],
        )
        .expect("one mug is left (the rejected return gave its units back)");
        assert_eq!(ok.len(), 2);
        assert_eq!((ok[0].line, ok[0].quantity, ok[0].unit_price), (0, 1, 1000));
        let refused = check_request(
            OrderStatus::Delivered,
            Some(at(0)),
            at(1),
            30,
            &lines,
            &earlier,
            &[
                wanted("MUG-1", 2),
                wanted("NOPE-1", 1),
                wanted("TEE-1", 0),
                wanted("TEE-1", 1),
            ],
        )
        .expect_err("refused");
        let RequestRefused::Invalid(errors) = refused else {
            panic!("expected field errors")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["lines[0].quantity", "lines[1].sku", "lines[2].quantity"]);
        let none = check_request(OrderStatus::Delivered, Some(at(0)), at(1), 30, &lines, &[], &[]).expect_err("empty");
        assert!(matches!(none, RequestRefused::Invalid(e) if e[0].field == "lines"));
    }

    #[test]
    fn refunds_carry_the_discount_share_and_tax() {
        let totals = Totals {
            subtotal: 6000,
            discount: 600,
            shipping: 0,
            tax: 1080,
            tax_rate_bp: 2000,
            total: 6480,
        };
        let line = |quantity| ReturnLine {
            line: 0,
            sku: Sku::parse("MUG-1").expect("sku"),
            name: "mug".into(),
            quantity,
            unit_price: 2000,
            restock: None,
        };
        // One of three: 20.00 − 2.00 discount share = 18.00, + 20 % = 21.60.
        assert_eq!(refund_for(&totals, &[line(1)]), Ok(2160));
        // Everything: the total without shipping.
        assert_eq!(refund_for(&totals, &[line(3)]), Ok(6480));
        let plain = Totals {
            subtotal: 1299,
            discount: 0,
            shipping: 499,
            tax: 0,
            tax_rate_bp: 1900,
            total: 1798,
        };
        let mug = ReturnLine {
            unit_price: 1299,
            ..line(1)
        };
        // 12.99 + 19 % (2.4681 → 2.47).
        assert_eq!(refund_for(&plain, &[mug]), Ok(1546));
    }

    #[test]
    fn delivery_time_comes_from_the_timeline() {
        let entry = |to, from, day| TimelineEntry {
            at: at(day),
            from,
            to,
            actor: "system".into(),
            reason: String::new(),
        };
        let timeline = [
            entry(OrderStatus::Shipped, Some(OrderStatus::Confirmed), 1),
            entry(OrderStatus::Delivered, Some(OrderStatus::Shipped), 3),
            // A note keeps from == to: not a delivery.
            entry(OrderStatus::Delivered, Some(OrderStatus::Delivered), 5),
        ];
        assert_eq!(delivered_at(&timeline), Some(at(3)));
        assert_eq!(delivered_at(&timeline[..1]), None);
    }

    #[test]
    fn notes_are_optional_but_bounded() {
        assert_eq!(parse_note(None), Ok(None));
        assert_eq!(parse_note(Some("  ")), Ok(None));
        assert_eq!(parse_note(Some(" ok ")), Ok(Some("ok".into())));
        assert!(parse_note(Some(&"x".repeat(501))).is_err());
    }
}
