//! Configuration: environment variables first, then an optional TOML file, then defaults.
//!
//! Every setting has one canonical name, its environment variable (`EMPORIUM_LISTEN`,
//! `DATABASE_URL`, ...). In the TOML file named by `EMPORIUM_CONFIG` the same setting is the
//! variable name without the `EMPORIUM_` prefix, in lower case (`listen = "0.0.0.0:8081"`).
//! A bad value is reported as one line naming the variable; the binary exits with code 2.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A setting that could not be read. Its `Display` is the one line printed before exiting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    pub var: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            message: message.into(),
        }
    }
}

/// Where settings come from. Lookups never echo values back in errors, because some are secrets.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
}

impl ConfigSource {
    /// Reads the process environment and, if `EMPORIUM_CONFIG` names one, the TOML file.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_pairs(std::env::vars())
    }

    /// Builds a source from explicit pairs (tests, or a CLI that overrides the environment).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: HashMap<String, String> = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let file = match env.get("EMPORIUM_CONFIG").filter(|p| !p.is_empty()) {
            Some(path) => read_toml_file(path)?,
            None => HashMap::new(),
        };
        Ok(Self { env, file })
    }

    /// Sets a value as if it came from the environment (CLI flags win over everything).
    pub fn set(&mut self, var: &str, value: impl Into<String>) {
        self.env.insert(var.to_owned(), value.into());
    }

    /// The raw text of a setting, if present and non-empty.
    pub fn raw(&self, var: &str) -> Option<&str> {
        if let Some(v) = self.env.get(var) {
            return (!v.trim().is_empty()).then_some(v.as_str());
        }
        self.file.get(&file_key(var)).map(String::as_str)
    }

    /// A typed setting with a default.
    pub fn get<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(var)?.unwrap_or(default))
    }

    /// A typed setting without a default.
    pub fn optional<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(var) {
            None => Ok(None),
            Some(text) => text
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| ConfigError::new(var, format!("invalid value ({e})"))),
        }
    }

    /// A whole number within `range`, e.g. a TTL in seconds.
    pub fn number_in(&self, var: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
        let value: u64 = self.get(var, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                var,
                format!("must be between {} and {} (got {value})", range.start(), range.end()),
            ))
        }
    }

    /// A duration given in seconds.
    pub fn seconds(
        &self,
        var: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number_in(var, default, range).map(Duration::from_secs)
    }

    /// `true/false`, `1/0`, `yes/no`, `on/off`.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.raw(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(var, "expected true or false")),
            },
        }
    }
}

mod known;
pub use known::KNOWN_SETTINGS;

/// Variables of the test suite (`EMPORIUM_TEST_POSTGRES_URL`, ...): never settings, never checked.
const UNCHECKED_PREFIXES: &[&str] = &["EMPORIUM_TEST_"];

impl ConfigSource {
    /// Refuses an `EMPORIUM_*` environment variable or a TOML key that names no setting, with
    /// the closest known name. Values are never echoed (some are secrets).
    pub fn check_names(&self) -> Result<(), ConfigError> {
        let mut unknown: Vec<&str> = self
            .env
            .keys()
            .map(String::as_str)
            .filter(|var| var.starts_with("EMPORIUM_"))
            .filter(|var| !UNCHECKED_PREFIXES.iter().any(|p| var.starts_with(p)))
            .filter(|var| !KNOWN_SETTINGS.contains(var))
            .collect();
        unknown.sort_unstable();
        if let Some(var) = unknown.first() {
            return Err(ConfigError::new(
                *var,
                format!(
                    "is not a known setting; did you mean {}? (see docs/configuration.md)",
                    closest(var, KNOWN_SETTINGS.iter().copied())
                ),
            ));
        }
        let known_keys: Vec<String> = KNOWN_SETTINGS.iter().map(|v| file_key(v)).collect();
        let mut unknown: Vec<&str> = self
            .file
            .keys()
            .map(String::as_str)
            .filter(|key| !known_keys.iter().any(|k| k == key))
            .collect();
        unknown.sort_unstable();
        if let Some(key) = unknown.first() {
            let path = self
                .env
                .get("EMPORIUM_CONFIG")
                .map_or("the configuration file", String::as_str);
            return Err(ConfigError::new(
                "EMPORIUM_CONFIG",
                format!(
                    "{path}: `{key}` is not a known setting; did you mean `{}`?",
                    closest(key, known_keys.iter().map(String::as_str))
                ),
            ));
        }
        Ok(())
    }
}

/// The candidate with the smallest edit distance to `name` (the first of equals).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> &'a str {
    candidates
        .into_iter()
        .min_by_key(|c| edit_distance(name, c))
        .unwrap_or_default()
}

/// Levenshtein distance over characters: insertions, deletions and substitutions cost 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn file_key(var: &str) -> String {
    var.strip_prefix("EMPORIUM_").unwrap_or(var).to_ascii_lowercase()
}

fn read_toml_file(path: &str) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("EMPORIUM_CONFIG", format!("cannot read {path}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigError::new("EMPORIUM_CONFIG", format!("{path} is not valid TOML: {e}")))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => {
                    return Err(ConfigError::new(
                        "EMPORIUM_CONFIG",
                        format!(
                            "{path}: key `{key}` must be a string, number or boolean, not {}",
                            other.type_str()
                        ),
                    ));
                }
            };
            Ok((key.to_ascii_lowercase(), text))
        })
        .collect()
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON when stdout is not a terminal, human-readable otherwise.
    Auto,
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            _ => Err("expected auto, json or pretty".into()),
        }
    }
}

/// `RUST_LOG`, checked now: an unparsable filter would otherwise be replaced by `info` silently.
pub fn log_filter(src: &ConfigSource) -> Result<String, ConfigError> {
    let filter: String = src.get("RUST_LOG", "info".to_owned())?;
    tracing_subscriber::EnvFilter::builder().parse(&filter).map_err(|e| {
        ConfigError::new(
            "RUST_LOG",
            format!("is not a valid log filter ({e}); e.g. `info` or `info,sqlx=warn`"),
        )
    })?;
    Ok(filter)
}

/// Settings every process has, whatever contexts it runs.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub db_max_connections: u32,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub otlp_endpoint: Option<String>,
    pub public_url: String,
    /// Proxies in front of this process that append to `X-Forwarded-For`; 0: ignore the header.
    pub trusted_proxy_hops: usize,
    /// The bearer token `/metrics` asks for (`EMPORIUM_METRICS_TOKEN`); without one it is not served.
    pub metrics_token: Option<String>,
    /// The built-in trace and log console (`EMPORIUM_CONSOLE*`).
    pub console: crate::console::ConsoleSettings,
}

impl PlatformConfig {
    pub fn from_source(src: &ConfigSource, default_listen: SocketAddr) -> Result<Self, ConfigError> {
        let database_url: Option<String> = src.raw("DATABASE_URL").map(str::to_owned);
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"))
        {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }
        let listen = src.get("EMPORIUM_LISTEN", default_listen)?;
        let public_url: String = src.get("EMPORIUM_PUBLIC_URL", format!("http://{listen}"))?;
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "EMPORIUM_PUBLIC_URL",
                "must be an absolute http:// or https:// URL",
            ));
        }
        Ok(Self {
            listen,
            data_dir: src.get("EMPORIUM_DATA_DIR", PathBuf::from("data"))?,
            database_url,
            db_max_connections: src.number_in("EMPORIUM_DB_MAX_CONNECTIONS", 10, 1..=500)? as u32,
            max_body_bytes: src.number_in("EMPORIUM_MAX_BODY_BYTES", 1024 * 1024, 1024..=64 * 1024 * 1024)? as usize,
            request_timeout: Duration::from_millis(src.number_in(
                "EMPORIUM_REQUEST_TIMEOUT_MS",
                30_000,
                100..=600_000,
            )?),
            shutdown_grace: src.seconds("EMPORIUM_SHUTDOWN_GRACE_SECS", 25, 0..=600)?,
            log_format: src.get("EMPORIUM_LOG_FORMAT", LogFormat::Auto)?,
            log_filter: log_filter(src)?,
            otlp_endpoint: src.raw("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned),
            public_url: public_url.trim_end_matches('/').to_owned(),
            trusted_proxy_hops: trusted_proxy_hops(src)?,
            metrics_token: metrics_token(src),
            console: crate::console::ConsoleSettings::from_source(src)?,
        })
    }
}

/// `EMPORIUM_METRICS_TOKEN`, the scrape token `/metrics` asks for.
pub fn metrics_token(src: &ConfigSource) -> Option<String> {
    src.raw("EMPORIUM_METRICS_TOKEN").map(|t| t.trim().to_owned())
}

/// `EMPORIUM_TRUSTED_PROXY_HOPS`, the number of proxies in front of the process whose
/// `X-Forwarded-For` entries are believed. Without it, `EMPORIUM_TRUST_FORWARDED_FOR=true`
/// means one proxy (the older setting; it used to believe the leftmost entry, which the client
/// writes).
pub fn trusted_proxy_hops(src: &ConfigSource) -> Result<usize, ConfigError> {
    match src.optional::<u64>("EMPORIUM_TRUSTED_PROXY_HOPS")? {
        Some(hops) if hops <= 10 => Ok(hops as usize),
        Some(hops) => Err(ConfigError::new(
            "EMPORIUM_TRUSTED_PROXY_HOPS",
            format!("must be between 0 and 10 (got {hops})"),
        )),
        None => Ok(usize::from(src.flag("EMPORIUM_TRUST_FORWARDED_FOR", false)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(pairs: &[(&str, &str)]) -> ConfigSource {
        ConfigSource::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("source")
    }

    fn default_listen() -> SocketAddr {
        "127.0.0.1:8080".parse().expect("addr")
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cfg = PlatformConfig::from_source(&src(&[]), default_listen()).expect("config");
        assert_eq!(cfg.listen, default_listen());
        assert_eq!(cfg.max_body_bytes, 1024 * 1024);
        assert_eq!(cfg.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err =
            PlatformConfig::from_source(&src(&[("EMPORIUM_LISTEN", "nope")]), default_listen()).expect_err("must fail");
        assert_eq!(err.var, "EMPORIUM_LISTEN");
        let err = PlatformConfig::from_source(&src(&[("EMPORIUM_DB_MAX_CONNECTIONS", "0")]), default_listen())
            .expect_err("must fail");
        assert_eq!(err.var, "EMPORIUM_DB_MAX_CONNECTIONS");
        assert!(err.to_string().contains("between 1 and 500"));
    }

    #[test]
    fn database_url_must_name_a_supported_backend() {
        let err = PlatformConfig::from_source(&src(&[("DATABASE_URL", "mysql://x")]), default_listen())
            .expect_err("must fail");
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains("mysql://x"), "values are never echoed");
    }

    #[test]
    fn toml_file_fills_gaps_and_environment_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("emporium.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nmax_body_bytes = 4096\n").expect("write");
        let path = path.to_string_lossy().to_string();
        let s = src(&[("EMPORIUM_CONFIG", path.as_str()), ("EMPORIUM_MAX_BODY_BYTES", "2048")]);
        let cfg = PlatformConfig::from_source(&s, default_listen()).expect("config");
        assert_eq!(cfg.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(cfg.max_body_bytes, 2048);
    }

    #[test]
    fn proxy_hops_default_to_the_older_flag() {
        assert_eq!(trusted_proxy_hops(&src(&[])).expect("hops"), 0);
        assert_eq!(
            trusted_proxy_hops(&src(&[("EMPORIUM_TRUST_FORWARDED_FOR", "true")])).expect("hops"),
            1
        );
        let both = src(&[
            ("EMPORIUM_TRUST_FORWARDED_FOR", "true"),
            ("EMPORIUM_TRUSTED_PROXY_HOPS", "2"),
        ]);
        assert_eq!(trusted_proxy_hops(&both).expect("hops"), 2);
        let err = trusted_proxy_hops(&src(&[("EMPORIUM_TRUSTED_PROXY_HOPS", "11")])).expect_err("too many");
        assert_eq!(err.var, "EMPORIUM_TRUSTED_PROXY_HOPS");
    }

    #[test]
    fn a_misspelt_variable_is_refused_with_the_closest_name() {
        let err = src(&[("EMPORIUM_LISTN", "127.0.0.1:1")])
            .check_names()
            .expect_err("unknown");
        assert_eq!(err.var, "EMPORIUM_LISTN");
        assert!(err.message.contains("EMPORIUM_LISTEN"), "{err}");
        assert!(!err.to_string().contains("127.0.0.1:1"), "values are never echoed");
        let err = src(&[("EMPORIUM_RATE_LIMIT_PER_MINUT", "5")])
            .check_names()
            .expect_err("unknown");
        assert!(err.message.contains("EMPORIUM_RATE_LIMIT_PER_MINUTE"), "{err}");
        // Known names, the test suite's own variables and other programs' variables pass.
        src(&[
            ("EMPORIUM_LISTEN", "127.0.0.1:1"),
            ("EMPORIUM_TEST_POSTGRES_URL", "postgres://x"),
            ("HOME", "/root"),
            ("LISTN", "x"),
        ])
        .check_names()
        .expect("known");
    }

    #[test]
    fn a_misspelt_toml_key_is_refused_with_the_closest_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("emporium.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nlistn = \"0.0.0.0:9001\"\n").expect("write");
        let path = path.to_string_lossy().to_string();
        let err = src(&[("EMPORIUM_CONFIG", path.as_str())])
            .check_names()
            .expect_err("unknown key");
        assert_eq!(err.var, "EMPORIUM_CONFIG");
        assert!(
            err.message.contains("`listn`") && err.message.contains("`listen`"),
            "{err}"
        );
        std::fs::write(
            dir.path().join("emporium.toml"),
            "listen = \"0.0.0.0:9000\"\ndatabase_url = \"sqlite:x\"\n",
        )
        .expect("write");
        src(&[("EMPORIUM_CONFIG", path.as_str())])
            .check_names()
            .expect("known keys");
    }

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("listen", "listen"), 0);
        assert_eq!(edit_distance("listn", "listen"), 1);
        assert_eq!(edit_distance("lsiten", "listen"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest("EMPORIUM_HTST", ["EMPORIUM_HSTS", "EMPORIUM_HOST_NAME"]),
            "EMPORIUM_HSTS"
        );
    }

    #[test]
    fn an_unparsable_log_filter_is_refused() {
        let err = PlatformConfig::from_source(&src(&[("RUST_LOG", "info,sqlx=loud")]), default_listen())
            .expect_err("must fail");
        assert_eq!(err.var, "RUST_LOG");
        PlatformConfig::from_source(&src(&[("RUST_LOG", "warn,emporium=debug")]), default_listen()).expect("valid");
    }

    #[test]
    fn flags_accept_common_spellings_only() {
        assert!(src(&[("X", "yes")]).flag("X", false).expect("flag"));
        assert!(!src(&[("X", "off")]).flag("X", true).expect("flag"));
        assert_eq!(src(&[("X", "maybe")]).flag("X", true).expect_err("bad").var, "X");
    }
}
