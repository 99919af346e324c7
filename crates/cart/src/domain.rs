//! Cart's domain rules as plain types and functions: no I/O, unit-tested here.
//!
//! The store applies these rules inside a transaction that holds the cart's row lock, so the
//! decision and the write see the same cart (no lost update between two concurrent adds).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// Bytes of randomness in a guest cart token.
pub const TOKEN_BYTES: usize = 32;
/// Most SKUs the cart asks catalog or inventory about in one call (their batch limit).
pub const MAX_BATCH_SKUS: usize = 100;

/// The shared value types, defined once for every context (see `contracts::kernel`).
pub use contracts::api::cart::{CartKind, LineProblem};
pub use contracts::kernel::{CartId, Currency, Money, Sku};

// ---------------------------------------------------------------------------------------------
// Guest tokens
// ---------------------------------------------------------------------------------------------

/// A guest cart's bearer secret: 32 random bytes, base64url without padding (43 characters).
/// Only its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct CartToken(String);

impl fmt::Debug for CartToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CartToken(***)")
    }
}

/// The SHA-256 of a [`CartToken`]: what the store keeps and looks carts up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub Vec<u8>);

impl CartToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts exactly what [`CartToken::generate`] produces.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        match URL_SAFE_NO_PAD.decode(raw) {
            Ok(bytes) if bytes.len() == TOKEN_BYTES => Ok(Self(raw.to_owned())),
            _ => Err("is not a cart token issued by this API".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }
}

/// Whose cart it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    User(Uuid),
    Guest(TokenHash),
}

// ---------------------------------------------------------------------------------------------
// Limits and quantities
// ---------------------------------------------------------------------------------------------

/// The configured limits of one cart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line_quantity: i64,
    pub max_lines: usize,
}

/// A requested quantity for a line: 1..=max.
pub fn parse_quantity(quantity: i64, limits: Limits) -> Result<i64, String> {
    if (1..=limits.max_line_quantity).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(format!("must be between 1 and {}", limits.max_line_quantity))
    }
}

/// Why a line cannot take the quantity asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineRefused {
    #[error("at most {max} units per line; the cart already holds {current}")]
    LineLimit { max: i64, current: i64 },
    #[error("a cart holds at most {max} lines")]
    TooManyLines { max: usize },
    #[error("only {available} available; the line would hold {requested}")]
    Insufficient { requested: i64, available: i64 },
}

/// The line's new quantity after adding `add` units (already validated by [`parse_quantity`])
/// to `current` (none: a new line, the cart holding `lines` lines). `available` is inventory's
/// figure read just before.
pub fn plan_add(
    current: Option<i64>,
    lines: usize,
    add: i64,
    available: i64,
    limits: Limits,
) -> Result<i64, LineRefused> {
    let held = current.unwrap_or(0);
    let requested = held.saturating_add(add);
    if requested > limits.max_line_quantity {
        return Err(LineRefused::LineLimit {
            max: limits.max_line_quantity,
            current: held,
        });
    }
    if current.is_none() && lines >= limits.max_lines {
        return Err(LineRefused::TooManyLines { max: limits.max_lines });
    }
    if requested > available {
        return Err(LineRefused::Insufficient {
            requested,
            available: available.max(0),
        });
    }
    Ok(requested)
}

/// Setting a line to `quantity` (1..=max, validated) is refused only for lack of stock.
pub fn plan_set(quantity: i64, available: i64) -> Result<i64, LineRefused> {
    if quantity > available {
        Err(LineRefused::Insufficient {
            requested: quantity,
            available: available.max(0),
        })
    } else {
        Ok(quantity)
    }
}

// ---------------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------------

/// What the shopper saw of the product when the line was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub product_id: Uuid,
    pub name: String,
    pub price: Money,
}

/// A stored cart line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: Sku,
    pub quantity: i64,
    pub snapshot: Snapshot,
    pub added_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The lines of a user's cart after a guest cart is merged into it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergePlan {
    /// Lines to write with their new quantity (summed, capped at the per-line limit).
    pub upserts: Vec<Line>,
    /// Guest lines left out because the user's cart would exceed the line limit.
    pub dropped: Vec<Sku>,
}

/// Sums quantities of SKUs in both carts (capped at the per-line limit), adds guest-only SKUs
/// while the line limit allows (in the guest cart's order, oldest first), and keeps the newer
/// snapshot.
pub fn plan_merge(user: &[Line], guest: &[Line], limits: Limits, now: OffsetDateTime) -> MergePlan {
    let existing: BTreeMap<&Sku, &Line> = user.iter().map(|l| (&l.sku, l)).collect();
    let mut lines = user.len();
    let mut plan = MergePlan::default();
    for g in guest {
        match existing.get(&g.sku) {
            Some(u) => {
                let quantity = u.quantity.saturating_add(g.quantity).min(limits.max_line_quantity);
                let snapshot = if g.updated_at > u.updated_at {
                    g.snapshot.clone()
                } else {
                    u.snapshot.clone()
                };
                plan.upserts.push(Line {
                    sku: g.sku.clone(),
                    quantity,
                    snapshot,
                    added_at: u.added_at.min(g.added_at),
                    updated_at: now,
                });
            }
            None if lines < limits.max_lines => {
                lines += 1;
                plan.upserts.push(Line {
                    quantity: g.quantity.min(limits.max_line_quantity),
                    updated_at: now,
                    ..g.clone()
                });
            }
            None => plan.dropped.push(g.sku.clone()),
        }
    }
    plan
}

// ---------------------------------------------------------------------------------------------
// The priced view
// ---------------------------------------------------------------------------------------------

/// A product as catalog shows it now (only active products are sellable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: Uuid,
    pub sku: Sku,
    pub name: String,
    pub slug: String,
    pub image: Option<String>,
    pub price: Money,
}

/// A line priced and checked at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub line: Line,
    /// Catalog's product now, if it is still sold.
    pub product: Option<Product>,
    /// The current price, or the remembered one when the product is gone.
    pub unit_price: Money,
    pub line_total: i64,
    /// Units inventory can still sell (0 when unknown to inventory).
    pub available_quantity: i64,
    pub problems: Vec<LineProblem>,
    /// Whether the line counts in the subtotal.
    pub counted: bool,
}

impl PricedLine {
    /// The line can be bought as it is.
    pub fn purchasable(&self) -> bool {
        !self
            .problems
            .iter()
            .any(|p| matches!(p, LineProblem::Unavailable | LineProblem::InsufficientStock))
    }
}

/// A cart priced at read time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedCart {
    pub lines: Vec<PricedLine>,
    pub subtotal: i64,
    /// The cart's currency (that of its first sellable line); `None` when nothing is sellable.
    pub currency: Option<Currency>,
    /// Units in the cart, all lines included.
    pub item_count: i64,
}

/// Prices `lines` with catalog's `products` and inventory's `available` units (SKUs missing from
/// either map are not sold / have no stock).
pub fn price_cart(lines: Vec<Line>, products: &BTreeMap<Sku, Product>, available: &BTreeMap<Sku, i64>) -> PricedCart {
    let currency = lines
        .iter()
        .filter(|l| available.get(&l.sku).copied().unwrap_or(0) > 0)
        .find_map(|l| products.get(&l.sku))
        .map(|p| p.price.currency);
    let mut subtotal: i64 = 0;
    let mut item_count: i64 = 0;
    let priced = lines
        .into_iter()
        .map(|line| {
            item_count = item_count.saturating_add(line.quantity);
            let product = products.get(&line.sku).cloned();
            let units = available.get(&line.sku).copied().unwrap_or(0).max(0);
            let mut problems = Vec::new();
            let unit_price = match &product {
                Some(p) => p.price,
                None => line.snapshot.price,
            };
            if product.is_none() || units == 0 {
                problems.push(LineProblem::Unavailable);
            } else if units < line.quantity {
                problems.push(LineProblem::InsufficientStock);
            }
            if product.is_some() && unit_price != line.snapshot.price {
                problems.push(LineProblem::PriceChanged);
            }
            let same_currency = currency.as_ref() == Some(&unit_price.currency);
            if product.is_some() && units > 0 && !same_currency {
                problems.push(LineProblem::CurrencyMismatch);
            }
            let line_total = unit_price.times(line.quantity).amount;
            let counted = !problems
                .iter()
                .any(|p| matches!(p, LineProblem::Unavailable | LineProblem::CurrencyMismatch));
            if counted {
                subtotal = subtotal.saturating_add(line_total);
            }
            PricedLine {
                line,
                product,
                unit_price,
                line_total,
                available_quantity: units,
                problems,
                counted,
            }
        })
        .collect();
    PricedCart {
        lines: priced,
        subtotal,
        currency,
        item_count,
    }
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

/// When a cart last touched at `touched_at` expires.
pub fn expires_at(touched_at: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    touched_at + ttl
}

/// A cart is expired once `now` reaches its expiry.
pub fn is_expired(touched_at: OffsetDateTime, ttl: Duration, now: OffsetDateTime) -> bool {
    now >= expires_at(touched_at, ttl)
}

/// Carts touched before this instant are expired at `now`.
pub fn expiry_cutoff(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    now - ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const LIMITS: Limits = Limits {
        max_line_quantity: 10,
        max_lines: 3,
    };

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").expect("eur"))
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).expect("sku")
    }

    fn line(s: &str, quantity: i64, price: i64, at: OffsetDateTime) -> Line {
        Line {
            sku: sku(s),
            quantity,
            snapshot: Snapshot {
                product_id: Uuid::nil(),
                name: s.to_owned(),
                price: eur(price),
            },
            added_at: at,
            updated_at: at,
        }
    }

    fn product(s: &str, price: Money) -> (Sku, Product) {
        (
            sku(s),
            Product {
                id: Uuid::nil(),
                sku: sku(s),
                name: s.to_owned(),
                slug: s.to_ascii_lowercase(),
                image: None,
                price,
            },
        )
    }

    #[test]
    fn skus_and_currencies_are_checked() {
        assert_eq!(sku(" tee-red-m ").as_str(), "TEE-RED-M");
        assert!(Sku::parse("ab").is_err());
        assert!(Sku::parse("A B C").is_err());
        assert!(Currency::parse("EUR").is_ok());
        // One rule for every context: lower case is normalised, codes outside ISO 4217 refused.
        assert_eq!(Currency::parse("eur"), Ok(Currency::EUR));
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("XYZ").is_err());
    }

    #[test]
    fn tokens_are_43_characters_of_32_random_bytes_and_hash_stably() {
        let a = CartToken::generate();
        let b = CartToken::generate();
        assert_eq!(a.as_str().len(), 43);
        assert_ne!(a, b);
        assert_eq!(CartToken::parse(a.as_str()).expect("round trip"), a);
        assert_eq!(a.hash(), CartToken::parse(a.as_str()).expect("again").hash());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().0.len(), 32);
        assert!(CartToken::parse("short").is_err());
        assert!(CartToken::parse(&"A".repeat(44)).is_err());
        assert!(!format!("{a:?}").contains(a.as_str()), "tokens never appear in logs");
    }

    #[test]
    fn quantities_must_be_within_the_line_limit() {
        assert_eq!(parse_quantity(1, LIMITS), Ok(1));
        assert_eq!(parse_quantity(10, LIMITS), Ok(10));
        assert!(parse_quantity(0, LIMITS).is_err());
        assert!(parse_quantity(-1, LIMITS).is_err());
        assert!(parse_quantity(11, LIMITS).is_err());
    }

    #[test]
    fn adding_sums_with_the_line_and_respects_every_limit() {
        assert_eq!(plan_add(None, 0, 2, 5, LIMITS), Ok(2));
        assert_eq!(plan_add(Some(2), 1, 3, 5, LIMITS), Ok(5));
        assert_eq!(
            plan_add(Some(2), 1, 4, 5, LIMITS),
            Err(LineRefused::Insufficient {
                requested: 6,
                available: 5
            })
        );
        assert_eq!(
            plan_add(Some(8), 1, 3, 100, LIMITS),
            Err(LineRefused::LineLimit { max: 10, current: 8 })
        );
        assert_eq!(
            plan_add(None, 3, 1, 100, LIMITS),
            Err(LineRefused::TooManyLines { max: 3 })
        );
        // An existing line may grow even when the cart is full.
        assert_eq!(plan_add(Some(1), 3, 1, 100, LIMITS), Ok(2));
        // Negative availability (never expected) reads as none.
        assert_eq!(
            plan_add(None, 0, 1, -3, LIMITS),
            Err(LineRefused::Insufficient {
                requested: 1,
                available: 0
            })
        );
    }

    #[test]
    fn setting_is_refused_only_beyond_stock() {
        assert_eq!(plan_set(4, 4), Ok(4));
        assert_eq!(
            plan_set(5, 4),
            Err(LineRefused::Insufficient {
                requested: 5,
                available: 4
            })
        );
    }

    #[test]
    fn merging_sums_caps_and_respects_the_line_limit() {
        let t0 = datetime!(2026-11-01 10:00 UTC);
        let t1 = datetime!(2026-11-02 10:00 UTC);
        let now = datetime!(2026-11-03 10:00 UTC);
        let user = vec![line("AAA-1", 7, 100, t0), line("BBB-1", 1, 200, t0)];
        let guest = vec![
            line("CCC-1", 2, 300, t0),
            line("AAA-1", 6, 150, t1),
            line("DDD-1", 1, 400, t1),
        ];
        let plan = plan_merge(&user, &guest, LIMITS, now);
        let got: Vec<(&str, i64, i64)> = plan
            .upserts
            .iter()
            .map(|l| (l.sku.as_str(), l.quantity, l.snapshot.price.amount))
            .collect();
        // CCC-1 comes first in the guest cart and fills the third line; DDD-1 no longer fits.
        assert_eq!(got, [("CCC-1", 2, 300), ("AAA-1", 10, 150)]);
        assert_eq!(plan.dropped, [sku("DDD-1")]);
        assert!(plan.upserts.iter().all(|l| l.updated_at == now));
        assert_eq!(plan.upserts[1].added_at, t0, "the line keeps its first add time");
    }

    #[test]
    fn merging_an_empty_guest_cart_changes_nothing() {
        let now = datetime!(2026-11-03 10:00 UTC);
        let user = vec![line("AAA-1", 7, 100, now)];
        assert_eq!(plan_merge(&user, &[], LIMITS, now), MergePlan::default());
    }

    #[test]
    fn pricing_reads_current_prices_and_flags_problems() {
        let t = datetime!(2026-11-01 10:00 UTC);
        let lines = vec![
            line("AAA-1", 2, 100, t), // fine
            line("BBB-1", 3, 200, t), // price went up, only 1 left
            line("CCC-1", 1, 300, t), // product gone
            line("DDD-1", 1, 400, t), // out of stock
        ];
        let products: BTreeMap<Sku, Product> = [
            product("AAA-1", eur(100)),
            product("BBB-1", eur(250)),
            product("DDD-1", eur(400)),
        ]
        .into_iter()
        .collect();
        let available: BTreeMap<Sku, i64> = [
            (sku("AAA-1"), 10),
            (sku("BBB-1"), 1),
            (sku("CCC-1"), 9),
            (sku("DDD-1"), 0),
        ]
        .into_iter()
        .collect();
        let cart = price_cart(lines, &products, &available);
        let problems: Vec<Vec<LineProblem>> = cart.lines.iter().map(|l| l.problems.clone()).collect();
        assert_eq!(
            problems,
            [
                vec![],
                vec![LineProblem::InsufficientStock, LineProblem::PriceChanged],
                vec![LineProblem::Unavailable],
                vec![LineProblem::Unavailable],
            ]
        );
        assert_eq!(cart.lines[1].unit_price, eur(250));
        assert_eq!(cart.lines[1].line_total, 750);
        assert_eq!(
            cart.lines[2].unit_price,
            eur(300),
            "a gone product shows its remembered price"
        );
        // AAA 2×100 + BBB 3×250; CCC and DDD are left out.
        assert_eq!(cart.subtotal, 950);
        assert_eq!(cart.item_count, 7);
        assert_eq!(cart.currency, Some(Currency::parse("EUR").expect("eur")));
        assert!(cart.lines[0].purchasable());
        assert!(!cart.lines[1].purchasable());
    }

    #[test]
    fn other_currencies_are_flagged_and_left_out() {
        let t = datetime!(2026-11-01 10:00 UTC);
        let usd = Money::new(500, Currency::parse("USD").expect("usd"));
        let products: BTreeMap<Sku, Product> = [product("AAA-1", eur(100)), product("BBB-1", usd)]
            .into_iter()
            .collect();
        let available: BTreeMap<Sku, i64> = [(sku("AAA-1"), 5), (sku("BBB-1"), 5)].into_iter().collect();
        let cart = price_cart(
            vec![line("AAA-1", 1, 100, t), line("BBB-1", 1, 500, t)],
            &products,
            &available,
        );
        assert_eq!(cart.subtotal, 100);
        assert!(cart.lines[1].problems.contains(&LineProblem::CurrencyMismatch));
    }

    #[test]
    fn an_empty_cart_has_no_currency() {
        let cart = price_cart(Vec::new(), &BTreeMap::new(), &BTreeMap::new());
        assert_eq!((cart.subtotal, cart.item_count, cart.currency), (0, 0, None));
    }

    #[test]
    fn carts_expire_when_their_ttl_has_passed() {
        let touched = datetime!(2026-11-01 10:00 UTC);
        let ttl = Duration::from_secs(3600);
        assert_eq!(expires_at(touched, ttl), datetime!(2026-11-01 11:00 UTC));
        assert!(!is_expired(touched, ttl, datetime!(2026-11-01 10:59:59 UTC)));
        assert!(is_expired(touched, ttl, datetime!(2026-11-01 11:00 UTC)));
        assert_eq!(expiry_cutoff(datetime!(2026-11-01 11:00 UTC), ttl), touched);
    }
}
