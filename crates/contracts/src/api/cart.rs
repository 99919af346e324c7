//! The cart context's published request and view types, and [`CartApi`], what other contexts
//! call.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ClientError;
use super::money::MoneyView;
use crate::kernel::Money;

/// What other contexts ask of cart.
#[async_trait::async_trait]
pub trait CartApi: Send + Sync + 'static {
    /// `GET /api/v1/cart` with the shopper's own token: their cart, priced now; 404 while they
    /// have none.
    async fn cart(&self, bearer: &str) -> Result<CartView, ClientError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CartKind {
    Guest,
    User,
}

/// Something the shopper should know about a line before checking out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineProblem {
    /// The product is no longer sold (unknown, draft or archived) or out of stock: the line is
    /// kept but left out of the subtotal.
    Unavailable,
    /// Fewer units are available than the line holds.
    InsufficientStock,
    /// The price differs from the one shown when the line was last changed.
    PriceChanged,
    /// The product is priced in another currency than the rest of the cart: left out of the
    /// subtotal.
    CurrencyMismatch,
}

/// One line of a cart, priced now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// A cart, priced and checked against catalog and inventory when it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// A new guest cart. Keep `cart_token`: it is shown only now, and identifies the cart in the
/// `X-Cart-Token` header of later calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GuestCartCreated {
    /// 43 characters (32 random bytes, base64url).
    pub cart_token: String,
    pub cart: CartView,
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemRequest {
    #[schema(example = "TEE-RED-M")]
    pub sku: String,
    /// 1 to `EMPORIUM_CART_MAX_LINE_QUANTITY` (10); added to the line's quantity.
    #[schema(example = 1)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityRequest {
    /// 0 removes the line; otherwise 1 to `EMPORIUM_CART_MAX_LINE_QUANTITY` (10).
    #[schema(example = 2)]
    pub quantity: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The guest cart's token.
    pub cart_token: String,
}
