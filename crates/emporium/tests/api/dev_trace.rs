//! One trace across the whole system: `emporium dev --topology
//! multi` exports over OTLP/HTTP to a receiver this test runs, one checkout goes through the
//! gateway, and the spans it produced in eight processes must form one tree: one trace id, one
//! root (the gateway's server span), every parent present, every hop between processes a client
//! span in the caller with the callee's server span as its child, and the notification handler,
//! on the far side of the outbox and RabbitMQ, a descendant of the checkout. The admin console's
//! waterfall of that trace, merged from every process's buffer, names the same six parts.
//!
//! Slow (about a minute: seven migrations, the demo catalog and eight processes starting).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::{Value, json};

use crate::binary::{DEV_MULTI, DevRun, dev_multi_env, drop_dev_databases, tail};
use crate::browser::{signed_in, unescape};
use test_support::app::PASSWORD;
use test_support::requests::{access_token, json_of};
use test_support::shop::SUCCESS_CARD;

/// One span as the receiver got it, ids in lower-case hex.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent: String,
    kind: SpanKind,
    name: String,
    attributes: BTreeMap<String, String>,
}

/// A minimal OTLP/HTTP trace receiver (protobuf, as opentelemetry-otlp's `http-proto` sends).
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
    /// Why a request was not an export we could read (a failure, reported by the test).
    refused: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let receiver = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let receiver = receiver.clone();
                async move { receiver.export(&headers, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn export(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> (axum::http::StatusCode, [(&'static str, &'static str); 1]) {
        use axum::http::StatusCode;
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let refuse = |why: String| {
            self.refused.lock().expect("lock").push(why);
            (StatusCode::BAD_REQUEST, [("content-type", "text/plain")])
        };
        if header("content-type") != "application/x-protobuf" {
            return refuse(format!("content-type {:?}", header("content-type")));
        }
        if !header("content-encoding").is_empty() {
            return refuse(format!("content-encoding {:?}", header("content-encoding")));
        }
        let request = match ExportTraceServiceRequest::decode(body) {
            Ok(request) => request,
            Err(e) => return refuse(format!("not an ExportTraceServiceRequest: {e}")),
        };
        let mut spans = self.spans.lock().expect("lock");
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    name: span.name,
                    attributes: span
                        .attributes
                        .iter()
                        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?)))
                        .collect(),
                });
            }
        }
        // An empty ExportTraceServiceResponse encodes as no bytes: full success.
        (StatusCode::OK, [("content-type", "application/x-protobuf")])
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        let spans = self.spans.lock().expect("lock");
        spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(n) => Some(n.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        AnyValue::DoubleValue(f) => Some(f.to_string()),
        _ => None,
    }
}

/// The trace as an indented tree (service, kind, name), for failure messages.
fn render(spans: &[Received]) -> String {
    let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Received>> = HashMap::new();
    for s in spans {
        let parent = if ids.contains(s.parent.as_str()) {
            s.parent.as_str()
        } else {
            ""
        };
        children.entry(parent).or_default().push(s);
    }
    fn walk(out: &mut String, children: &HashMap<&str, Vec<&Received>>, at: &str, depth: usize) {
        for s in children.get(at).into_iter().flatten() {
            let orphan = if depth == 0 && !s.parent.is_empty() {
                " (parent missing)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{}{} {:?} {}{orphan}\n",
                "  ".repeat(depth),
                s.service,
                s.kind,
                s.name
            ));
            walk(out, children, &s.span_id, depth + 1);
        }
    }
    let mut out = String::new();
    walk(&mut out, &children, "", 0);
    out
}

/// What the checkout's trace must show; `Err` says what is missing or wrong.
fn check_trace(spans: &[Received]) -> Result<(), String> {
    let by_id: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    for service in [
        "gateway",
        "ordering",
        "catalog",
        "inventory",
        "payments",
        "notifications",
    ] {
        if !services.contains(format!("emporium-{service}").as_str()) {
            return Err(format!("no span from emporium-{service} (have {services:?})"));
        }
    }
    let roots: Vec<&Received> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    match roots.as_slice() {
        [root] if root.service == "emporium-gateway" && root.kind == SpanKind::Server => {}
        _ => return Err(format!("want one root, the gateway's server span; have {roots:?}")),
    }
    if let Some(orphan) = spans
        .iter()
        .find(|s| !s.parent.is_empty() && !by_id.contains_key(s.parent.as_str()))
    {
        return Err(format!("a span whose parent is not in the trace: {orphan:?}"));
    }
    // Every hop between processes: a client span in the caller, the callee's server span its child.
    let mut hops = BTreeSet::new();
    for span in spans.iter().filter(|s| !s.parent.is_empty()) {
        let parent = by_id[span.parent.as_str()];
        if span.service != parent.service {
            let well_formed =
                span.kind == SpanKind::Server && parent.kind == SpanKind::Client || span.kind == SpanKind::Consumer;
            if !well_formed {
                return Err(format!(
                    "a cross-process edge that is neither client → server nor into a consumer: {parent:?} → {span:?}"
                ));
            }
            if span.kind == SpanKind::Server {
                hops.insert((parent.service.as_str(), span.service.as_str()));
            }
        } else if span.kind == SpanKind::Server {
            return Err(format!("a server span whose parent is in its own process: {span:?}"));
        }
    }
    for (from, to) in [
        ("gateway", "ordering"),
        ("ordering", "catalog"),
        ("ordering", "inventory"),
        ("ordering", "payments"),
    ] {
        let hop = (format!("emporium-{from}"), format!("emporium-{to}"));
        if !hops.contains(&(hop.0.as_str(), hop.1.as_str())) {
            return Err(format!("no client → server hop {from} → {to} (have {hops:?})"));
        }
    }
    // The confirmation mail's handler, across the outbox and RabbitMQ, continues the checkout.
    let handler = spans
        .iter()
        .find(|s| {
            s.service == "emporium-notifications"
                && s.name == "event.handle"
                && s.attributes.get("event_type").map(String::as_str) == Some("ordering.order.confirmed")
        })
        .ok_or("no notifications event.handle span for ordering.order.confirmed")?;
    if handler.kind != SpanKind::Consumer {
        return Err(format!("the handler's span is not a consumer span: {handler:?}"));
    }
    let producer = by_id[handler.parent.as_str()];
    if producer.service != "emporium-ordering" {
        return Err(format!("the handler's parent is not in ordering: {producer:?}"));
    }
    Ok(())
}

/// Registers, verifies (the link from the dev mailbox) and logs in `email` through the gateway.
async fn shopper(client: &reqwest::Client, base: &str, email: &str) -> String {
    let r = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Trace Shopper"}))
        .send()
        .await
        .expect("register");
    json_of(r, 202).await;
    let token = wait_for_mail(client, base, email, "Confirm")
        .await
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 43 && !l.contains(' '))
        .expect("a token line in the verification mail")
        .to_owned();
    let r = client
        .post(format!("{base}/api/v1/auth/verify-email"))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 204);
    access_token(client, base, email).await
}

/// The body of the first mail to `to` whose subject contains `subject` (20 s at most).
async fn wait_for_mail(client: &reqwest::Client, base: &str, to: &str, subject: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .get(format!("{base}/api/v1/dev/mailbox"))
            .query(&[("to", to)])
            .send()
            .await
            .expect("mailbox");
        let mails = json_of(r, 200).await;
        let found = mails
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["subject"].as_str().is_some_and(|s| s.contains(subject)));
        if let Some(mail) = found {
            return mail["body"].as_str().unwrap_or_default().to_owned();
        }
        assert!(Instant::now() < deadline, "no mail {subject:?} to {to}: {mails}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser signed in to the admin console as a staff member created with `emporium admin create`
/// in the topology's identity database.
async fn staff_browser(base: &str, prefix: &str) -> reqwest::Client {
    use tokio::io::AsyncWriteExt as _;
    const STAFF: &str = "trace-staff@example.com";
    let postgres = test_support::services::postgres_admin_url()
        .rsplit_once('/')
        .map(|(server, _)| server.to_owned())
        .expect("postgres url");
    let mut create = tokio::process::Command::new(env!("CARGO_BIN_EXE_emporium"))
        .env("DATABASE_URL", format!("{postgres}/{prefix}_identity"))
        .env("EMPORIUM_ARGON2_MEMORY_KIB", "8192")
        .env("EMPORIUM_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .args(["admin", "create", "--email", STAFF])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn admin create");
    let mut stdin = create.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .expect("password");
    drop(stdin);
    assert!(create.wait().await.expect("wait").success(), "admin create failed");
    signed_in(base, STAFF, PASSWORD).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_is_one_trace_from_the_gateway_to_the_notification_handler() {
    if !test_support::services::production_services_reachable().await {
        return;
    }
    let _one_topology_at_a_time = DEV_MULTI.lock().await;
    let receiver = Receiver::default();
    let endpoint = receiver.start().await;
    let (prefix, mut env) = dev_multi_env();
    // Every child inherits these: export to the receiver, in batches every 200 ms (the SDK's
    // default 5 s would make the test wait for it).
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint));
    env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()));
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let base = format!("http://{listen}");
    let dir = tempfile::tempdir().expect("tmp");
    let log = dir.path().join("dev.log");
    let client = reqwest::Client::new();

    let outcome = async {
        let mut run = DevRun::start(&env, &listen, &[], &log);
        run.wait_ready(&base).await;
        let email = "trace-shopper@example.com";
        let access = shopper(&client, &base, email).await;
        let r = client
            .post(format!("{base}/api/v1/payments/methods"))
            .bearer_auth(&access)
            .json(&json!({"card_number": SUCCESS_CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123", "save": true}))
            .send()
            .await
            .expect("card");
        let pm = json_of(r, 201).await["id"].as_str().expect("pm").to_owned();
        let r = client
            .get(format!("{base}/api/v1/catalog/products?sort=price_asc&limit=1"))
            .send()
            .await
            .expect("products");
        let products = json_of(r, 200).await;
        let sku = products["items"][0]["sku"].as_str().expect("a demo product").to_owned();

        // The checkout: the gateway starts its trace and says which in `x-trace-id`.
        let r = client
            .post(format!("{base}/api/v1/orders"))
            .bearer_auth(&access)
            .header("Idempotency-Key", "trace-checkout")
            .json(&json!({"items": [{"sku": sku, "quantity": 1}],
                          "shipping_address": {"name": "Ada Lovelace", "line1": "Hauptstraße 1", "city": "Berlin",
                                               "postal_code": "10115", "country": "DE"},
                          "shipping_method": "standard", "payment_method": pm}))
            .send()
            .await
            .expect("checkout");
        let trace_id = r
            .headers()
            .get("x-trace-id")
            .and_then(|v| v.to_str().ok())
            .expect("the gateway names the trace")
            .to_owned();
        let order: Value = json_of(r, 201).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        let number = order["number"].as_str().expect("order number");
        wait_for_mail(&client, &base, email, &format!("Order {number} confirmed")).await;

        // Spans arrive in batches from eight processes: wait until the tree is complete, then
        // once more after a few export intervals, so a late span cannot break it unseen.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = receiver.trace(&trace_id);
            match check_trace(&spans) {
                Ok(()) => break,
                Err(why) => assert!(
                    Instant::now() < deadline,
                    "trace {trace_id} incomplete: {why}\nrefused exports: {:?}\n{}\n{}",
                    receiver.refused.lock().expect("lock"),
                    render(&spans),
                    tail(&run.output())
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spans = receiver.trace(&trace_id);
        if let Err(why) = check_trace(&spans) {
            panic!(
                "trace {trace_id} broke after it was complete: {why}\n{}",
                render(&spans)
            );
        }
        assert!(receiver.refused.lock().expect("lock").is_empty());
        eprintln!("trace {trace_id}: {} spans\n{}", spans.len(), render(&spans));

        // The built-in console lists the checkout by its path (the gateway's root span has only
        // the catch-all route) and shows it as one waterfall, merged from every process.
        let staff = staff_browser(&base, &prefix).await;
        let list = staff
            .get(format!("{base}/admin/traces?route=/api/v1/orders&status=ok"))
            .send()
            .await
            .expect("traces page");
        let html = unescape(&list.text().await.expect("html"));
        assert!(
            html.contains(&format!(r#"data-trace-id="{trace_id}""#)) && html.contains("POST /api/v1/orders"),
            "the checkout is found by its route through the gateway:\n{html}"
        );
        let page = staff
            .get(format!("{base}/admin/traces/{trace_id}"))
            .send()
            .await
            .expect("trace page");
        assert_eq!(page.status(), 200);
        let html = unescape(&page.text().await.expect("html"));
        assert!(
            !html.contains("Not reached"),
            "every process answered the console:\n{html}"
        );
        for service in [
            "gateway",
            "ordering",
            "catalog",
            "inventory",
            "payments",
            "notifications",
        ] {
            assert!(
                html.contains(&format!("<td>{service}</td>")),
                "the console's waterfall has spans of {service}:\n{html}"
            );
        }
        run.stop_cleanly().await;
    };
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outcome)).await;
    drop_dev_databases(&prefix).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
