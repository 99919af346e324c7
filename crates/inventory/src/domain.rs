//! Inventory's domain rules as plain types and functions: no I/O, unit-tested here.
//!
//! The store enforces the arithmetic atomically in SQL (conditional updates); these functions
//! state the same rules so the service can validate input up front, explain a refusal, and decide
//! which events a change causes.

use platform::FieldError;

/// Most units one adjustment or one reservation line may move.
pub const MAX_ADJUSTMENT_QTY: i64 = 1_000_000;
pub const MAX_LINE_QTY: i64 = 10_000;
pub const MAX_LINES: usize = 100;
pub const MAX_BATCH_SKUS: usize = 100;
pub const MIN_TTL_SECS: u64 = 30;
pub const MAX_TTL_SECS: u64 = 86_400;
pub const MAX_REASON_CHARS: usize = 500;
pub const MAX_REFERENCE_CHARS: usize = 100;
pub const MAX_THRESHOLD: i64 = 1_000_000;
pub use contracts::kernel::MAX_IDEMPOTENCY_KEY_CHARS;

/// The SKU and the reservation id are the kernel's: catalog, cart and ordering name the same
/// stock with them.
pub use contracts::kernel::{ReservationId, Sku};

/// available = on_hand − reserved.
pub fn available(on_hand: i64, reserved: i64) -> i64 {
    on_hand - reserved
}

/// True when a change moves a SKU from "not low" (available above its threshold) to "low"
/// (available at or below it). Staying low, or recovering, is not a crossing. Covers changes of the
/// threshold itself as well as of the units.
pub fn became_low(before_available: i64, before_threshold: i64, after_available: i64, after_threshold: i64) -> bool {
    before_available > before_threshold && after_available <= after_threshold
}

pub fn is_low(available: i64, threshold: i64) -> bool {
    available <= threshold
}

// ---------------------------------------------------------------------------------------------
// Adjustments
// ---------------------------------------------------------------------------------------------

pub use contracts::api::inventory::{AdjustmentKind, MovementKind, ReservationState};

/// What an adjustment kind means for the stock.
pub trait AdjustmentRules {
    /// The signed change to on_hand, or what is wrong with `quantity`.
    fn delta(self, quantity: i64) -> Result<i64, String>;
    /// The ledger entry it makes.
    fn movement(self) -> MovementKind;
}

impl AdjustmentRules for AdjustmentKind {
    fn delta(self, quantity: i64) -> Result<i64, String> {
        match self {
            Self::Restock | Self::Damage if quantity <= 0 => Err("must be greater than 0".into()),
            Self::Correction if quantity == 0 => Err("must not be 0".into()),
            _ if quantity.abs() > MAX_ADJUSTMENT_QTY => Err(format!("must be at most {MAX_ADJUSTMENT_QTY} units")),
            Self::Restock | Self::Correction => Ok(quantity),
            Self::Damage => Ok(-quantity),
        }
    }

    fn movement(self) -> MovementKind {
        match self {
            Self::Restock => MovementKind::Restock,
            Self::Damage => MovementKind::Damage,
            Self::Correction => MovementKind::Correction,
        }
    }
}

/// Why an adjustment cannot apply to the current stock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdjustmentRefused {
    #[error("on_hand would become {new_on_hand}, below zero")]
    Negative { new_on_hand: i64 },
    #[error("on_hand would become {new_on_hand}, below the {reserved} units reserved")]
    BelowReserved { new_on_hand: i64, reserved: i64 },
}

/// The new on_hand after applying `delta`: never negative, never below what is reserved.
pub fn apply_adjustment(on_hand: i64, reserved: i64, delta: i64) -> Result<i64, AdjustmentRefused> {
    let new_on_hand = on_hand.saturating_add(delta);
    if new_on_hand < 0 {
        Err(AdjustmentRefused::Negative { new_on_hand })
    } else if new_on_hand < reserved {
        Err(AdjustmentRefused::BelowReserved { new_on_hand, reserved })
    } else {
        Ok(new_on_hand)
    }
}

/// The reason given for a manual adjustment: trimmed, 1..=500 characters.
pub fn parse_reason(raw: &str) -> Result<String, String> {
    let reason = raw.trim();
    match reason.chars().count() {
        0 => Err("is required".into()),
        n if n > MAX_REASON_CHARS => Err(format!("must be at most {MAX_REASON_CHARS} characters")),
        _ if platform::http::has_control_characters(reason) => Err("must not contain control characters".into()),
        _ => Ok(reason.to_owned()),
    }
}

pub fn parse_threshold(value: i64) -> Result<i64, String> {
    if (0..=MAX_THRESHOLD).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 0 and {MAX_THRESHOLD}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Reservations
// ---------------------------------------------------------------------------------------------

/// What can happen to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationAction {
    Release,
    Commit,
    Expire,
}

impl ReservationAction {
    pub fn target(self) -> ReservationState {
        match self {
            Self::Release => ReservationState::Released,
            Self::Commit => ReservationState::Committed,
            Self::Expire => ReservationState::Expired,
        }
    }

    pub fn movement(self) -> MovementKind {
        match self {
            Self::Release => MovementKind::Release,
            Self::Commit => MovementKind::Commit,
            Self::Expire => MovementKind::Expire,
        }
    }
}

/// The outcome of asking a reservation in some state to do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move to the new state (and move the units).
    Apply(ReservationState),
    /// The reservation is already where the action leads (a retried call): nothing to do.
    AlreadyDone,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a reservation that is {} cannot be {}", .from.as_str(), past_tense(.action))]
pub struct TransitionRefused {
    pub from: ReservationState,
    pub action: ReservationAction,
}

fn past_tense(action: &ReservationAction) -> &'static str {
    match action {
        ReservationAction::Release => "released",
        ReservationAction::Commit => "committed",
        ReservationAction::Expire => "expired",
    }
}

/// The reservation state machine: only an active reservation moves, and only once.
/// `expired_by_clock` is true when `expires_at` has passed (the sweeper may not have run yet): such
/// a reservation can still be released or expired, but no longer committed.
pub fn transition(
    from: ReservationState,
    action: ReservationAction,
    expired_by_clock: bool,
) -> Result<Transition, TransitionRefused> {
    use ReservationAction as A;
    use ReservationState as S;
    let refused = TransitionRefused { from, action };
    match (from, action) {
        (S::Active, A::Commit) if expired_by_clock => Err(TransitionRefused {
            from: S::Expired,
            action,
        }),
        (S::Active, A::Expire) if !expired_by_clock => Err(refused),
        (S::Active, a) => Ok(Transition::Apply(a.target())),
        (s, a) if s == a.target() => Ok(Transition::AlreadyDone),
        _ => Err(refused),
    }
}

/// One requested line, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLine {
    pub sku: String,
    pub qty: i64,
}

/// One validated line; `line` is its index in the request, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub sku: Sku,
    pub qty: i64,
}

/// Validates reservation lines: 1..=100 lines, each SKU well-formed and present once, each qty
/// 1..=10 000. Returns the lines sorted by SKU — the order rows are locked in, so two
/// reservations touching the same SKUs can never deadlock — or one error per bad field, named
/// `items[i].sku` / `items[i].qty` after the request's own indexes.
pub fn validate_lines(raw: &[RawLine]) -> Result<Vec<Line>, Vec<FieldError>> {
    let mut errors = Vec::new();
    if raw.is_empty() {
        return Err(vec![FieldError::new("items", "must contain at least one line")]);
    }
    if raw.len() > MAX_LINES {
        return Err(vec![FieldError::new(
            "items",
            format!("must contain at most {MAX_LINES} lines"),
        )]);
    }
    let mut lines: Vec<Line> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let sku = match Sku::parse(&r.sku) {
            Ok(sku) => Some(sku),
            Err(message) => {
                errors.push(FieldError::new(format!("items[{i}].sku"), message));
                None
            }
        };
        if r.qty <= 0 {
            errors.push(FieldError::new(format!("items[{i}].qty"), "must be greater than 0"));
        } else if r.qty > MAX_LINE_QTY {
            errors.push(FieldError::new(
                format!("items[{i}].qty"),
                format!("must be at most {MAX_LINE_QTY}"),
            ));
        }
        if let Some(sku) = sku {
            if let Some(first) = lines.iter().find(|l| l.sku == sku) {
                errors.push(FieldError::new(
                    format!("items[{i}].sku"),
                    format!("repeats items[{}].sku; send one line per SKU", first.line),
                ));
            } else {
                lines.push(Line {
                    line: i,
                    sku,
                    qty: r.qty,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    Ok(lines)
}

pub fn parse_reference(raw: &str) -> Result<String, String> {
    let reference = raw.trim();
    match reference.chars().count() {
        0 => Err("is required".into()),
        n if n > MAX_REFERENCE_CHARS => Err(format!("must be at most {MAX_REFERENCE_CHARS} characters")),
        _ => Ok(reference.to_owned()),
    }
}

pub fn parse_ttl(seconds: Option<i64>, default: u64) -> Result<u64, String> {
    match seconds {
        None => Ok(default),
        Some(s) if s >= MIN_TTL_SECS as i64 && s <= MAX_TTL_SECS as i64 => Ok(s as u64),
        Some(_) => Err(format!("must be between {MIN_TTL_SECS} and {MAX_TTL_SECS} seconds")),
    }
}

/// An `Idempotency-Key`, by the kernel's [`IdempotencyKey`] rule.
///
/// [`IdempotencyKey`]: contracts::kernel::IdempotencyKey
pub fn parse_idempotency_key(raw: &str) -> Result<String, String> {
    contracts::kernel::IdempotencyKey::parse(raw)
        .map(contracts::kernel::IdempotencyKey::into_inner)
        .map_err(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_upper_case_alphanumerics_and_dashes() {
        assert_eq!(Sku::parse("abc-123").expect("ok").as_str(), "ABC-123");
        assert_eq!(Sku::parse(" TEE-RED-M ").expect("ok").as_str(), "TEE-RED-M");
        assert!(Sku::parse("AB").is_err());
        assert!(Sku::parse(&"A".repeat(65)).is_err());
        assert!(Sku::parse(&"A".repeat(64)).is_ok());
        assert!(Sku::parse("A B C").is_err());
        assert!(Sku::parse("ABC_1").is_err());
        assert!(Sku::parse("ÄBC").is_err());
    }

    #[test]
    fn adjustment_deltas_follow_the_kind() {
        assert_eq!(AdjustmentKind::Restock.delta(5), Ok(5));
        assert_eq!(AdjustmentKind::Damage.delta(5), Ok(-5));
        assert_eq!(AdjustmentKind::Correction.delta(-3), Ok(-3));
        assert_eq!(AdjustmentKind::Correction.delta(3), Ok(3));
        assert!(AdjustmentKind::Restock.delta(0).is_err());
        assert!(AdjustmentKind::Restock.delta(-1).is_err());
        assert!(AdjustmentKind::Damage.delta(0).is_err());
        assert!(AdjustmentKind::Damage.delta(-2).is_err());
        assert!(AdjustmentKind::Correction.delta(0).is_err());
        assert!(AdjustmentKind::Restock.delta(MAX_ADJUSTMENT_QTY + 1).is_err());
        assert!(AdjustmentKind::Correction.delta(-MAX_ADJUSTMENT_QTY - 1).is_err());
    }

    #[test]
    fn on_hand_never_goes_negative_nor_below_reserved() {
        assert_eq!(apply_adjustment(10, 3, -7), Ok(3));
        assert_eq!(
            apply_adjustment(10, 3, -8),
            Err(AdjustmentRefused::BelowReserved {
                new_on_hand: 2,
                reserved: 3
            })
        );
        assert_eq!(
            apply_adjustment(2, 0, -3),
            Err(AdjustmentRefused::Negative { new_on_hand: -1 })
        );
        assert_eq!(apply_adjustment(0, 0, 4), Ok(4));
        assert_eq!(apply_adjustment(i64::MAX, 0, 1), Ok(i64::MAX));
    }

    #[test]
    fn low_stock_is_a_crossing_not_a_level() {
        // 11 → 10 with threshold 10: crosses.
        assert!(became_low(11, 10, 10, 10));
        // Already low: no new alert.
        assert!(!became_low(10, 10, 9, 10));
        // Recovering: no alert.
        assert!(!became_low(5, 10, 50, 10));
        // Staying above: no alert.
        assert!(!became_low(50, 10, 11, 10));
        // Raising the threshold over the current level is a crossing too.
        assert!(became_low(15, 10, 15, 20));
        assert!(is_low(0, 0));
        assert!(!is_low(1, 0));
    }

    #[test]
    fn reservation_state_machine() {
        use ReservationAction as A;
        use ReservationState as S;
        assert_eq!(
            transition(S::Active, A::Release, false),
            Ok(Transition::Apply(S::Released))
        );
        assert_eq!(
            transition(S::Active, A::Commit, false),
            Ok(Transition::Apply(S::Committed))
        );
        assert_eq!(
            transition(S::Active, A::Expire, true),
            Ok(Transition::Apply(S::Expired))
        );
        // Releasing after the deadline but before the sweeper is fine; committing is not.
        assert_eq!(
            transition(S::Active, A::Release, true),
            Ok(Transition::Apply(S::Released))
        );
        assert!(transition(S::Active, A::Commit, true).is_err());
        assert!(transition(S::Active, A::Expire, false).is_err());
        // Repeats are harmless.
        assert_eq!(transition(S::Released, A::Release, false), Ok(Transition::AlreadyDone));
        assert_eq!(transition(S::Committed, A::Commit, false), Ok(Transition::AlreadyDone));
        assert_eq!(transition(S::Expired, A::Expire, true), Ok(Transition::AlreadyDone));
        // Terminal states do not move.
        for (from, action) in [
            (S::Committed, A::Release),
            (S::Committed, A::Expire),
            (S::Released, A::Commit),
            (S::Released, A::Expire),
            (S::Expired, A::Commit),
            (S::Expired, A::Release),
        ] {
            let err = transition(from, action, true).expect_err("refused");
            assert_eq!(err.from, from);
        }
        assert_eq!(
            transition(S::Committed, A::Release, false)
                .expect_err("refused")
                .to_string(),
            "a reservation that is committed cannot be released"
        );
    }

    fn raw(sku: &str, qty: i64) -> RawLine {
        RawLine { sku: sku.into(), qty }
    }

    #[test]
    fn lines_are_validated_and_sorted_by_sku() {
        let lines = validate_lines(&[raw("zzz-1", 2), raw("AAA-1", 1)]).expect("valid");
        assert_eq!(
            lines
                .iter()
                .map(|l| (l.sku.as_str(), l.qty, l.line))
                .collect::<Vec<_>>(),
            [("AAA-1", 1, 1), ("ZZZ-1", 2, 0)]
        );
        let fields = |r: Result<Vec<Line>, Vec<FieldError>>| {
            r.expect_err("invalid").into_iter().map(|e| e.field).collect::<Vec<_>>()
        };
        assert_eq!(fields(validate_lines(&[])), ["items"]);
        assert_eq!(fields(validate_lines(&vec![raw("AAA-1", 1); 101])), ["items"]);
        assert_eq!(
            fields(validate_lines(&[raw("AAA-1", 0), raw("x", 1), raw("BBB-1", 10_001)])),
            ["items[0].qty", "items[1].sku", "items[2].qty"]
        );
        assert_eq!(fields(validate_lines(&[raw("AAA-1", -1)])), ["items[0].qty"]);
        assert_eq!(
            fields(validate_lines(&[raw("AAA-1", 1), raw("aaa-1", 2)])),
            ["items[1].sku"]
        );
    }

    #[test]
    fn ttl_reference_reason_and_keys() {
        assert_eq!(parse_ttl(None, 900), Ok(900));
        assert_eq!(parse_ttl(Some(30), 900), Ok(30));
        assert_eq!(parse_ttl(Some(86_400), 900), Ok(86_400));
        assert!(parse_ttl(Some(29), 900).is_err());
        assert!(parse_ttl(Some(86_401), 900).is_err());
        assert!(parse_ttl(Some(-5), 900).is_err());
        assert!(parse_reference("  ").is_err());
        assert!(parse_reference(&"x".repeat(101)).is_err());
        assert_eq!(parse_reference(" order-1 "), Ok("order-1".into()));
        assert!(parse_reason("").is_err());
        assert!(parse_reason(&"é".repeat(500)).is_ok());
        assert!(parse_reason(&"é".repeat(501)).is_err());
        assert!(parse_reason("count\u{0}ed").is_err());
        assert!(parse_reason("two\nlines").is_ok());
        assert!(parse_idempotency_key("").is_err());
        assert!(parse_idempotency_key("has space").is_err());
        assert!(parse_idempotency_key(&"k".repeat(256)).is_err());
        assert!(parse_idempotency_key("0b2f-key").is_ok());
        assert!(parse_threshold(-1).is_err());
        assert!(parse_threshold(0).is_ok());
    }

    #[test]
    fn states_and_kinds_round_trip() {
        for s in [
            ReservationState::Active,
            ReservationState::Released,
            ReservationState::Committed,
            ReservationState::Expired,
        ] {
            assert_eq!(s.as_str().parse::<ReservationState>(), Ok(s));
        }
        for k in [
            MovementKind::Restock,
            MovementKind::Damage,
            MovementKind::Correction,
            MovementKind::Reserve,
            MovementKind::Release,
            MovementKind::Commit,
            MovementKind::Expire,
        ] {
            assert_eq!(k.as_str().parse::<MovementKind>(), Ok(k));
        }
    }
}
