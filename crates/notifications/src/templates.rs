//! The message templates: a subject, a text part and an HTML part per [`Kind`], compiled into the
//! binary from `templates/`. HTML templates (`.html`) are autoescaped; text ones are not.
//!
//! Whitespace: `trim_blocks` drops the newline after every block tag, so a tag (`{% if %}`,
//! `{% endfor %}`, `{% include %}`) stands on a line of its own and that line vanishes; a tag at
//! the end of a line of text would glue the next line onto it ("33.90 EURTotal paid"). The
//! snapshot tests below pin every kind's text and HTML.

use std::sync::OnceLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use crate::domain::Kind;

/// A rendered message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
#[error("rendering the {kind} template failed: {message}")]
pub struct RenderError {
    pub kind: Kind,
    pub message: String,
}

const FILES: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/layout.html")),
    ("order_lines.html", include_str!("../templates/order_lines.html")),
    ("order_lines.txt", include_str!("../templates/order_lines.txt")),
    (
        "email_verification.txt",
        include_str!("../templates/email_verification.txt"),
    ),
    (
        "email_verification.html",
        include_str!("../templates/email_verification.html"),
    ),
    ("password_reset.txt", include_str!("../templates/password_reset.txt")),
    ("password_reset.html", include_str!("../templates/password_reset.html")),
    ("order_placed.txt", include_str!("../templates/order_placed.txt")),
    ("order_placed.html", include_str!("../templates/order_placed.html")),
    ("order_confirmed.txt", include_str!("../templates/order_confirmed.txt")),
    (
        "order_confirmed.html",
        include_str!("../templates/order_confirmed.html"),
    ),
    ("order_shipped.txt", include_str!("../templates/order_shipped.txt")),
    ("order_shipped.html", include_str!("../templates/order_shipped.html")),
    ("order_cancelled.txt", include_str!("../templates/order_cancelled.txt")),
    (
        "order_cancelled.html",
        include_str!("../templates/order_cancelled.html"),
    ),
    (
        "refund_completed.txt",
        include_str!("../templates/refund_completed.txt"),
    ),
    (
        "refund_completed.html",
        include_str!("../templates/refund_completed.html"),
    ),
    ("low_stock_alert.txt", include_str!("../templates/low_stock_alert.txt")),
    (
        "low_stock_alert.html",
        include_str!("../templates/low_stock_alert.html"),
    ),
    (
        "registration_attempted.txt",
        include_str!("../templates/registration_attempted.txt"),
    ),
    (
        "registration_attempted.html",
        include_str!("../templates/registration_attempted.html"),
    ),
    ("payment_failed.txt", include_str!("../templates/payment_failed.txt")),
    ("payment_failed.html", include_str!("../templates/payment_failed.html")),
    ("order_delivered.txt", include_str!("../templates/order_delivered.txt")),
    (
        "order_delivered.html",
        include_str!("../templates/order_delivered.html"),
    ),
    ("return_lines.html", include_str!("../templates/return_lines.html")),
    (
        "return_requested.txt",
        include_str!("../templates/return_requested.txt"),
    ),
    (
        "return_requested.html",
        include_str!("../templates/return_requested.html"),
    ),
    ("return_approved.txt", include_str!("../templates/return_approved.txt")),
    (
        "return_approved.html",
        include_str!("../templates/return_approved.html"),
    ),
    ("return_rejected.txt", include_str!("../templates/return_rejected.txt")),
    (
        "return_rejected.html",
        include_str!("../templates/return_rejected.html"),
    ),
    ("return_received.txt", include_str!("../templates/return_received.txt")),
    (
        "return_received.html",
        include_str!("../templates/return_received.html"),
    ),
    ("return_refunded.txt", include_str!("../templates/return_refunded.txt")),
    (
        "return_refunded.html",
        include_str!("../templates/return_refunded.html"),
    ),
    (
        "webhook_disabled.txt",
        include_str!("../templates/webhook_disabled.txt"),
    ),
    (
        "webhook_disabled.html",
        include_str!("../templates/webhook_disabled.html"),
    ),
    ("export_ready.txt", include_str!("../templates/export_ready.txt")),
    ("export_ready.html", include_str!("../templates/export_ready.html")),
];

/// The subject line of each kind (a template too; never autoescaped: it is a header, not HTML).
fn subject(kind: Kind) -> &'static str {
    match kind {
        Kind::EmailVerification => "Confirm your e-mail address",
        Kind::PasswordReset => "Reset your password",
        Kind::OrderPlaced => "Order {{ number }} received",
        Kind::OrderConfirmed => "Order {{ number }} confirmed",
        Kind::OrderShipped => "Order {{ number }} has shipped",
        Kind::OrderCancelled => "Order {{ number }} cancelled",
        Kind::RefundCompleted => "Refund for order {{ number }}",
        Kind::LowStockAlert => "Low stock: {{ sku }} ({{ available }} left)",
        Kind::RegistrationAttempted => "Someone tried to register with your address",
        Kind::PaymentFailed => "Payment for order {{ number }} failed",
        Kind::OrderDelivered => "Order {{ number }} has been delivered",
        Kind::ReturnRequested => "Return {{ reference }} for order {{ number }} received",
        Kind::ReturnApproved => "Return {{ reference }} approved: please send the items",
        Kind::ReturnRejected => "Return {{ reference }} for order {{ number }} declined",
        Kind::ReturnReceived => "We received your return {{ reference }}",
        Kind::ReturnRefunded => "Return {{ reference }} refunded",
        Kind::WebhookDisabled => "Webhook endpoint disabled: {{ url }}",
        Kind::ExportReady => "Your data export is ready",
    }
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        match SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            Ok(syntax) => env.set_syntax(syntax),
            Err(e) => tracing::error!(error = %e, "invalid template syntax settings"),
        }
        for (name, source) in FILES {
            // The templates are part of the binary and covered by unit tests: a syntax error here
            // is a build defect, reported at first render (see `render`) rather than a panic.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "invalid built-in template");
            }
        }
        for kind in Kind::ALL {
            let name = subject_name(kind);
            if let Err(e) = env.add_template_owned(name, subject(kind)) {
                tracing::error!(template = kind.as_str(), error = %e, "invalid built-in subject");
            }
        }
        env
    })
}

fn subject_name(kind: Kind) -> String {
    format!("{}.subject", kind.as_str())
}

/// Renders `kind` with `data` (which must hold every variable the templates use).
pub fn render(kind: Kind, data: &Value) -> Result<Rendered, RenderError> {
    let env = environment();
    let err = |e: minijinja::Error| RenderError {
        kind,
        message: format!("{e:#}"),
    };
    let ctx = minijinja::Value::from(minijinja::value::Serde(data));
    let one = |name: &str| env.get_template(name).and_then(|t| t.render(&ctx)).map_err(err);
    let subject = one(&subject_name(kind))?;
    Ok(Rendered {
        // A header: one line, whatever the data held.
        subject: subject.split(['\r', '\n']).map(str::trim).collect::<Vec<_>>().join(" "),
        text: one(&format!("{}.txt", kind.as_str()))?,
        html: one(&format!("{}.html", kind.as_str()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::events::Event as _;
    use contracts::events::identity::{EmailVerificationRequested, PasswordResetRequested, RegistrationAttempted};
    use contracts::events::inventory::StockLow;
    use contracts::events::ordering::{
        OrderCancelled, OrderConfirmed, OrderDelivered, OrderPaymentFailed, OrderPaymentPending, OrderRefunded,
        OrderShipped, ReturnApproved, ReturnReceived, ReturnRefunded, ReturnRejected, ReturnRequested,
    };
    use serde_json::json;

    fn order(extra: Value) -> Value {
        let mut v = json!({
            "name": "Ann <Admin>", "number": "EMP-7", "order_id": "0190", "order_url": "https://s.example/orders/0190",
            "cart_url": "https://s.example/cart", "payment_problem": null,
            "public_url": "https://s.example", "currency": "EUR",
            "lines": [{"sku": "MUG-1", "name": "Mug & <b>Cup</b>", "quantity": 2, "unit_price": "10.00 EUR", "line_total": "20.00 EUR"}],
            "subtotal": "20.00 EUR", "shipping": "4.95 EUR", "tax": "3.80 EUR", "discount": null, "total": "28.75 EUR",
            "carrier": null, "tracking_number": null, "reason": null, "refunded_amount": null,
            "amount": null, "total_refunded": null, "full": false
        });
        if let (Some(base), Value::Object(more)) = (v.as_object_mut(), extra) {
            base.extend(more);
        }
        v
    }

    #[test]
    fn verification_keeps_the_token_alone_on_its_line_and_the_old_wording() {
        let token = "A".repeat(43);
        let r = render(
            Kind::EmailVerification,
            &json!({"name": "Ann", "token": token, "public_url": "http://127.0.0.1:8080", "hours": 24}),
        )
        .expect("render");
        assert_eq!(r.subject, "Confirm your e-mail address");
        assert_eq!(
            r.text,
            format!(
                "Hello Ann,\n\nconfirm your e-mail address for Emporium with this token:\n\n{token}\n\n\
                 To confirm in your browser, open this link:\n\
                 http://127.0.0.1:8080/verify-email?token={token}\n\n\
                 POST it as {{\"token\": \"...\"}} to http://127.0.0.1:8080/api/v1/auth/verify-email.\n\
                 It expires in 24 hours and works once.\n"
            )
        );
        // The token stays alone in the third paragraph (the README walkthrough reads it there),
        // and the page link comes before the API's URL (the first `/verify-email` a reader meets).
        assert_eq!(r.text.split("\n\n").nth(2), Some(token.as_str()));
        assert!(r.text.find("/verify-email?token=") < r.text.find("/api/v1/auth/verify-email"));
        let lines: Vec<&str> = r.text.lines().filter(|l| l.len() == 43 && !l.contains(' ')).collect();
        assert_eq!(lines, vec![token.as_str()]);
        assert!(r.html.contains(&token));
    }

    #[test]
    fn reset_keeps_the_old_wording() {
        let r = render(
            Kind::PasswordReset,
            &json!({"name": "Ann", "token": "tok", "public_url": "http://x", "minutes": 30}),
        )
        .expect("render");
        assert_eq!(r.subject, "Reset your password");
        assert_eq!(
            r.text,
            "Hello Ann,\n\nsomeone asked to reset your Emporium password. If it was you, use this token:\n\ntok\n\n\
             To choose a new password in your browser, open this link:\n\
             http://x/reset-password?token=tok\n\n\
             POST it with your new password as {\"token\": \"...\", \"new_password\": \"...\"} to \
             http://x/api/v1/auth/reset-password. It expires in 30 minutes and works once.\n\
             If it was not you, ignore this message: your password is unchanged.\n"
        );
        assert!(r.html.contains(r#"/reset-password?token=tok""#), "{}", r.html);
    }

    #[test]
    fn html_is_autoescaped_and_text_is_not() {
        let r = render(Kind::OrderPlaced, &order(json!({}))).expect("render");
        assert!(r.html.contains("Ann &lt;Admin&gt;"), "{}", r.html);
        assert!(r.html.contains("Mug &amp; &lt;b&gt;Cup&lt;&#x2f;b&gt;"), "{}", r.html);
        assert!(!r.html.contains("<b>Cup"));
        assert!(r.text.contains("Hello Ann <Admin>,"));
        assert!(r.text.contains("2 x Mug & <b>Cup</b> (MUG-1)  20.00 EUR"), "{}", r.text);
        assert!(r.text.contains("Total: 28.75 EUR"));
        assert!(!r.text.contains("Discount"), "no discount line without a discount");
        assert_eq!(r.subject, "Order EMP-7 received");
    }

    #[test]
    fn every_kind_renders_text_and_html() {
        let cases = [
            (Kind::OrderPlaced, order(json!({})), "28.75 EUR"),
            (Kind::OrderConfirmed, order(json!({})), "Total paid: 28.75 EUR"),
            (
                Kind::OrderShipped,
                order(json!({"carrier": "DHL", "tracking_number": "JD0001"})),
                "Tracking number: JD0001",
            ),
            (
                Kind::OrderCancelled,
                order(json!({"reason": "out of stock", "refunded_amount": "28.75 EUR"})),
                "We are refunding 28.75 EUR",
            ),
            (
                Kind::RefundCompleted,
                order(json!({"amount": "5.00 EUR", "total_refunded": "5.00 EUR"})),
                "we have refunded 5.00 EUR for your order EMP-7.",
            ),
            (
                Kind::LowStockAlert,
                json!({"sku": "MUG-1", "available": 2, "threshold": 5, "public_url": "https://s.example"}),
                "Only 2 unit(s) of MUG-1 are available (threshold 5).",
            ),
            (
                Kind::RegistrationAttempted,
                json!({"name": "Ann", "public_url": "https://s.example"}),
                "https://s.example/forgot-password",
            ),
            (
                Kind::ExportReady,
                json!({"name": "Ann", "public_url": "https://s.example", "expires": "2026-12-11 10:00 UTC"}),
                "https://s.example/account/privacy",
            ),
        ];
        for (kind, data, expected) in cases {
            let r = render(kind, &data).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert!(r.text.contains(expected), "{kind} text:\n{}", r.text);
            assert!(r.html.starts_with("<!DOCTYPE html>"), "{kind} html");
            assert!(r.html.contains("</html>"), "{kind} html");
            assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
        }
        let shipped = render(
            Kind::OrderShipped,
            &order(json!({"carrier": "DHL", "tracking_number": "JD0001"})),
        )
        .expect("render");
        assert!(shipped.text.contains("Carrier: DHL"));
        assert!(shipped.html.contains("JD0001"));
        let low = render(
            Kind::LowStockAlert,
            &json!({"sku": "MUG-1", "available": 2, "threshold": 5, "public_url": "https://s.example"}),
        )
        .expect("render");
        assert_eq!(low.subject, "Low stock: MUG-1 (2 left)");
    }

    /// The data each kind is rendered with in production: its event, planned by the mailer, with
    /// the recipient's name added (as the service does).
    fn planned(kind: Kind) -> Value {
        use crate::events as ev;
        let order = "0190e7a4-7c3e-7b7e-9d2c-3f1a2b4c5d6e";
        let lines = json!([
            {"sku": "MUG-1", "product_id": order, "name": "Stoneware mug", "quantity": 2, "unit_price": 1250, "line_total": 2500},
            {"sku": "TEA-GREEN", "product_id": order, "name": "Green tea 100 g", "quantity": 1, "unit_price": 890, "line_total": 890}
        ]);
        let order_data = |extra: Value| {
            let mut d = json!({"order_id": order, "number": "EMP-000042", "user_id": order, "currency": "EUR",
                "subtotal": 3390, "shipping": 495, "tax": 743, "discount": 0, "total": 4628, "lines": lines});
            if let (Some(m), Value::Object(more)) = (d.as_object_mut(), extra) {
                m.extend(more);
            }
            d
        };
        let token = json!({"user_id": order, "email": "ann@example.com", "name": "Ann", "token": "T0k3n",
            "ttl_seconds": 86_400});
        let (event_type, data) = match kind {
            Kind::EmailVerification => (EmailVerificationRequested::TYPE, token),
            Kind::PasswordReset => (PasswordResetRequested::TYPE, {
                let mut t = token;
                t["ttl_seconds"] = json!(1800);
                t
            }),
            Kind::OrderPlaced => (
                OrderPaymentPending::TYPE,
                order_data(json!({"discount": 500, "total": 4128})),
            ),
            Kind::OrderConfirmed => (OrderConfirmed::TYPE, order_data(json!({}))),
            Kind::OrderShipped => (
                OrderShipped::TYPE,
                order_data(json!({"carrier": "DHL", "tracking_number": "JD014600003"})),
            ),
            Kind::OrderCancelled => (
                OrderCancelled::TYPE,
                order_data(json!({"reason": "customer request", "refunded_amount": 4628})),
            ),
            Kind::RefundCompleted => (
                OrderRefunded::TYPE,
                order_data(json!({"amount": 890, "total_refunded": 890, "full": false})),
            ),
            Kind::LowStockAlert => (StockLow::TYPE, json!({"sku": "MUG-1", "available": 2, "threshold": 5})),
            Kind::WebhookDisabled => (
                crate::events::WEBHOOK_DISABLED,
                json!({"endpoint_id": order, "url": "https://erp.example.com/hooks", "failures": 12,
                    "since": "2026-12-01 10:00 UTC", "last_error": "the receiver answered HTTP 503"}),
            ),
            Kind::PaymentFailed => (
                OrderPaymentFailed::TYPE,
                order_data(json!({"reason": "insufficient_funds"})),
            ),
            Kind::OrderDelivered => (OrderDelivered::TYPE, order_data(json!({}))),
            Kind::RegistrationAttempted => (
                RegistrationAttempted::TYPE,
                json!({"user_id": order, "email": "ann@example.com", "name": "Ann"}),
            ),
            Kind::ExportReady => (
                contracts::events::identity::ExportReady::TYPE,
                json!({"export_id": order, "user_id": order, "email": "ann@example.com", "name": "Ann",
                    "expires_at": "2026-12-11T10:00:00Z"}),
            ),
            Kind::ReturnRequested
            | Kind::ReturnApproved
            | Kind::ReturnRejected
            | Kind::ReturnReceived
            | Kind::ReturnRefunded => {
                let event_type = match kind {
                    Kind::ReturnRequested => ReturnRequested::TYPE,
                    Kind::ReturnApproved => ReturnApproved::TYPE,
                    Kind::ReturnRejected => ReturnRejected::TYPE,
                    Kind::ReturnReceived => ReturnReceived::TYPE,
                    _ => ReturnRefunded::TYPE,
                };
                (
                    event_type,
                    json!({"order_id": order, "number": "EMP-000042", "user_id": order, "currency": "EUR",
                        "return_id": order, "status": "received", "reason": "too small", "note": "Thank you",
                        "lines": [{"sku": "MUG-1", "name": "Stoneware mug", "quantity": 1, "unit_price": 1250, "restock": true}],
                        "refund_amount": 1488}),
                )
            }
        };
        let event = platform::events::Event::new("test", event_type, "s", data);
        let plan = ev::plan(&event, "https://shop.example").expect("plan");
        let mail = plan.mails.into_iter().next().expect("one mail");
        assert_eq!(mail.kind, kind, "{event_type}");
        let mut data = mail.data;
        data["name"] = json!("Łukasz Żółć");
        data
    }

    /// Every kind, text and HTML, exactly as sent: spacing included (a line must never run into
    /// the next, as "33.90 EURTotal paid" did).
    #[test]
    fn every_kind_renders_as_pinned() {
        for kind in Kind::ALL {
            let r = render(kind, &planned(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"));
            insta::assert_snapshot!(format!("{kind}.subject"), r.subject);
            insta::assert_snapshot!(format!("{kind}.txt"), r.text);
            insta::assert_snapshot!(format!("{kind}.html"), r.html);
            assert!(
                r.text.ends_with('\n') && !r.text.ends_with("\n\n"),
                "{kind}:\n{}",
                r.text
            );
            assert!(
                !r.text.contains("\n\n\n"),
                "{kind}: two blank lines in a row:\n{}",
                r.text
            );
            assert!(!r.text.starts_with(char::is_whitespace), "{kind}");
        }
    }

    #[test]
    fn order_lines_and_totals_stay_on_lines_of_their_own() {
        let r = render(Kind::OrderConfirmed, &planned(Kind::OrderConfirmed)).expect("render");
        let lines: Vec<&str> = r.text.lines().collect();
        assert!(lines.contains(&"  2 x Stoneware mug (MUG-1)  25.00 EUR"), "{}", r.text);
        assert!(
            lines.contains(&"  1 x Green tea 100 g (TEA-GREEN)  8.90 EUR"),
            "{}",
            r.text
        );
        assert!(lines.contains(&"Total paid: 46.28 EUR"), "{}", r.text);
        assert!(!r.text.contains("EURTotal"), "{}", r.text);
        let placed = render(Kind::OrderPlaced, &planned(Kind::OrderPlaced)).expect("render");
        let lines: Vec<&str> = placed.text.lines().collect();
        for want in [
            "Subtotal: 33.90 EUR",
            "Shipping: 4.95 EUR",
            "Tax: 7.43 EUR",
            "Discount: -5.00 EUR",
            "Total: 41.28 EUR",
        ] {
            assert!(lines.contains(&want), "{want} missing:\n{}", placed.text);
        }
        let cancelled = render(Kind::OrderCancelled, &planned(Kind::OrderCancelled)).expect("render");
        let lines: Vec<&str> = cancelled.text.lines().collect();
        assert!(lines.contains(&"Reason: customer request"), "{}", cancelled.text);
        assert!(
            lines.contains(&"We are refunding 46.28 EUR to your original payment method."),
            "{}",
            cancelled.text
        );
    }

    fn a_return(extra: Value) -> Value {
        let mut v = json!({
            "name": "Ann", "number": "EMP-7", "reference": "RMA-0A1B2C3D", "order_url": "https://s.example/orders/0190",
            "public_url": "https://s.example",
            "reason": "Too <small>", "note": null, "refund_amount": null,
            "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 1, "restock": null}]
        });
        if let (Some(base), Value::Object(more)) = (v.as_object_mut(), extra) {
            base.extend(more);
        }
        v
    }

    #[test]
    fn return_mails_say_what_happens_next() {
        let cases = [
            (
                Kind::ReturnRequested,
                a_return(json!({})),
                "Hello Ann,\n\nwe have received your request to return these items of order EMP-7:\n\n  1 x Mug (MUG-1)\n\n\
                 Your reason: Too <small>\n\nWe will look at it shortly and write to you again.\n\n\
                 Your order: https://s.example/orders/0190\n",
            ),
            (
                Kind::ReturnApproved,
                a_return(json!({"note": "Use the prepaid label"})),
                "Hello Ann,\n\nyour return RMA-0A1B2C3D for order EMP-7 is approved. Please send these items back,\n\
                 with the reference RMA-0A1B2C3D on the parcel:\n\n  1 x Mug (MUG-1)\n\n\
                 Note from our team: Use the prepaid label\n\nYour order: https://s.example/orders/0190\n",
            ),
            (
                Kind::ReturnRejected,
                a_return(json!({"note": "Worn items cannot be returned"})),
                "Hello Ann,\n\nwe are sorry: your return RMA-0A1B2C3D for order EMP-7 was declined.\n\n\
                 Why: Worn items cannot be returned\n\nYour order: https://s.example/orders/0190\n",
            ),
            (
                Kind::ReturnReceived,
                a_return(json!({"refund_amount": "12.50 EUR"})),
                "Hello Ann,\n\nwe have received your return RMA-0A1B2C3D for order EMP-7:\n\n  1 x Mug (MUG-1)\n\n\
                 We are refunding 12.50 EUR to your original payment method.\n\n\
                 Your order: https://s.example/orders/0190\n",
            ),
            (
                Kind::ReturnRefunded,
                a_return(json!({"refund_amount": "12.50 EUR"})),
                "Hello Ann,\n\nwe have refunded 12.50 EUR for your return RMA-0A1B2C3D (order EMP-7).\n\
                 It may take a few days to appear on your statement.\n\nYour order: https://s.example/orders/0190\n",
            ),
        ];
        for (kind, data, text) in cases {
            let r = render(kind, &data).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(r.text, text, "{kind}");
            assert!(r.subject.contains("RMA-0A1B2C3D"), "{kind}: {}", r.subject);
            assert!(
                r.html.starts_with("<!DOCTYPE html>") && r.html.contains("</html>"),
                "{kind}"
            );
            // (HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.)
            assert!(
                r.html.replace("&#x2f;", "/").contains("https://s.example/orders/0190"),
                "{kind}"
            );
            assert!(!r.html.contains("<small>"), "{kind}: escaped");
        }
    }

    #[test]
    fn missing_data_is_an_error_not_an_empty_hole() {
        let err = render(Kind::OrderShipped, &json!({"name": "Ann"})).expect_err("refused");
        assert_eq!(err.kind, Kind::OrderShipped);
    }

    #[test]
    fn subjects_stay_on_one_line() {
        let r = render(
            Kind::OrderShipped,
            &order(json!({"number": "A\r\nBcc: evil@x.io", "carrier": "DHL", "tracking_number": "1"})),
        )
        .expect("render");
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'), "{}", r.subject);
    }
}
