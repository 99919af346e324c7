//! One clock for the whole platform, so domain rules take `now` as an argument and tests can move it.

use time::OffsetDateTime;

/// The current instant in UTC. Every timestamp Emporium stores is UTC, which also keeps SQLite's
/// text timestamps ordered correctly when compared in SQL.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// RFC 3339 serialisation for API timestamps.
pub use time::serde::rfc3339;
