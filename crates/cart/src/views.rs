//! What the API answers with: `contracts::api::cart`'s views, built from the priced cart here.

use platform::money::MoneyView;

use crate::domain::PricedLine;
use crate::service::CartSnapshot;

pub use contracts::api::cart::{CartItemView, CartView, GuestCartCreated};

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
