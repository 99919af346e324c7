//! The whole app on a random port, on either backend: on SQLite every context's database is a
//! file in a temporary directory; on PostgreSQL each context gets a database of its own (as in
//! production) and the app talks to the test RabbitMQ and Redis under a namespace of its own, and
//! mails over real SMTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use emporium::app::{self, Service, Settings, Wiring};
use platform::config::ConfigSource;
use platform::db::{Db, SqliteSizing};
use platform::dev_mailbox::DevMailbox;
use serde_json::{Value, json};

use crate::db::{Backend, TempPostgres};
use crate::services::{amqp_url, namespace, rabbitmq_reachable, redis_reachable, redis_url};
use crate::smtp::SmtpSink;

/// The `/metrics` scrape token every test app is configured with (`EMPORIUM_METRICS_TOKEN`).
pub const METRICS_TOKEN: &str = "test-metrics-scrape-token";

/// Test settings: the production defaults, except cheaper password hashing.
pub fn test_source(extra: &[(&str, &str)]) -> ConfigSource {
    let mut pairs: Vec<(String, String)> = vec![
        ("EMPORIUM_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
        ("EMPORIUM_ARGON2_MEMORY_KIB".into(), "8192".into()),
        ("EMPORIUM_ARGON2_ITERATIONS".into(), "1".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    ConfigSource::from_pairs(pairs).expect("test config")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub mailbox: DevMailbox,
    pub identity: Arc<identity::IdentityService>,
    pub inventory: Arc<inventory::InventoryService>,
    /// Identity's database.
    pub db: Db,
    /// Every context's database.
    pub dbs: BTreeMap<Service, Db>,
    /// The SMTP server mail goes to (production-shaped tests); else the dev mailbox.
    pub smtp: Option<SmtpSink>,
    server: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL databases, given back when the app is dropped.
    pg_databases: Vec<TempPostgres>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        // Each database is given back on a thread of its own: side by side, not one by one.
        let databases = std::mem::take(&mut self.pg_databases);
        std::thread::scope(|s| {
            for database in databases {
                s.spawn(move || drop(database));
            }
        });
    }
}

pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, &[], true).await
}

/// Production-mode settings for a PostgreSQL test: RabbitMQ and Redis under a namespace of its
/// own, so concurrent tests never see each other's events or cache entries.
pub fn production_infra() -> Vec<(String, String)> {
    vec![
        ("AMQP_URL".into(), amqp_url()),
        ("REDIS_URL".into(), redis_url()),
        ("EMPORIUM_NAMESPACE".into(), namespace()),
        ("EMPORIUM_QUEUE_EXPIRY_SECS".into(), "120".into()),
    ]
}

pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)], dev_mailbox: bool) -> Option<TestApp> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut databases = BTreeMap::new();
    let mut dir = None;
    let mut pgs = Vec::new();
    let mut smtp = None;
    match backend {
        Backend::Sqlite => {
            let tmp = tempfile::tempdir().expect("tempdir");
            // Sized as the binary sizes them, so a store that needs a second connection of its
            // own pool while holding one (a deadlock on a one-connection pool) fails here.
            for service in Service::ALL {
                let name = service.name();
                let db = Db::open_embedded(tmp.path(), name, SqliteSizing::for_context(name, 5))
                    .await
                    .expect("sqlite");
                databases.insert(service, db);
            }
            dir = Some(tmp);
        }
        Backend::Postgres => {
            if !rabbitmq_reachable().await || !redis_reachable().await {
                return None;
            }
            // One database per context, as in production; created concurrently (7 of them).
            let created = futures::future::join_all(Service::ALL.map(|service| async move {
                let pg = TempPostgres::create().await?;
                let db = Db::connect(&pg.url, 5).await.expect("postgres");
                Some((service, db, pg))
            }))
            .await;
            for entry in created {
                let (service, db, pg) = entry?;
                databases.insert(service, db);
                pgs.push(pg);
            }
            pairs = production_infra();
            // Mail goes over real SMTP, as in production (unless the test names a server).
            if dev_mailbox && !extra.iter().any(|(k, _)| *k == "EMPORIUM_SMTP_URL") {
                let sink = SmtpSink::start().await?;
                pairs.push(("EMPORIUM_SMTP_URL".into(), sink.url()));
                smtp = Some(sink);
            }
        }
    }
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let settings = Settings::load(&test_source(&pairs), "127.0.0.1:0".parse().expect("addr")).expect("settings");
    let (events, cache, faults) = app::connect_infrastructure(&settings, None)
        .await
        .expect("bus and cache");
    let mailbox = DevMailbox::new();
    let wiring = Wiring {
        databases: databases.clone(),
        events,
        cache,
        faults,
        dev_mailbox: dev_mailbox.then(|| mailbox.clone()),
        migrate: true,
    };
    let app = app::build(&settings, wiring).await.expect("build app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = app.router.clone();
    let server = tokio::spawn(async move {
        let _ = platform::http::serve(listener, router, std::future::pending(), Duration::from_secs(1)).await;
    });
    Some(TestApp {
        addr,
        client: reqwest::Client::builder().build().expect("client"),
        mailbox,
        identity: app.identity.clone().expect("identity runs"),
        inventory: app.inventory.clone().expect("inventory runs"),
        db: databases[&Service::Identity].clone(),
        dbs: databases,
        smtp,
        server,
        _dir: dir,
        pg_databases: pgs,
    })
}

/// One message as delivered (dev mailbox or SMTP).
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// A user registered, verified and logged in.
pub struct LoggedIn {
    pub email: String,
    pub access: String,
    pub refresh: String,
    pub id: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// `GET path` without credentials, parsed as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// `PUT url` with a bearer token and a JSON body.
    pub async fn put_json(&self, url: &str, token: &str, body: Value) -> reqwest::Response {
        self.client
            .put(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str) -> reqwest::Response {
        self.post(
            "/api/v1/auth/register",
            json!({"email": email, "password": PASSWORD, "name": "Test User"}),
        )
        .await
    }

    /// Messages mailed to `to` so far, newest first.
    pub fn mails(&self, to: &str) -> Vec<Mail> {
        if let Some(smtp) = &self.smtp {
            return smtp
                .messages_to(to)
                .into_iter()
                .rev()
                .map(|m| Mail {
                    subject: m["subject"].as_str().unwrap_or_default().to_owned(),
                    text: m["text"].as_str().unwrap_or_default().to_owned(),
                })
                .collect();
        }
        self.mailbox
            .list(Some(to))
            .into_iter()
            .map(|m| Mail {
                subject: m.subject,
                text: m.body,
            })
            .collect()
    }

    /// Waits (up to 20 s: mail goes through the outbox, the bus and notifications' delivery
    /// worker) until at least `count` messages reached `to`; newest first.
    pub async fn wait_for_mail(&self, to: &str, count: usize) -> Vec<Mail> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mails = self.mails(to);
            if mails.len() >= count {
                return mails;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {count} message(s) to {to}, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The token in the newest message to `to` whose subject contains `subject` (the line that
    /// holds only the token), waiting for that message.
    pub async fn mailed_token_about(&self, to: &str, subject: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(mail) = self.mails(to).into_iter().find(|m| m.subject.contains(subject)) {
                return mail
                    .text
                    .lines()
                    .map(str::trim)
                    .find(|l| l.len() == 43 && !l.contains(' '))
                    .expect("token line")
                    .to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no message about {subject:?} to {to}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The newest verification token mailed to `to`.
    pub async fn mailed_token(&self, to: &str) -> String {
        self.mailed_token_about(to, "Confirm").await
    }

    pub async fn verify(&self, email: &str) {
        let token = self.mailed_token(email).await;
        let r = self.post("/api/v1/auth/verify-email", json!({"token": token})).await;
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post("/api/v1/auth/login", json!({"email": email, "password": password}))
            .await
    }

    /// Logs `email` in with the test [`PASSWORD`] and returns the access token: for a user whose
    /// role changed, which only a new login carries.
    pub async fn access_token(&self, email: &str) -> String {
        self.logged_in(email, String::new()).await.access
    }

    pub async fn signed_up(&self, email: &str) -> LoggedIn {
        let r = self.register(email).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        self.verify(email).await;
        // Sign-up answers the same for every address, without the account: ask who we are.
        let mut user = self.logged_in(email, String::new()).await;
        let me: Value = self
            .get_auth("/api/v1/users/me", &user.access)
            .await
            .json()
            .await
            .expect("json");
        user.id = me["id"].as_str().expect("id").to_owned();
        user
    }

    async fn logged_in(&self, email: &str, id: String) -> LoggedIn {
        let r = self.login(email, PASSWORD).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.expect("json");
        LoggedIn {
            email: email.into(),
            access: body["access_token"].as_str().expect("access").into(),
            refresh: body["refresh_token"].as_str().expect("refresh").into(),
            id,
        }
    }

    /// An administrator created as the CLI does, then logged in.
    pub async fn admin(&self) -> LoggedIn {
        let email = "root@example.com";
        let user = self
            .identity
            .create_admin(identity::service::Registration {
                email: email.into(),
                password: PASSWORD.into(),
                name: "Root".into(),
            })
            .await
            .expect("admin");
        self.logged_in(email, user.id.to_string()).await
    }
}
