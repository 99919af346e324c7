//! The events notifications consumes, and what each one asks to be mailed (pure: no I/O).
//!
//! Order events carry a `user_id` only; the address comes from the recipients projection kept from
//! identity's events. Data shapes are the payloads the producing contexts publish; optional fields
//! default so a producer adding fields never breaks this consumer.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use contracts::events::Event as _;
use contracts::events::identity::{
    EmailVerificationRequested, ExportReady, OneTimeToken, PasswordResetRequested, RegistrationAttempted,
    UserRegistered, UserUpdated,
};
use contracts::events::inventory::StockLow;
use contracts::events::ordering::{
    OrderCancelled, OrderConfirmed, OrderDelivered, OrderPaymentFailed, OrderPaymentPending, OrderRefunded,
    OrderShipped, ReturnApproved, ReturnReceived, ReturnRefunded, ReturnRejected, ReturnRequested,
};
use platform::events::Event;

use crate::domain::{EmailAddress, Kind, format_money, rounded_units};

/// Every event type the mailer subscribes to. `ordering.order.placed` is not mailed: most payments
/// settle within the checkout request, and "received, waiting for the payment" followed a second
/// later by "confirmed" is one mail too many; `payment_pending` says it when the payment lags.
pub const CONSUMED: [&str; 19] = [
    UserRegistered::TYPE,
    UserUpdated::TYPE,
    ExportReady::TYPE,
    EmailVerificationRequested::TYPE,
    PasswordResetRequested::TYPE,
    OrderPaymentPending::TYPE,
    OrderConfirmed::TYPE,
    OrderPaymentFailed::TYPE,
    OrderShipped::TYPE,
    OrderDelivered::TYPE,
    OrderCancelled::TYPE,
    OrderRefunded::TYPE,
    StockLow::TYPE,
    RegistrationAttempted::TYPE,
    ReturnRequested::TYPE,
    ReturnApproved::TYPE,
    ReturnRejected::TYPE,
    ReturnReceived::TYPE,
    ReturnRefunded::TYPE,
];

/// Not on the bus: notifications raises it itself when it switches a failing webhook endpoint
/// off, and mails the alert list through the usual plan.
pub const WEBHOOK_DISABLED: &str = "notifications.webhook_endpoint.disabled";

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub quantity: i64,
    #[serde(default)]
    pub unit_price: Option<i64>,
    #[serde(default)]
    pub line_total: Option<i64>,
}

/// The fields of `ordering.order.*` data that mails show: one lenient view over the seven order
/// events' payloads (`contracts::events::ordering`), each field optional, because one template
/// set renders whatever an event carries (and older events in the dead-letter table may lack some).
#[derive(Debug, Clone, Deserialize)]
pub struct OrderData {
    pub order_id: Uuid,
    #[serde(default)]
    pub number: Option<Value>,
    pub user_id: Uuid,
    #[serde(default)]
    pub currency: String,
    #[serde(default)]
    pub subtotal: Option<i64>,
    #[serde(default)]
    pub shipping: Option<i64>,
    #[serde(default)]
    pub tax: Option<i64>,
    #[serde(default)]
    pub discount: Option<i64>,
    #[serde(default)]
    pub total: Option<i64>,
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub tracking_number: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub refunded_amount: Option<i64>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub total_refunded: Option<i64>,
    #[serde(default)]
    pub full: Option<bool>,
}

/// A line of `ordering.return.*` data.
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnLineData {
    #[serde(default)]
    pub sku: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub quantity: i64,
}

/// The fields of `ordering.return.*` data that mails show (a lenient view of
/// `contracts::events::ordering::Return`, like [`OrderData`]).
#[derive(Debug, Clone, Deserialize)]
pub struct ReturnData {
    pub order_id: Uuid,
    #[serde(default)]
    pub number: Option<Value>,
    pub user_id: Uuid,
    #[serde(default)]
    pub currency: String,
    pub return_id: Uuid,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub lines: Vec<ReturnLineData>,
    #[serde(default)]
    pub refund_amount: Option<i64>,
}

/// Who a planned mail goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum To {
    /// An address the event names (with the user it belongs to).
    Address {
        email: EmailAddress,
        name: String,
        user_id: Option<Uuid>,
    },
    /// A user whose address is looked up in the recipients projection.
    User(Uuid),
    /// Every address of `EMPORIUM_ALERT_EMAILS`.
    Alerts,
}

/// One mail an event asks for: its kind, recipient and template data (without the recipient's
/// name, which is added once the recipient is known).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMail {
    pub kind: Kind,
    pub to: To,
    pub data: Value,
}

/// What handling an event means.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// A user's address and name to remember (user id, address, name).
    pub recipient: Option<(Uuid, EmailAddress, String)>,
    pub mails: Vec<PlannedMail>,
}

/// Why an event cannot be handled; never fixed by a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Undecodable(pub String);

fn decode<T: serde::de::DeserializeOwned>(event: &Event) -> Result<T, Undecodable> {
    event
        .data_as::<T>()
        .map_err(|e| Undecodable(format!("{} data is malformed: {e}", event.event_type)))
}

fn address(raw: &str, event: &Event) -> Result<EmailAddress, Undecodable> {
    EmailAddress::parse(raw).map_err(|m| Undecodable(format!("{} names an address that {m}", event.event_type)))
}

/// Whether handling an event of this type saves its user's name and address (the plan's
/// `recipient`). Only these need the consumer's inbox: a late duplicate of an old profile event
/// would overwrite a newer address. Every other event only logs mails, and the delivery log's
/// unique keys (per address and per user) make a repeat of it log nothing.
pub fn updates_recipient(event_type: &str) -> bool {
    matches!(
        event_type,
        UserRegistered::TYPE | UserUpdated::TYPE | EmailVerificationRequested::TYPE | PasswordResetRequested::TYPE
    )
}

/// Decides what `event` asks for. `public_url` has no trailing slash.
pub fn plan(event: &Event, public_url: &str) -> Result<Plan, Undecodable> {
    match event.event_type.as_str() {
        // A new account, or a changed name or address: remembered for the order mails.
        UserRegistered::TYPE | UserUpdated::TYPE => {
            let d: UserRegistered = decode(event)?;
            Ok(Plan {
                recipient: Some((d.user_id, address(&d.email, event)?, d.0.name)),
                mails: Vec::new(),
            })
        }
        ExportReady::TYPE => {
            let d: ExportReady = decode(event)?;
            let email = address(&d.email, event)?;
            let expires = d
                .expires_at
                .format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .map_err(|e| Undecodable(format!("{}: {e}", event.event_type)))?;
            Ok(Plan {
                recipient: None,
                mails: vec![PlannedMail {
                    kind: Kind::ExportReady,
                    to: To::Address {
                        email,
                        name: d.name,
                        user_id: Some(d.user_id),
                    },
                    data: json!({"public_url": public_url, "expires": expires}),
                }],
            })
        }
        EmailVerificationRequested::TYPE | PasswordResetRequested::TYPE => {
            let d: OneTimeToken = decode(event)?;
            let email = address(&d.email, event)?;
            let ttl = d
                .ttl_seconds
                .or_else(|| d.expires_at.map(|at| (at - event.time).whole_seconds()));
            let (kind, data) = if event.event_type == EmailVerificationRequested::TYPE {
                // Like identity's original wording: whole hours, rounded down.
                let hours = ttl.map_or(24, |s| {
                    if d.ttl_seconds.is_some() {
                        (s / 3600).max(1)
                    } else {
                        rounded_units(s, 3600)
                    }
                });
                (
                    Kind::EmailVerification,
                    json!({"token": d.token, "public_url": public_url, "hours": hours}),
                )
            } else {
                let minutes = ttl.map_or(30, |s| {
                    if d.ttl_seconds.is_some() {
                        (s / 60).max(1)
                    } else {
                        rounded_units(s, 60)
                    }
                });
                (
                    Kind::PasswordReset,
                    json!({"token": d.token, "public_url": public_url, "minutes": minutes}),
                )
            };
            Ok(Plan {
                recipient: Some((d.user_id, email.clone(), d.name.clone())),
                mails: vec![PlannedMail {
                    kind,
                    to: To::Address {
                        email,
                        name: d.name,
                        user_id: Some(d.user_id),
                    },
                    data,
                }],
            })
        }
        // A return's refund is told by the return's own mail (`ordering.return.refunded`).
        OrderRefunded::TYPE if event.data.get("return_id").is_some_and(|v| !v.is_null()) => Ok(Plan::default()),
        ReturnRequested::TYPE
        | ReturnApproved::TYPE
        | ReturnRejected::TYPE
        | ReturnReceived::TYPE
        | ReturnRefunded::TYPE => {
            let d: ReturnData = decode(event)?;
            let kind = match event.event_type.as_str() {
                ReturnRequested::TYPE => Kind::ReturnRequested,
                ReturnApproved::TYPE => Kind::ReturnApproved,
                ReturnRejected::TYPE => Kind::ReturnRejected,
                ReturnReceived::TYPE => Kind::ReturnReceived,
                _ => Kind::ReturnRefunded,
            };
            Ok(Plan {
                recipient: None,
                mails: vec![PlannedMail {
                    kind,
                    to: To::User(d.user_id),
                    data: return_view(&d, public_url),
                }],
            })
        }
        OrderPaymentPending::TYPE
        | OrderConfirmed::TYPE
        | OrderPaymentFailed::TYPE
        | OrderShipped::TYPE
        | OrderDelivered::TYPE
        | OrderCancelled::TYPE
        | OrderRefunded::TYPE => {
            let d: OrderData = decode(event)?;
            let kind = match event.event_type.as_str() {
                OrderPaymentPending::TYPE => Kind::OrderPlaced,
                OrderConfirmed::TYPE => Kind::OrderConfirmed,
                OrderPaymentFailed::TYPE => Kind::PaymentFailed,
                OrderShipped::TYPE => Kind::OrderShipped,
                OrderDelivered::TYPE => Kind::OrderDelivered,
                OrderCancelled::TYPE => Kind::OrderCancelled,
                _ => Kind::RefundCompleted,
            };
            Ok(Plan {
                recipient: None,
                mails: vec![PlannedMail {
                    kind,
                    to: To::User(d.user_id),
                    data: order_view(&d, public_url),
                }],
            })
        }
        WEBHOOK_DISABLED => Ok(Plan {
            recipient: None,
            mails: vec![PlannedMail {
                kind: Kind::WebhookDisabled,
                to: To::Alerts,
                data: json!({
                    "endpoint_id": event.data.get("endpoint_id"),
                    "url": event.data.get("url"),
                    "failures": event.data.get("failures"),
                    "since": event.data.get("since"),
                    "last_error": event.data.get("last_error"),
                    "public_url": public_url,
                }),
            }],
        }),
        StockLow::TYPE => {
            let d: StockLow = decode(event)?;
            Ok(Plan {
                recipient: None,
                mails: vec![PlannedMail {
                    kind: Kind::LowStockAlert,
                    to: To::Alerts,
                    data: json!({
                        "sku": d.sku,
                        "available": d.available,
                        "threshold": d.threshold,
                        "public_url": public_url,
                    }),
                }],
            })
        }
        // Sign-up answers the same whether or not the address is taken; its owner learns of the
        // attempt here instead (with where to sign in or reset the password).
        RegistrationAttempted::TYPE => {
            let d: RegistrationAttempted = decode(event)?;
            let email = address(&d.email, event)?;
            Ok(Plan {
                recipient: None,
                mails: vec![PlannedMail {
                    kind: Kind::RegistrationAttempted,
                    to: To::Address {
                        email,
                        name: d.0.name,
                        user_id: Some(d.0.user_id),
                    },
                    data: json!({"public_url": public_url}),
                }],
            })
        }
        // Not subscribed to (`ordering.order.placed` included, see `CONSUMED`); nothing to do.
        _ => Ok(Plan::default()),
    }
}

/// What return templates see: the order's storefront page, the amount already formatted.
fn return_view(d: &ReturnData, public_url: &str) -> Value {
    let number = match &d.number {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => d.order_id.to_string(),
    };
    let reference = d.reference.clone().unwrap_or_else(|| {
        let id = d.return_id.simple().to_string();
        format!("RMA-{}", id[id.len() - 8..].to_ascii_uppercase())
    });
    let lines: Vec<Value> = d
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.sku,
                "name": if l.name.is_empty() { l.sku.clone() } else { l.name.clone() },
                "quantity": l.quantity,
            })
        })
        .collect();
    json!({
        "order_id": d.order_id,
        "number": number,
        "reference": reference,
        "order_url": format!("{public_url}/orders/{}", d.order_id),
        "public_url": public_url,
        "reason": d.reason,
        "note": d.note,
        "lines": lines,
        "refund_amount": d.refund_amount.map(|a| format_money(a, &d.currency)),
    })
}

/// What order templates see: amounts already formatted in the order's currency.
fn order_view(d: &OrderData, public_url: &str) -> Value {
    let money = |amount: Option<i64>| amount.map(|a| format_money(a, &d.currency));
    let number = match &d.number {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => d.order_id.to_string(),
    };
    let lines: Vec<Value> = d
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.sku,
                "name": if l.name.is_empty() { l.sku.clone() } else { l.name.clone() },
                "quantity": l.quantity,
                "unit_price": money(l.unit_price),
                "line_total": money(l.line_total),
            })
        })
        .collect();
    json!({
        "order_id": d.order_id,
        "number": number,
        // The storefront's page of the order: the API's URL would show a browser a 401 problem.
        "order_url": format!("{public_url}/orders/{}", d.order_id),
        "cart_url": format!("{public_url}/cart"),
        "public_url": public_url,
        "currency": d.currency,
        "lines": lines,
        "subtotal": money(d.subtotal),
        "shipping": money(d.shipping),
        "tax": money(d.tax),
        "discount": money(d.discount.filter(|a| *a != 0)),
        "total": money(d.total),
        "carrier": d.carrier,
        "tracking_number": d.tracking_number,
        "reason": d.reason,
        "payment_problem": d.reason.as_deref().map(payment_problem),
        "refunded_amount": money(d.refunded_amount.filter(|a| *a > 0)),
        "amount": money(d.amount),
        "total_refunded": money(d.total_refunded),
        "full": d.full.unwrap_or(false),
    })
}

/// What a payment failure's reason (a decline code, or a refusal) means to a shopper.
pub fn payment_problem(reason: &str) -> &'static str {
    match reason {
        "insufficient_funds" => "your card was declined for insufficient funds",
        "expired_card" => "your card was declined because it has expired",
        "incorrect_cvc" => "your card was declined because the security code (CVC) did not match",
        "processing_error" => "the payment could not be processed",
        r if r.starts_with("payment refused") => "the payment method could not be used",
        _ => "your card was declined",
    }
}

#[cfg(test)]
mod tests {
    use contracts::events::ordering::OrderPlaced;

    use super::*;

    fn event(event_type: &str, data: Value) -> Event {
        Event::new("test", event_type, "s", data)
    }

    #[test]
    fn a_registration_attempt_mails_the_owner() {
        let id = Uuid::now_v7();
        let p = plan(
            &event(
                RegistrationAttempted::TYPE,
                json!({"user_id": id, "email": "a@b.io", "name": "Ann"}),
            ),
            "http://x",
        )
        .expect("plan");
        assert_eq!(p.mails.len(), 1);
        assert_eq!(p.mails[0].kind, Kind::RegistrationAttempted);
        assert!(matches!(&p.mails[0].to, To::Address { email, .. } if email.as_str() == "a@b.io"));
        assert_eq!(p.mails[0].data["public_url"], "http://x");
    }

    #[test]
    fn exactly_the_events_that_save_a_recipient_are_said_to_update_one() {
        let id = Uuid::now_v7();
        let data = json!({"user_id": id, "email": "a@b.io", "name": "Ann", "token": "t0k", "ttl_seconds": 600});
        let mut saving = Vec::new();
        for event_type in CONSUMED {
            // Types whose payload this one does not fit are judged by the match list alone.
            if let Ok(p) = plan(&event(event_type, data.clone()), "http://x") {
                assert_eq!(p.recipient.is_some(), updates_recipient(event_type), "{event_type}");
                if p.recipient.is_some() {
                    saving.push(event_type);
                }
            }
        }
        assert_eq!(
            saving,
            [
                UserRegistered::TYPE,
                UserUpdated::TYPE,
                EmailVerificationRequested::TYPE,
                PasswordResetRequested::TYPE
            ]
        );
        assert!(!updates_recipient(OrderConfirmed::TYPE));
    }

    #[test]
    fn registration_only_feeds_the_projection() {
        let id = Uuid::now_v7();
        let p = plan(
            &event(
                UserRegistered::TYPE,
                json!({"user_id": id, "email": "a@b.io", "name": "Ann"}),
            ),
            "http://x",
        )
        .expect("plan");
        assert_eq!(
            p.recipient,
            Some((id, EmailAddress::parse("a@b.io").expect("a"), "Ann".into()))
        );
        assert!(p.mails.is_empty());
    }

    #[test]
    fn verification_mails_the_named_address_with_its_lifetime() {
        let id = Uuid::now_v7();
        let data = json!({"user_id": id, "email": "a@b.io", "name": "Ann", "token": "t0k",
            "expires_at": "2030-01-02T00:00:00Z", "ttl_seconds": 86_400});
        let p = plan(&event(EmailVerificationRequested::TYPE, data), "http://x").expect("plan");
        assert_eq!(p.mails.len(), 1);
        let m = &p.mails[0];
        assert_eq!(m.kind, Kind::EmailVerification);
        assert!(matches!(&m.to, To::Address { email, user_id: Some(u), .. } if email.as_str() == "a@b.io" && *u == id));
        assert_eq!(m.data["hours"], 24);
        assert_eq!(m.data["token"], "t0k");
        assert!(p.recipient.is_some(), "the projection learns the address too");
    }

    #[test]
    fn reset_lifetime_falls_back_to_expires_at() {
        let mut e = event(
            PasswordResetRequested::TYPE,
            json!({"user_id": Uuid::now_v7(), "email": "a@b.io", "name": "Ann", "token": "t"}),
        );
        e.data["expires_at"] = json!(
            (e.time + time::Duration::minutes(30))
                .format(&time::format_description::well_known::Rfc3339)
                .expect("fmt")
        );
        let p = plan(&e, "http://x").expect("plan");
        assert_eq!(p.mails[0].kind, Kind::PasswordReset);
        assert_eq!(p.mails[0].data["minutes"], 30);
    }

    #[test]
    fn order_events_go_to_the_user_with_formatted_amounts() {
        let user = Uuid::now_v7();
        let order = Uuid::now_v7();
        let data = json!({"order_id": order, "number": "EMP-000042", "user_id": user, "currency": "EUR",
            "status": "awaiting_payment", "subtotal": 2000, "shipping": 495, "tax": 380, "discount": 0,
            "total": 2875, "from_cart": true, "shipping_address": {"country": "DE"},
            "lines": [{"sku": "MUG-1", "product_id": Uuid::now_v7(), "name": "Mug", "quantity": 2,
                       "unit_price": 1000, "line_total": 2000}]});
        assert_eq!(
            plan(&event(OrderPlaced::TYPE, data.clone()), "https://shop.example").expect("plan"),
            Plan::default(),
            "placing alone mails nothing: the payment's outcome does"
        );
        let p = plan(&event(OrderPaymentPending::TYPE, data), "https://shop.example").expect("plan");
        let m = &p.mails[0];
        assert_eq!(m.kind, Kind::OrderPlaced);
        assert_eq!(m.to, To::User(user));
        assert_eq!(m.data["total"], "28.75 EUR");
        assert_eq!(m.data["discount"], Value::Null, "a zero discount is not shown");
        assert_eq!(m.data["lines"][0]["line_total"], "20.00 EUR");
        assert_eq!(m.data["number"], "EMP-000042");
        assert_eq!(m.data["order_url"], format!("https://shop.example/orders/{order}"));
        assert_eq!(m.data["cart_url"], "https://shop.example/cart");
    }

    #[test]
    fn each_order_event_maps_to_its_kind() {
        let data = json!({"order_id": Uuid::now_v7(), "number": 7, "user_id": Uuid::now_v7(), "currency": "USD",
            "carrier": "DHL", "tracking_number": "JD01", "amount": 500, "total_refunded": 500, "full": false});
        for (t, k) in [
            (OrderConfirmed::TYPE, Kind::OrderConfirmed),
            (OrderShipped::TYPE, Kind::OrderShipped),
            (OrderCancelled::TYPE, Kind::OrderCancelled),
            (OrderRefunded::TYPE, Kind::RefundCompleted),
            (OrderPaymentFailed::TYPE, Kind::PaymentFailed),
            (OrderDelivered::TYPE, Kind::OrderDelivered),
            (OrderPaymentPending::TYPE, Kind::OrderPlaced),
        ] {
            assert!(CONSUMED.contains(&t), "{t} is subscribed to");
            let p = plan(&event(t, data.clone()), "http://x").expect("plan");
            assert_eq!(p.mails[0].kind, k);
            assert_eq!(p.mails[0].data["number"], "7");
        }
    }

    #[test]
    fn payment_failures_are_explained_and_link_to_the_cart() {
        let data = json!({"order_id": Uuid::now_v7(), "number": "EMP-1", "user_id": Uuid::now_v7(),
            "currency": "EUR", "reason": "insufficient_funds"});
        let p = plan(&event(OrderPaymentFailed::TYPE, data), "http://x").expect("plan");
        assert_eq!(
            p.mails[0].data["payment_problem"],
            "your card was declined for insufficient funds"
        );
        assert_eq!(p.mails[0].data["cart_url"], "http://x/cart");
        assert_eq!(payment_problem("card_declined"), "your card was declined");
        assert_eq!(payment_problem("something new"), "your card was declined");
        assert_eq!(
            payment_problem("payment refused: payment_method is not yours"),
            "the payment method could not be used"
        );
    }

    #[test]
    fn return_events_mail_the_customer_and_a_return_refund_mails_once() {
        let user = Uuid::now_v7();
        let order = Uuid::now_v7();
        let rid = Uuid::parse_str("0192f0c4-e5a8-7c3b-9d1e-2f3a4b5c6d7e").expect("uuid");
        let data = json!({"order_id": order, "number": "EMP-000042", "user_id": user, "currency": "EUR",
            "return_id": rid, "status": "received", "reason": "too small", "note": null,
            "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 1, "unit_price": 1000, "restock": true}],
            "refund_amount": 1190});
        for (t, k) in [
            (ReturnRequested::TYPE, Kind::ReturnRequested),
            (ReturnApproved::TYPE, Kind::ReturnApproved),
            (ReturnRejected::TYPE, Kind::ReturnRejected),
            (ReturnReceived::TYPE, Kind::ReturnReceived),
            (ReturnRefunded::TYPE, Kind::ReturnRefunded),
        ] {
            let p = plan(&event(t, data.clone()), "https://shop.example").expect("plan");
            assert_eq!(p.mails.len(), 1, "{t}");
            assert_eq!(p.mails[0].kind, k);
            assert_eq!(p.mails[0].to, To::User(user));
            assert_eq!(p.mails[0].data["reference"], "RMA-4B5C6D7E");
            assert_eq!(p.mails[0].data["refund_amount"], "11.90 EUR");
            assert_eq!(
                p.mails[0].data["order_url"],
                format!("https://shop.example/orders/{order}")
            );
            crate::templates::render(k, &{
                let mut d = p.mails[0].data.clone();
                d["name"] = json!("Ann");
                d
            })
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        // The order's refund event of a return sends nothing more; an admin refund still mails.
        let refunded = json!({"order_id": order, "number": "EMP-000042", "user_id": user, "currency": "EUR",
            "amount": 1190, "total_refunded": 1190, "full": false, "return_id": rid});
        assert!(
            plan(&event(OrderRefunded::TYPE, refunded.clone()), "http://x")
                .expect("plan")
                .mails
                .is_empty()
        );
        let mut admin = refunded;
        admin["return_id"] = Value::Null;
        assert_eq!(
            plan(&event(OrderRefunded::TYPE, admin), "http://x")
                .expect("plan")
                .mails
                .len(),
            1
        );
    }

    #[test]
    fn low_stock_goes_to_the_alert_list() {
        let p = plan(
            &event(StockLow::TYPE, json!({"sku": "MUG-1", "available": 2, "threshold": 5})),
            "http://x",
        )
        .expect("plan");
        assert_eq!(p.mails[0].to, To::Alerts);
        assert_eq!(p.mails[0].kind, Kind::LowStockAlert);
    }

    #[test]
    fn malformed_data_is_permanent() {
        let err = plan(&event(OrderShipped::TYPE, json!({"number": 1})), "http://x").expect_err("refused");
        assert!(err.0.contains("ordering.order.shipped"), "{err}");
        let err = plan(
            &event(
                UserRegistered::TYPE,
                json!({"user_id": Uuid::now_v7(), "email": "nope", "name": "x"}),
            ),
            "http://x",
        )
        .expect_err("refused");
        assert!(err.0.contains("address"), "{err}");
        assert_eq!(
            plan(&event("other.thing.happened", json!({})), "http://x").expect("ok"),
            Plan::default()
        );
    }
}
