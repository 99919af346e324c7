//! What the API answers with.

use platform::money::MoneyView;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{CartKind, LineProblem, Money, PricedLine};
use crate::service::CartSnapshot;

/// One line of a cart, priced now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartItemView {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    pub product_id: Uuid,
    /// Catalog's name now (the remembered one when the product is gone).
    pub name: String,
    /// `null` when the product is no longer sold.
    pub slug: Option<String>,
    /// The product's first image, if any.
    pub image: Option<String>,
    pub quantity: i64,
    /// Catalog's price now (the remembered one when the product is gone).
    pub unit_price: Money,
    /// The price shown when the line was last changed; differs from `unit_price` when
    /// `problems` holds `price_changed`.
    pub added_price: Money,
    /// `unit_price × quantity`.
    pub line_total: MoneyView,
    /// Whether the line can be bought as it is (no `unavailable` nor `insufficient_stock`).
    pub available: bool,
    /// Units inventory can sell now.
    pub available_quantity: i64,
    /// What the shopper should know before checking out; empty when all is well.
    pub problems: Vec<LineProblem>,
}

impl From<&PricedLine> for CartItemView {
    fn from(l: &PricedLine) -> Self {
        Self {
            sku: l.line.sku.to_string(),
            product_id: l.product.as_ref().map_or(l.line.snapshot.product_id, |p| p.id),
            name: l
                .product
                .as_ref()
                .map_or_else(|| l.line.snapshot.name.clone(), |p| p.name.clone()),
            slug: l.product.as_ref().map(|p| p.slug.clone()),
            image: l.product.as_ref().and_then(|p| p.image.clone()),
            quantity: l.line.quantity,
            unit_price: l.unit_price,
            added_price: l.line.snapshot.price,
            line_total: MoneyView::new(l.line_total, l.unit_price.currency.to_string()),
            available: l.purchasable(),
            available_quantity: l.available_quantity,
            problems: l.problems.clone(),
        }
    }
}

/// A cart, priced and checked against catalog and inventory when it is read.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartView {
    pub id: Uuid,
    pub kind: CartKind,
    /// Oldest line first.
    pub items: Vec<CartItemView>,
    /// Sum of `line_total` of the lines that can be sold (not `unavailable`, same currency);
    /// `null` while the cart holds nothing for sale.
    pub subtotal: Option<MoneyView>,
    /// ISO 4217; `null` while the cart holds nothing for sale.
    #[schema(example = "EUR")]
    pub currency: Option<String>,
    /// Units in the cart, all lines included.
    pub item_count: i64,
    /// Last activity.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The cart is deleted if untouched until then.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl From<&CartSnapshot> for CartView {
    fn from(c: &CartSnapshot) -> Self {
        Self {
            id: c.id.0,
            kind: c.kind,
            items: c.priced.lines.iter().map(CartItemView::from).collect(),
            subtotal: c
                .priced
                .currency
                .as_ref()
                .map(|cur| MoneyView::new(c.priced.subtotal, cur.to_string())),
            currency: c.priced.currency.as_ref().map(ToString::to_string),
            item_count: c.priced.item_count,
            updated_at: c.touched_at,
            expires_at: c.expires_at,
        }
    }
}

/// A new guest cart. Keep `cart_token`: it is shown only now, and identifies the cart in the
/// `X-Cart-Token` header of later calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestCartCreated {
    /// 43 characters (32 random bytes, base64url).
    pub cart_token: String,
    pub cart: CartView,
}
