//! The embedded binary (SQLite) SIGKILLed in the middle of a checkout saga and restarted on the
//! same data directory: the order must end confirmed or compensated, with exactly one payment
//! whose state matches the order and stock that adds up.
//!
//! Two deterministic kill points, both inside the payment step (a slow card keeps the simulated
//! provider busy for 3 s):
//! * `in_flight`: the checkout request is still open — ordering waits for payments, which waits
//!   for the provider (EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS above the delay). Killed as soon as
//!   the payment is recorded `processing`.
//! * `after_202`: payments gave up waiting (provider wait 1.5 s), the checkout was answered 202
//!   `awaiting_payment`/`capture`, and the provider call is still running when the process dies.
//!
//! A kill between the stock reservation and the order insert cannot be aimed at from outside
//! (the window is a few milliseconds, with no observable state in between), so it is not
//! covered here.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use test_support::app::PASSWORD;
use test_support::requests::{access_token, json_of};
use test_support::shop::SLOW_CARD;

const ADMIN: &str = "root@example.com";
const CUSTOMER: &str = "crash@example.com";
const SKU: &str = "CRASH-1";
const UNITS: i64 = 5;
const QTY: i64 = 2;

struct Binary {
    dir: tempfile::TempDir,
    port: u16,
    extra: Vec<(&'static str, &'static str)>,
}

impl Binary {
    fn new(extra: &[(&'static str, &'static str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        Self {
            dir: tempfile::tempdir().expect("tmp"),
            port,
            extra: extra.to_vec(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_emporium"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EMPORIUM_DATA_DIR", self.dir.path())
            .env("EMPORIUM_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("EMPORIUM_LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .env("EMPORIUM_ARGON2_MEMORY_KIB", "8192")
            .env("EMPORIUM_ARGON2_ITERATIONS", "1")
            .env("EMPORIUM_PAYMENTS_SIMULATED_DELAY_MS", "3000")
            .env("EMPORIUM_PAYMENT_TIMEOUT_MS", "10000")
            .env("EMPORIUM_SAGA_RECOVERY_SECS", "1")
            .kill_on_drop(true);
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn create_admin(&self) {
        let mut child = self
            .command()
            .args(["admin", "create", "--email", ADMIN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn admin create");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .expect("write password");
        drop(stdin);
        let out = child.wait_with_output().await.expect("admin create");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts `emporium serve` and waits until it answers.
    async fn serve(&self, client: &reqwest::Client) -> Child {
        let mut child = self
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(self.url("/health/ready")).send().await
                && r.status().is_success()
            {
                return child;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = stderr.read_to_string(&mut err).await;
                }
                panic!("emporium serve exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn get(client: &reqwest::Client, bin: &Binary, path: &str, token: &str) -> Value {
    let r = client
        .get(bin.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    json_of(r, 200).await
}

async fn post(
    client: &reqwest::Client,
    bin: &Binary,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut req = client.post(bin.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("request")
}

async fn stock(client: &reqwest::Client, bin: &Binary) -> (i64, i64) {
    let r = client
        .get(bin.url(&format!("/api/v1/inventory/{SKU}")))
        .send()
        .await
        .expect("stock");
    let s = json_of(r, 200).await;
    (
        s["on_hand"].as_i64().expect("on_hand"),
        s["reserved"].as_i64().expect("reserved"),
    )
}

fn order_body(pm: &str) -> Value {
    json!({"items": [{"sku": SKU, "quantity": QTY}],
           "shipping_address": {"name": "Ada Lovelace", "line1": "Hauptstraße 1", "city": "Berlin",
                                "postal_code": "10115", "country": "DE"},
           "shipping_method": "standard", "payment_method": pm})
}

fn place(client: &reqwest::Client, bin: &Binary, token: &str, body: &Value) -> reqwest::RequestBuilder {
    client
        .post(bin.url("/api/v1/orders"))
        .bearer_auth(token)
        .header("Idempotency-Key", "crash-checkout")
        .timeout(Duration::from_secs(30))
        .json(body)
}

/// Admin, product with stock, verified customer with the slow card. Returns (admin, customer, pm).
async fn set_up(client: &reqwest::Client, bin: &Binary) -> (String, String, String) {
    let admin = access_token(client, &bin.url(""), ADMIN).await;
    let r = post(
        client,
        bin,
        "/api/v1/catalog/products",
        Some(&admin),
        json!({"sku": SKU, "name": "Crash Test Dummy", "price": {"amount": 2500, "currency": "EUR"}, "status": "active"}),
    )
    .await;
    json_of(r, 201).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = client
            .post(bin.url(&format!("/api/v1/inventory/{SKU}/adjustments")))
            .bearer_auth(&admin)
            .header("Idempotency-Key", "crash-stock")
            .json(&json!({"kind": "restock", "quantity": UNITS, "reason": "crash test stock"}))
            .send()
            .await
            .expect("adjust");
        if r.status() == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no stock row: {}",
            r.text().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stock(client, bin).await, (UNITS, 0));

    let r = post(
        client,
        bin,
        "/api/v1/auth/register",
        None,
        json!({"email": CUSTOMER, "password": PASSWORD, "name": "Crash Customer"}),
    )
    .await;
    json_of(r, 202).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let token = loop {
        let mails = client
            .get(bin.url(&format!("/api/v1/dev/mailbox?to={CUSTOMER}")))
            .send()
            .await
            .expect("mailbox");
        let mails: Value = json_of(mails, 200).await;
        let token = mails.as_array().into_iter().flatten().find_map(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Confirm"))
                .then(|| m["body"].as_str().unwrap_or_default())
                .and_then(|body| {
                    body.lines()
                        .map(str::trim)
                        .find(|l| l.len() == 43 && !l.contains(' '))
                        .map(str::to_owned)
                })
        });
        if let Some(token) = token {
            break token;
        }
        assert!(Instant::now() < deadline, "no verification mail: {mails}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let r = post(client, bin, "/api/v1/auth/verify-email", None, json!({"token": token})).await;
    assert_eq!(r.status(), 204);
    let customer = access_token(client, &bin.url(""), CUSTOMER).await;
    let r = post(
        client,
        bin,
        "/api/v1/payments/methods",
        Some(&customer),
        json!({"card_number": SLOW_CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123", "save": true}),
    )
    .await;
    let pm = json_of(r, 201).await["id"].as_str().expect("pm").to_owned();
    (admin, customer, pm)
}

#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// While the checkout request waits for the provider.
    InFlight,
    /// Right after the checkout was answered 202 with the provider call still running.
    After202,
}

async fn killed_mid_saga(point: KillPoint) {
    let started = Instant::now();
    let provider_wait = match point {
        KillPoint::InFlight => "6000",
        KillPoint::After202 => "1500",
    };
    // The restarted process resumes the saga once the killed one's lease lapsed: 8 s (the least
    // that twice the 4 s payment timeout allows), not the default 30. The timeout still keeps
    // the checkout open past the provider's 3 s.
    let bin = Binary::new(&[
        ("EMPORIUM_PAYMENTS_PROVIDER_WAIT_MS", provider_wait),
        ("EMPORIUM_PAYMENT_TIMEOUT_MS", "4000"),
        ("EMPORIUM_SAGA_LEASE_SECS", "8"),
    ]);
    let client = reqwest::Client::new();
    bin.create_admin().await;
    let mut server = bin.serve(&client).await;
    let (admin, customer, pm) = set_up(&client, &bin).await;
    let body = order_body(&pm);

    let mut checkout = Some(tokio::spawn(place(&client, &bin, &customer, &body).send()));
    let order_id = match point {
        KillPoint::InFlight => {
            // Kill as soon as the order exists and its payment is being processed by the provider.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let mine = get(&client, &bin, "/api/v1/orders", &customer).await;
                if let Some(id) = mine["items"][0]["id"].as_str() {
                    let payments = get(&client, &bin, &format!("/api/v1/payments?order_id={id}"), &admin).await;
                    if payments["items"][0]["status"] == "processing" {
                        break id.to_owned();
                    }
                }
                assert!(
                    !checkout.as_ref().is_some_and(|c| c.is_finished()),
                    "the checkout finished before the payment was seen processing"
                );
                assert!(Instant::now() < deadline, "the payment never showed up as processing");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        KillPoint::After202 => {
            let r = checkout
                .take()
                .expect("spawned")
                .await
                .expect("joined")
                .expect("checkout answered");
            let order = json_of(r, 202).await;
            assert_eq!(order["status"], "awaiting_payment", "{order}");
            assert_eq!(order["pending_step"], "capture", "{order}");
            order["id"].as_str().expect("id").to_owned()
        }
    };
    server.start_kill().expect("SIGKILL");
    let status = server.wait().await.expect("wait");
    assert!(!status.success(), "killed, not exited: {status:?}");
    if let Some(checkout) = checkout {
        let answer = checkout.await.expect("joined");
        assert!(
            answer.is_err(),
            "the checkout was answered before the kill ({:?}): the test proves nothing",
            answer.map(|r| r.status())
        );
    }
    let killed_at = started.elapsed();

    // Restart on the same data directory; the saga must be resumed and finish.
    let mut server = bin.serve(&client).await;
    let admin = access_token(&client, &bin.url(""), ADMIN).await;
    let customer = access_token(&client, &bin.url(""), CUSTOMER).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let order = loop {
        let order = get(&client, &bin, &format!("/api/v1/orders/{order_id}"), &customer).await;
        let terminal = matches!(
            order["status"].as_str(),
            Some("confirmed" | "cancelled" | "payment_failed")
        );
        if terminal && order.get("pending_step").is_none_or(Value::is_null) {
            break order;
        }
        assert!(
            Instant::now() < deadline,
            "{point:?}: the order was not finished within 60 s of the restart: {order}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let finished_after_restart = started.elapsed() - killed_at;

    // The books add up.
    let status = order["status"].as_str().expect("status").to_owned();
    let total = order["total"]["amount"].as_i64().expect("total");
    let payments = get(&client, &bin, &format!("/api/v1/payments?order_id={order_id}"), &admin).await;
    let items = payments["items"].as_array().expect("payments");
    assert_eq!(
        items.len(),
        1,
        "{point:?}: exactly one payment for the order: {payments}"
    );
    let p = &items[0];
    let captured = p["captured_amount"]["amount"].as_i64().expect("captured_amount");
    let refunded = p["refunded_amount"]["amount"].as_i64().expect("refunded_amount");
    let (on_hand, reserved) = stock(&client, &bin).await;
    assert_eq!(reserved, 0, "{point:?}: nothing stays reserved after the saga");
    match status.as_str() {
        "confirmed" => {
            assert_eq!(p["status"], "captured", "{payments}");
            assert_eq!((captured, refunded), (total, 0), "{payments}");
            assert_eq!(on_hand, UNITS - QTY, "{point:?}: a confirmed order takes its units");
            assert!(order["invoice_number"].is_string(), "{order}");
        }
        "cancelled" => {
            assert_ne!(p["status"], "processing", "{payments}");
            assert_eq!(captured, refunded, "a cancelled order keeps no money: {payments}");
            assert_eq!(order["refunded"]["amount"].as_i64(), Some(refunded), "{order}");
            assert_eq!(on_hand, UNITS, "{point:?}: a cancelled order gives its units back");
        }
        _ => {
            assert!(
                matches!(p["status"].as_str(), Some("declined" | "failed")),
                "{payments}"
            );
            assert_eq!(captured, 0, "{payments}");
            assert_eq!(on_hand, UNITS, "{point:?}: a failed order gives its units back");
        }
    }

    // A client retrying the checkout after the crash gets the same order, never a second charge.
    let r = place(&client, &bin, &customer, &body).send().await.expect("retry");
    let again = json_of(r, 200).await;
    assert_eq!(again["id"], order_id.as_str(), "{again}");
    assert_eq!(again["status"], status.as_str(), "{again}");
    let payments = get(&client, &bin, &format!("/api/v1/payments?order_id={order_id}"), &admin).await;
    assert_eq!(payments["items"].as_array().map(Vec::len), Some(1), "{payments}");
    let mine = get(&client, &bin, "/api/v1/orders", &customer).await;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(stock(&client, &bin).await, (on_hand, 0));

    eprintln!(
        "{point:?}: killed {:.1} s into the test; the order was {status} {:.1} s after the kill",
        killed_at.as_secs_f64(),
        finished_after_restart.as_secs_f64()
    );
    server.start_kill().expect("stop");
    let _ = server.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_the_checkout_waits_for_the_provider() {
    killed_mid_saga(KillPoint::InFlight).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_a_202_while_the_provider_still_works() {
    killed_mid_saga(KillPoint::After202).await;
}
