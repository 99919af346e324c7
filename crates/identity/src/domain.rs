//! Identity's domain rules as plain types and functions: no I/O, unit-tested here.

use std::time::Duration;

use contracts::api::ordering::RawAddress;
use contracts::kernel::{PostalAddress, optional_text};
use platform::FieldError;
use time::OffsetDateTime;

/// The user id and the e-mail address are the kernel's: every context names a user by this id,
/// and notifications mail exactly the addresses identity accepts.
pub use contracts::kernel::{EmailAddress as Email, UserId};

/// A display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            Err("is required".into())
        } else if len > 100 {
            Err("is longer than 100 characters".into())
        } else if name.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Addresses one shopper may keep: enough for home, work, family and a holiday flat, few
/// enough that the checkout's list stays short and a script cannot fill the table.
pub const MAX_SAVED_ADDRESSES: usize = 20;

/// An address for the address book: an optional label ("Home", at most 40 characters) and the
/// kernel's postal address rules (any well-formed country: where the shop ships is ordering's
/// rule, checked when an order uses the address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAddress {
    pub label: Option<String>,
    pub address: PostalAddress,
}

impl SavedAddress {
    /// Checks the label (`label`) and every address field (`address.<field>`).
    pub fn parse(label: Option<&str>, raw: &RawAddress) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let label = optional_text(label, 40).unwrap_or_else(|message| {
            errors.push(FieldError::new("label", message));
            None
        });
        let address = PostalAddress::parse(raw, |_| Ok(())).map_err(|failed| {
            errors.extend(
                failed
                    .into_iter()
                    .map(|e| FieldError::new(format!("address.{}", e.field), e.message)),
            );
        });
        match address {
            Ok(address) if errors.is_empty() => Ok(Self { label, address }),
            _ => Err(errors),
        }
    }
}

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The password policy: at least 12 characters, at most 1 KiB, and not guessable according to
/// zxcvbn (score 3 of 4 or better), which rejects common passwords, keyboard walks, dates and
/// passwords built from the user's own e-mail or name.
pub fn check_new_password(password: &str, user_inputs: &[&str]) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters long"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes long"));
    }
    let estimate = zxcvbn::zxcvbn(password, user_inputs);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "it would be easy to guess".into());
        return Err(format!("is too weak: {hint}; add more unrelated words or characters"));
    }
    Ok(())
}

/// What a user may do: the kernel's, as every context reads it from the access token.
pub use contracts::kernel::Role;

/// Whether an account may be used: the published enum, so the API and its callers name the
/// same states.
pub use contracts::api::identity::UserStatus;

/// What a single-use token sent by e-mail proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    EmailVerification,
    PasswordReset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::EmailVerification => "email_verification",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }
}

/// Token lifetimes, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
    pub email_verification: Duration,
    pub password_reset: Duration,
}

impl TokenLifetimes {
    pub fn expiry(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
        now + ttl
    }
}

/// What is known about a presented refresh token and its session (token family).
#[derive(Debug, Clone, Copy)]
pub struct RefreshState {
    pub token_expires_at: OffsetDateTime,
    /// Set once the token has been exchanged for a new one.
    pub token_used_at: Option<OffsetDateTime>,
    pub session_revoked_at: Option<OffsetDateTime>,
    pub session_expires_at: OffsetDateTime,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Issue a new pair and retire this token.
    Rotate,
    /// An already-rotated token came back: someone copied it. Revoke the whole family.
    ReuseDetected,
    Expired,
    Revoked,
}

/// Refresh-token rotation with reuse detection (OAuth 2.0 Security BCP, section 4.14).
pub fn decide_refresh(state: &RefreshState, now: OffsetDateTime) -> RefreshDecision {
    if state.session_revoked_at.is_some() {
        RefreshDecision::Revoked
    } else if state.token_used_at.is_some() {
        RefreshDecision::ReuseDetected
    } else if now >= state.token_expires_at || now >= state.session_expires_at {
        RefreshDecision::Expired
    } else {
        RefreshDecision::Rotate
    }
}

/// Failed logins seen in the current window, for one key (an account or an IP address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureWindow {
    pub failures: u32,
    pub oldest: Option<OffsetDateTime>,
}

/// A refused login attempt: how long to wait, and the limit that refused it (for the
/// `RateLimit-*` answer headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    pub wait: Duration,
    pub limit: u32,
    pub window: Duration,
}

/// Login throttling: after `max` failures within `window`, refuse until the oldest of them leaves
/// the window. Returns how long to wait, or `None` when the attempt may proceed.
pub fn throttle(seen: FailureWindow, max: u32, window: Duration, now: OffsetDateTime) -> Option<Duration> {
    if seen.failures < max {
        return None;
    }
    let oldest = seen.oldest?;
    let free_at = oldest + window;
    if free_at <= now {
        None
    } else {
        let wait = free_at - now;
        Some(Duration::from_secs(wait.whole_seconds().max(1) as u64))
    }
}

/// Collects field errors so a request reports every invalid field at once.
#[derive(Debug, Default)]
pub struct Validation {
    errors: Vec<FieldError>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `parse` and records its error under `field`.
    pub fn field<T, E: Into<String>>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").expect("ok").as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn bad_emails_are_rejected() {
        for bad in [
            "",
            "plain",
            "a@b",
            "@example.com",
            "a@.com",
            "a..b@example.com",
            "a@exa mple.com",
            "a@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada  ").expect("ok").as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(DisplayName::parse("bad\u{0007}name").is_err());
    }

    #[test]
    fn password_policy() {
        assert!(
            check_new_password("short1!", &[])
                .expect_err("must be refused")
                .contains("at least 12")
        );
        assert!(
            check_new_password("password1234", &[])
                .expect_err("must be refused")
                .contains("too weak")
        );
        assert!(check_new_password("qwertyuiop123", &[]).is_err());
        assert!(
            check_new_password(&"x".repeat(2000), &[])
                .expect_err("must be refused")
                .contains("at most")
        );
        assert!(check_new_password("ada.lovelace@example.com", &["ada.lovelace@example.com"]).is_err());
        assert!(check_new_password("correct horse battery staple", &[]).is_ok());
        assert!(check_new_password("Tr0ub4dor&3-violet-lamp", &[]).is_ok());
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().expect("round trip"), role);
        }
        assert!("root".parse::<Role>().is_err());
        assert!("Admin".parse::<Role>().is_err());
    }

    fn fresh_state(now: OffsetDateTime) -> RefreshState {
        RefreshState {
            token_expires_at: now + Duration::from_secs(60),
            token_used_at: None,
            session_revoked_at: None,
            session_expires_at: now + Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_fresh_token_rotates() {
        let now = datetime!(2026-11-23 10:00 UTC);
        assert_eq!(decide_refresh(&fresh_state(now), now), RefreshDecision::Rotate);
    }

    #[test]
    fn a_used_token_means_reuse_and_revokes_the_family() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let state = RefreshState {
            token_used_at: Some(now),
            ..fresh_state(now)
        };
        assert_eq!(decide_refresh(&state, now), RefreshDecision::ReuseDetected);
    }

    #[test]
    fn a_revoked_family_stays_revoked_even_for_unused_tokens() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let state = RefreshState {
            session_revoked_at: Some(now),
            ..fresh_state(now)
        };
        assert_eq!(decide_refresh(&state, now), RefreshDecision::Revoked);
    }

    #[test]
    fn tokens_and_sessions_expire() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let state = fresh_state(now);
        assert_eq!(
            decide_refresh(&state, now + Duration::from_secs(60)),
            RefreshDecision::Expired
        );
        let state = RefreshState {
            session_expires_at: now,
            ..fresh_state(now)
        };
        assert_eq!(decide_refresh(&state, now), RefreshDecision::Expired);
    }

    #[test]
    fn throttle_waits_for_the_oldest_failure_to_leave_the_window() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let window = Duration::from_secs(900);
        let under = FailureWindow {
            failures: 4,
            oldest: Some(now),
        };
        assert_eq!(throttle(under, 5, window, now), None);
        let at = FailureWindow {
            failures: 5,
            oldest: Some(now - Duration::from_secs(300)),
        };
        assert_eq!(throttle(at, 5, window, now), Some(Duration::from_secs(600)));
        let old = FailureWindow {
            failures: 9,
            oldest: Some(now - Duration::from_secs(900)),
        };
        assert_eq!(throttle(old, 5, window, now), None);
    }

    #[test]
    fn token_lifetimes_add_up() {
        let now = datetime!(2026-11-23 10:00 UTC);
        assert_eq!(
            TokenLifetimes::expiry(now, Duration::from_secs(900)),
            datetime!(2026-11-23 10:15 UTC)
        );
    }

    #[test]
    fn validation_collects_every_error() {
        let mut v = Validation::new();
        assert!(v.field("email", Email::parse("nope")).is_none());
        assert!(v.field("name", DisplayName::parse("")).is_none());
        assert!(v.field("ok", DisplayName::parse("fine")).is_some());
        let errors = v.finish().expect_err("two errors");
        assert_eq!(
            errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["email", "name"]
        );
    }

    #[test]
    fn saved_addresses_name_the_failing_fields() {
        let raw = RawAddress {
            name: "Ada".into(),
            line1: "1 Way".into(),
            city: "".into(),
            postal_code: "N1".into(),
            country: "Narnia".into(),
            ..RawAddress::default()
        };
        let errors = SavedAddress::parse(Some(&"x".repeat(41)), &raw).expect_err("invalid");
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["label", "address.city", "address.country"]);
        let ok = RawAddress {
            city: "London".into(),
            country: "gb".into(),
            ..raw
        };
        let saved = SavedAddress::parse(Some("  "), &ok).expect("valid");
        assert_eq!(saved.label, None, "a blank label is no label");
        assert_eq!(saved.address.country.as_str(), "GB");
    }
}
