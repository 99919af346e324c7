//! Fault injection: runtime flags that make parts of the system fail or slow down on purpose, so
//! operators (and tests) can watch it degrade as designed: alerts fire, sagas compensate, reads
//! fall back to the database.
//!
//! Every flag is off by default. A process reads them through a cheap [`Faults`] handle: each flag
//! is an atomic (the catalog product name sits behind a lock only read while that flag is on), so
//! the hot path never waits on Redis. In embedded mode the handle is the only copy; in production
//! the flags live in Redis under `<namespace>:faults` and every replica refreshes its copy once a
//! second, so a change made through one replica reaches all of them within about a second.
//! Processes started without fault injection (`EMPORIUM_FAULT_INJECTION=off`, the default for
//! `emporium serve`) get [`Faults::disabled`]: every flag reads as off and cannot be set.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::FieldError;
use crate::sync::{lock, read, write};

/// The longest latency a flag may add (the request timeout's default).
pub const MAX_LATENCY_MS: u32 = 30_000;
/// How often a replica re-reads the shared flags from Redis.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Every flag's name, as in `faults_active{flag}` and the admin API.
pub const FLAG_NAMES: [&str; 7] = [
    "payment_failure_percent",
    "payment_latency_ms",
    "reservation_failure_percent",
    "catalog_latency",
    "cache_outage",
    "smtp_failure",
    "event_publish_delay_ms",
];

/// One product made slow: catalog reads of it (by id, slug or SKU) wait `ms` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CatalogLatency {
    /// The product's id, slug or SKU.
    pub product: String,
    pub ms: u32,
}

/// The flags, all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaultFlags {
    /// Share of payment authorizations the provider declines (0–100).
    pub payment_failure_percent: u8,
    /// Added to every payment provider call (≤ 30000).
    pub payment_latency_ms: u32,
    /// Share of stock reservations inventory refuses (0–100).
    pub reservation_failure_percent: u8,
    /// One slow product, or none.
    pub catalog_latency: Option<CatalogLatency>,
    /// The cache acts unreachable: every read misses, writes are dropped.
    pub cache_outage: bool,
    /// Mail delivery fails as an unreachable SMTP server would (temporarily: retried).
    pub smtp_failure: bool,
    /// The outbox relays wait this long before publishing each batch (≤ 30000).
    pub event_publish_delay_ms: u32,
}

/// The answer of `/api/v1/admin/faults` (GET and PUT): the flags now, and which of them are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FaultsView {
    #[serde(flatten)]
    pub flags: FaultFlags,
    /// The names of the flags that are on (empty: the system behaves normally).
    pub active: Vec<String>,
    /// Where the flags live: `in-process` (embedded mode) or `redis` (shared by every replica).
    pub backend: String,
}

impl FaultsView {
    /// `flags` as held by `faults`.
    pub fn new(flags: FaultFlags, faults: &Faults) -> Self {
        Self {
            active: flags.active().into_iter().map(str::to_owned).collect(),
            flags,
            backend: faults.backend_name().to_owned(),
        }
    }
}

/// A `PUT /api/v1/admin/faults` body: the whole set of flags (omitted ones are off). Numbers are
/// read wide so that out-of-range values get a message naming the field rather than a parse error.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FaultFlagsInput {
    pub payment_failure_percent: i64,
    pub payment_latency_ms: i64,
    pub reservation_failure_percent: i64,
    pub catalog_latency: Option<CatalogLatencyInput>,
    pub cache_outage: bool,
    pub smtp_failure: bool,
    pub event_publish_delay_ms: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogLatencyInput {
    pub product: String,
    pub ms: i64,
}

fn percent(field: &str, value: i64, errors: &mut Vec<FieldError>) -> u8 {
    match u8::try_from(value) {
        Ok(p) if p <= 100 => p,
        _ => {
            errors.push(FieldError::new(field, "must be a percentage from 0 to 100"));
            0
        }
    }
}

fn millis(field: &str, value: i64, errors: &mut Vec<FieldError>) -> u32 {
    match u32::try_from(value) {
        Ok(ms) if ms <= MAX_LATENCY_MS => ms,
        _ => {
            errors.push(FieldError::new(
                field,
                format!("must be milliseconds from 0 to {MAX_LATENCY_MS}"),
            ));
            0
        }
    }
}

/// Checks a requested set of flags; every invalid field is named.
pub fn validate(input: &FaultFlagsInput) -> Result<FaultFlags, Vec<FieldError>> {
    let mut errors = Vec::new();
    let flags = FaultFlags {
        payment_failure_percent: percent("payment_failure_percent", input.payment_failure_percent, &mut errors),
        payment_latency_ms: millis("payment_latency_ms", input.payment_latency_ms, &mut errors),
        reservation_failure_percent: percent(
            "reservation_failure_percent",
            input.reservation_failure_percent,
            &mut errors,
        ),
        catalog_latency: match &input.catalog_latency {
            None => None,
            Some(c) => {
                let product = c.product.trim();
                if product.is_empty() || product.len() > 200 {
                    errors.push(FieldError::new(
                        "catalog_latency.product",
                        "must name the product by id, slug or SKU (1-200 characters)",
                    ));
                }
                let ms = millis("catalog_latency.ms", c.ms, &mut errors);
                // A zero delay is the same as no flag: keep the state canonical.
                (ms > 0).then(|| CatalogLatency {
                    product: product.to_owned(),
                    ms,
                })
            }
        },
        cache_outage: input.cache_outage,
        smtp_failure: input.smtp_failure,
        event_publish_delay_ms: millis("event_publish_delay_ms", input.event_publish_delay_ms, &mut errors),
    };
    if errors.is_empty() { Ok(flags) } else { Err(errors) }
}

impl FaultFlags {
    /// Whether the named flag (one of [`FLAG_NAMES`]) is on.
    pub fn is_active(&self, flag: &str) -> bool {
        match flag {
            "payment_failure_percent" => self.payment_failure_percent > 0,
            "payment_latency_ms" => self.payment_latency_ms > 0,
            "reservation_failure_percent" => self.reservation_failure_percent > 0,
            "catalog_latency" => self.catalog_latency.as_ref().is_some_and(|c| c.ms > 0),
            "cache_outage" => self.cache_outage,
            "smtp_failure" => self.smtp_failure,
            "event_publish_delay_ms" => self.event_publish_delay_ms > 0,
            _ => false,
        }
    }

    /// The flags that are on.
    pub fn active(&self) -> Vec<&'static str> {
        FLAG_NAMES.into_iter().filter(|f| self.is_active(f)).collect()
    }

    fn value_text(&self, flag: &str) -> String {
        match flag {
            "payment_failure_percent" => format!("{}%", self.payment_failure_percent),
            "payment_latency_ms" => format!("{} ms", self.payment_latency_ms),
            "reservation_failure_percent" => format!("{}%", self.reservation_failure_percent),
            "catalog_latency" => match &self.catalog_latency {
                Some(c) => format!("{} ms for {}", c.ms, c.product),
                None => "off".into(),
            },
            "cache_outage" => on_off(self.cache_outage).into(),
            "smtp_failure" => on_off(self.smtp_failure).into(),
            "event_publish_delay_ms" => format!("{} ms", self.event_publish_delay_ms),
            _ => String::new(),
        }
    }

    /// What changed from `before` to `self`, one `flag: old -> new` entry per changed flag (for
    /// the audit log and the WARN line).
    pub fn changes_from(&self, before: &FaultFlags) -> Vec<String> {
        FLAG_NAMES
            .into_iter()
            .filter_map(|flag| {
                let (old, new) = (before.value_text(flag), self.value_text(flag));
                (old != new).then(|| format!("{flag}: {old} -> {new}"))
            })
            .collect()
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Whether a draw of `roll` (0–99) falls within `percent`: 0 never, 100 always.
pub fn hits(percent: u8, roll: u8) -> bool {
    roll < percent
}

/// A uniform number in 0..100 from a per-thread xorshift generator: cheap, and good enough to
/// spread injected failures (this is no security boundary).
fn roll() -> u8 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % 100) as u8
    })
}

/// Why flags could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum FaultsError {
    #[error(
        "fault injection is off in this process; start it with EMPORIUM_FAULT_INJECTION=on (the default in embedded mode and `emporium dev`)"
    )]
    Disabled,
    #[error("the shared fault flags in Redis could not be written: {0}")]
    Unavailable(String),
}

impl From<FaultsError> for crate::Problem {
    fn from(e: FaultsError) -> Self {
        match e {
            FaultsError::Disabled => crate::Problem::new(
                axum::http::StatusCode::CONFLICT,
                "fault-injection-disabled",
                "Fault injection is disabled",
            )
            .with_detail(e.to_string()),
            FaultsError::Unavailable(_) => crate::Problem::unavailable(e.to_string()).with_retry_after(1),
        }
    }
}

/// The process's view of the flags. Cloning is cheap; every clone sees the same flags.
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("enabled", &self.inner.enabled)
            .field("flags", &self.current())
            .finish()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Self::disabled()
    }
}

struct Inner {
    enabled: bool,
    payment_failure_percent: AtomicU8,
    payment_latency_ms: AtomicU32,
    reservation_failure_percent: AtomicU8,
    catalog_latency_on: AtomicBool,
    catalog_latency: RwLock<Option<CatalogLatency>>,
    cache_outage: AtomicBool,
    smtp_failure: AtomicBool,
    event_publish_delay_ms: AtomicU32,
    /// Serialises applying a new set (the atomics are written together, the WARN logged once).
    applying: Mutex<()>,
    shared: Option<Shared>,
}

struct Shared {
    connection: ConnectionManager,
    key: String,
    last_error_log: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url} for the fault flags: {source}")]
pub struct FaultsConnectError {
    url: String,
    source: redis::RedisError,
}

impl Faults {
    fn with(enabled: bool, shared: Option<Shared>) -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled,
                payment_failure_percent: AtomicU8::new(0),
                payment_latency_ms: AtomicU32::new(0),
                reservation_failure_percent: AtomicU8::new(0),
                catalog_latency_on: AtomicBool::new(false),
                catalog_latency: RwLock::new(None),
                cache_outage: AtomicBool::new(false),
                smtp_failure: AtomicBool::new(false),
                event_publish_delay_ms: AtomicU32::new(0),
                applying: Mutex::new(()),
                shared,
            }),
        }
    }

    /// Fault injection off: every flag reads as off, and setting them is refused.
    pub fn disabled() -> Self {
        Self::with(false, None)
    }

    /// Flags held in this process only (embedded mode: every context shares the handle).
    pub fn in_process() -> Self {
        describe_metrics();
        let faults = Self::with(true, None);
        faults.publish_gauges(&FaultFlags::default());
        faults
    }

    /// Flags shared through Redis under `<namespace>:faults`, refreshed every second.
    pub async fn redis(url: &str, namespace: &str) -> Result<Self, FaultsConnectError> {
        describe_metrics();
        let err = |source| FaultsConnectError {
            url: crate::db::redact_url(url),
            source,
        };
        let connection = crate::cache::redis_connection(url, REDIS_TIMEOUT, 2)
            .await
            .map_err(err)?;
        let faults = Self::with(
            true,
            Some(Shared {
                connection,
                key: format!("{namespace}:faults"),
                last_error_log: Mutex::new(None),
            }),
        );
        faults.publish_gauges(&FaultFlags::default());
        faults.refresh().await;
        spawn_refresher(Arc::downgrade(&faults.inner));
        Ok(faults)
    }

    /// Whether flags can be set in this process.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Where the flags live: `off`, `in-process` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match (self.inner.enabled, &self.inner.shared) {
            (false, _) => "off",
            (true, None) => "in-process",
            (true, Some(_)) => "redis",
        }
    }

    /// This process's copy of the flags.
    pub fn current(&self) -> FaultFlags {
        let i = &self.inner;
        FaultFlags {
            payment_failure_percent: i.payment_failure_percent.load(Ordering::Relaxed),
            payment_latency_ms: i.payment_latency_ms.load(Ordering::Relaxed),
            reservation_failure_percent: i.reservation_failure_percent.load(Ordering::Relaxed),
            catalog_latency: read(&i.catalog_latency).clone(),
            cache_outage: i.cache_outage.load(Ordering::Relaxed),
            smtp_failure: i.smtp_failure.load(Ordering::Relaxed),
            event_publish_delay_ms: i.event_publish_delay_ms.load(Ordering::Relaxed),
        }
    }

    /// The flags as the shared store holds them now (re-read from Redis; else this copy).
    pub async fn fetch(&self) -> FaultFlags {
        self.refresh().await;
        self.current()
    }

    /// Replaces every flag; answers the flags as they were before. In production the new set is
    /// written to Redis first (other replicas pick it up within a second), then applied here.
    pub async fn set(&self, flags: FaultFlags) -> Result<FaultFlags, FaultsError> {
        if !self.inner.enabled {
            return Err(FaultsError::Disabled);
        }
        let before = match &self.inner.shared {
            None => self.current(),
            Some(shared) => {
                let json = serde_json::to_string(&flags).map_err(|e| FaultsError::Unavailable(e.to_string()))?;
                let mut conn = shared.connection.clone();
                let previous = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("GETSET")
                        .arg(&shared.key)
                        .arg(json)
                        .query_async::<Option<String>>(&mut conn),
                )
                .await
                .map_err(|_| FaultsError::Unavailable("no answer from Redis".into()))?
                .map_err(|e| FaultsError::Unavailable(e.to_string()))?;
                previous.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default()
            }
        };
        self.apply(&flags);
        Ok(before)
    }

    /// Makes `flags` this process's copy; logs a WARN and updates the gauges when they changed.
    fn apply(&self, flags: &FaultFlags) {
        let _guard = lock(&self.inner.applying);
        let before = self.current();
        if before == *flags {
            return;
        }
        let i = &self.inner;
        i.payment_failure_percent
            .store(flags.payment_failure_percent, Ordering::Relaxed);
        i.payment_latency_ms.store(flags.payment_latency_ms, Ordering::Relaxed);
        i.reservation_failure_percent
            .store(flags.reservation_failure_percent, Ordering::Relaxed);
        *write(&i.catalog_latency) = flags.catalog_latency.clone();
        i.catalog_latency_on
            .store(flags.catalog_latency.is_some(), Ordering::Relaxed);
        i.cache_outage.store(flags.cache_outage, Ordering::Relaxed);
        i.smtp_failure.store(flags.smtp_failure, Ordering::Relaxed);
        i.event_publish_delay_ms
            .store(flags.event_publish_delay_ms, Ordering::Relaxed);
        self.publish_gauges(flags);
        let active = flags.active();
        let changes = flags.changes_from(&before).join(", ");
        if active.is_empty() {
            tracing::warn!(changes, "fault injection: every flag is off again");
        } else {
            tracing::warn!(active = %active.join(","), changes, "fault injection flags changed: this process now fails or slows down on purpose");
        }
    }

    fn publish_gauges(&self, flags: &FaultFlags) {
        for flag in FLAG_NAMES {
            metrics::gauge!("faults_active", "flag" => flag).set(if flags.is_active(flag) { 1.0 } else { 0.0 });
        }
    }

    /// Re-reads the shared flags (no-op without Redis). On a Redis error the last copy stays.
    async fn refresh(&self) {
        let Some(shared) = &self.inner.shared else { return };
        let mut conn = shared.connection.clone();
        let result = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("GET")
                .arg(&shared.key)
                .query_async::<Option<String>>(&mut conn),
        )
        .await;
        match result {
            Ok(Ok(None)) => self.apply(&FaultFlags::default()),
            Ok(Ok(Some(json))) => match serde_json::from_str::<FaultFlags>(&json) {
                Ok(flags) => self.apply(&flags),
                Err(e) => shared.log_error(&format!("{} holds no valid flags: {e}", shared.key)),
            },
            Ok(Err(e)) => shared.log_error(&e.to_string()),
            Err(_) => shared.log_error("no answer from Redis"),
        }
    }

    // ---- what the contexts ask on their hot paths ---------------------------------------------

    /// Whether this payment authorization should be declined (draws against the failure rate).
    pub fn payment_should_fail(&self) -> bool {
        let p = self.inner.payment_failure_percent.load(Ordering::Relaxed);
        p > 0 && hits(p, roll())
    }

    /// How long a payment provider call should be held back.
    pub fn payment_latency(&self) -> Option<Duration> {
        millis_to_delay(self.inner.payment_latency_ms.load(Ordering::Relaxed))
    }

    /// Whether this stock reservation should be refused.
    pub fn reservation_should_fail(&self) -> bool {
        let p = self.inner.reservation_failure_percent.load(Ordering::Relaxed);
        p > 0 && hits(p, roll())
    }

    /// The delay for reading the product known by any of `names` (id, slug, SKU), if it is the
    /// slow one.
    /// Whether some product is to be slowed at all (a cheap check before naming one).
    pub fn catalog_latency_on(&self) -> bool {
        self.inner.catalog_latency_on.load(Ordering::Relaxed)
    }

    pub fn catalog_latency_for(&self, names: &[&str]) -> Option<Duration> {
        if !self.inner.catalog_latency_on.load(Ordering::Relaxed) {
            return None;
        }
        let slow = read(&self.inner.catalog_latency);
        let slow = slow.as_ref()?;
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&slow.product))
            .then(|| Duration::from_millis(u64::from(slow.ms)))
    }

    /// Whether the cache should act unreachable.
    pub fn cache_outage(&self) -> bool {
        self.inner.cache_outage.load(Ordering::Relaxed)
    }

    /// Whether mail delivery should fail.
    pub fn smtp_failure(&self) -> bool {
        self.inner.smtp_failure.load(Ordering::Relaxed)
    }

    /// How long the outbox relay should wait before publishing a batch.
    pub fn event_publish_delay(&self) -> Option<Duration> {
        millis_to_delay(self.inner.event_publish_delay_ms.load(Ordering::Relaxed))
    }
}

impl Shared {
    fn log_error(&self, error: &str) {
        let mut last = lock(&self.last_error_log);
        if last.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(%error, "reading the shared fault flags failed; keeping this process's copy");
        }
    }
}

fn millis_to_delay(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(u64::from(ms)))
}

/// Re-reads the shared flags every second until the handle is dropped.
fn spawn_refresher(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            Faults { inner }.refresh().await;
        }
    });
}

fn describe_metrics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(
            "faults_active",
            "1 while a fault-injection flag is on in this process (by flag), else 0."
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> FaultFlagsInput {
        serde_json::from_value(json).expect("input")
    }

    #[test]
    fn an_empty_body_turns_everything_off() {
        assert_eq!(validate(&input(serde_json::json!({}))), Ok(FaultFlags::default()));
        assert!(FaultFlags::default().active().is_empty());
    }

    #[test]
    fn valid_flags_pass_and_report_themselves_active() {
        let flags = validate(&input(serde_json::json!({
            "payment_failure_percent": 50, "payment_latency_ms": 200, "reservation_failure_percent": 100,
            "catalog_latency": {"product": " desk-lamp ", "ms": 800}, "cache_outage": true,
            "smtp_failure": true, "event_publish_delay_ms": 30000
        })))
        .expect("valid");
        assert_eq!(flags.payment_failure_percent, 50);
        assert_eq!(
            flags.catalog_latency,
            Some(CatalogLatency {
                product: "desk-lamp".into(),
                ms: 800
            })
        );
        assert_eq!(flags.active(), FLAG_NAMES.to_vec());
    }

    #[test]
    fn out_of_range_values_name_their_fields() {
        let errors = validate(&input(serde_json::json!({
            "payment_failure_percent": 150, "payment_latency_ms": -1, "reservation_failure_percent": -5,
            "catalog_latency": {"product": "  ", "ms": 30001}, "event_publish_delay_ms": 99999999999_i64
        })))
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "payment_failure_percent",
                "payment_latency_ms",
                "reservation_failure_percent",
                "catalog_latency.product",
                "catalog_latency.ms",
                "event_publish_delay_ms"
            ]
        );
        assert!(errors[0].message.contains("0 to 100"), "{errors:?}");
    }

    #[test]
    fn a_zero_catalog_delay_is_no_flag() {
        let flags = validate(&input(
            serde_json::json!({"catalog_latency": {"product": "x", "ms": 0}}),
        ))
        .expect("ok");
        assert_eq!(flags.catalog_latency, None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_value::<FaultFlagsInput>(serde_json::json!({"payment_fail": 5})).is_err());
    }

    /// The admin pages read this answer back: the flags sit flat beside `active` and `backend`.
    #[test]
    fn the_view_is_flat_on_the_wire_and_reads_back() {
        let flags = FaultFlags {
            smtp_failure: true,
            catalog_latency: Some(CatalogLatency {
                product: "desk-lamp".into(),
                ms: 800,
            }),
            ..FaultFlags::default()
        };
        let view = FaultsView::new(flags, &Faults::disabled());
        let wire = serde_json::to_value(&view).expect("serialise");
        assert_eq!(
            wire,
            serde_json::json!({
                "payment_failure_percent": 0, "payment_latency_ms": 0, "reservation_failure_percent": 0,
                "catalog_latency": {"product": "desk-lamp", "ms": 800}, "cache_outage": false,
                "smtp_failure": true, "event_publish_delay_ms": 0,
                "active": ["catalog_latency", "smtp_failure"], "backend": "off"
            })
        );
        assert_eq!(serde_json::from_value::<FaultsView>(wire).expect("read back"), view);
    }

    #[test]
    fn changes_name_each_changed_flag_once() {
        let before = FaultFlags {
            smtp_failure: true,
            ..FaultFlags::default()
        };
        let after = FaultFlags {
            payment_failure_percent: 50,
            ..FaultFlags::default()
        };
        assert_eq!(
            after.changes_from(&before),
            ["payment_failure_percent: 0% -> 50%", "smtp_failure: on -> off"]
        );
        assert!(after.changes_from(&after).is_empty());
    }

    #[test]
    fn draws_hit_within_the_rate() {
        assert!((0..100).all(|r| !hits(0, r)));
        assert!((0..100).all(|r| hits(100, r)));
        assert_eq!((0..100).filter(|r| hits(30, *r)).count(), 30);
        let rolls: Vec<u8> = (0..10_000).map(|_| roll()).collect();
        assert!(rolls.iter().all(|r| *r < 100));
        let low = rolls.iter().filter(|r| **r < 50).count();
        assert!((4_500..5_500).contains(&low), "{low} of 10000 rolls below 50");
    }

    #[tokio::test]
    async fn a_disabled_handle_reads_off_and_refuses_changes() {
        let faults = Faults::disabled();
        assert!(matches!(
            faults
                .set(FaultFlags {
                    cache_outage: true,
                    ..FaultFlags::default()
                })
                .await,
            Err(FaultsError::Disabled)
        ));
        assert!(!faults.cache_outage());
        assert!(!faults.payment_should_fail());
    }

    #[tokio::test]
    async fn in_process_flags_take_effect_at_once_for_every_clone() {
        let faults = Faults::in_process();
        let other = faults.clone();
        let before = faults
            .set(FaultFlags {
                payment_failure_percent: 100,
                payment_latency_ms: 20,
                catalog_latency: Some(CatalogLatency {
                    product: "Desk-Lamp".into(),
                    ms: 300,
                }),
                event_publish_delay_ms: 5,
                ..FaultFlags::default()
            })
            .await
            .expect("set");
        assert_eq!(before, FaultFlags::default());
        assert!(other.payment_should_fail());
        assert!(!other.reservation_should_fail());
        assert_eq!(other.payment_latency(), Some(Duration::from_millis(20)));
        assert_eq!(
            other.catalog_latency_for(&["0190-id", "desk-lamp"]),
            Some(Duration::from_millis(300))
        );
        assert_eq!(other.catalog_latency_for(&["other"]), None);
        assert_eq!(other.event_publish_delay(), Some(Duration::from_millis(5)));
        faults.set(FaultFlags::default()).await.expect("clear");
        assert!(!other.payment_should_fail());
        assert_eq!(other.catalog_latency_for(&["desk-lamp"]), None);
    }
}
