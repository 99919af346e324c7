//! One clock for the whole platform, so domain rules take `now` as an argument and tests can move it.

use time::OffsetDateTime;

/// The current instant in UTC. Every timestamp Emporium stores is UTC, which also keeps SQLite's
/// text timestamps ordered correctly when compared in SQL.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The current instant cut to the whole second: what contexts that compare stored timestamps in
/// SQL store, so SQLite's RFC 3339 text (which drops trailing zeros of a fraction) sorts as time does.
pub fn now_to_second() -> OffsetDateTime {
    to_second(now())
}

/// `t` without its fraction of a second.
pub fn to_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `t` as milliseconds since the Unix epoch (saturating): for due times kept as integers, and
/// expiry times that replicas compare.
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 serialisation for API timestamps.
pub use time::serde::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_the_second_drops_only_the_fraction() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.678 UTC);
        assert_eq!(to_second(t), time::macros::datetime!(2026-01-02 03:04:05 UTC));
        assert_eq!(now_to_second().nanosecond(), 0);
        assert!(now() - now_to_second() < time::Duration::SECOND);
    }

    #[test]
    fn unix_milliseconds_drop_the_rest_of_the_millisecond() {
        assert_eq!(unix_ms(time::macros::datetime!(1970-01-01 00:00:01.234567 UTC)), 1_234);
        assert_eq!(unix_ms(OffsetDateTime::UNIX_EPOCH), 0);
    }
}
