//! The clock's older name, kept so callers move to [`crate::clock`] at their own pace.

pub use crate::clock::{now, rfc3339};
