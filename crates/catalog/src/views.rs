//! What the API reads and writes: the published request and response shapes of
//! `contracts::api::catalog` (also what the cache holds), built from the store's records here.

use crate::domain::MoneyJson;
use crate::store::{Category, Product, Review};

pub use contracts::api::catalog::{
    BrandCount, Breadcrumb, CategoryCount, CategoryDetail, CategoryInput, CategoryNode, CategoryPatch, CategoryTree,
    CategoryView, FacetsView, ModerationInput, PriceBucket, ProductInput, ProductList, ProductPage, ProductPatch,
    ProductView, RateInput, RateView, RatesView, RatingView, Recommendation, RecommendationList, RecommendationReason,
    ReviewInput, ReviewPatch, ReviewView, SkuLookup, SuggestionView, Suggestions,
};

impl From<&crate::rates::Rate> for RateView {
    fn from(r: &crate::rates::Rate) -> Self {
        Self {
            currency: r.currency.as_str().to_owned(),
            rate: r.rate.to_decimal(),
            as_of: crate::rates::format_date(r.as_of),
        }
    }
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.0,
            sku: p.sku.clone(),
            name: p.name.clone(),
            slug: p.slug.clone(),
            description: p.description.clone(),
            status: p.status,
            price: p.price.into(),
            compare_at_price: p.compare_at.map(|amount| MoneyJson {
                amount,
                currency: Some(p.price.currency.to_string()),
            }),
            brand: p.brand.clone(),
            category_id: p.category_id.map(|c| c.0),
            attributes: p.attributes.clone(),
            images: p.images.clone(),
            rating: RatingView {
                average: p.rating.average(),
                count: p.rating.count(),
                histogram: (1..=5)
                    .map(|stars| (stars.to_string(), p.rating.histogram[stars - 1]))
                    .collect(),
            },
            available: p.available,
            in_stock: p.available > 0,
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
        }
    }
}

/// A category as published, with its product counts.
pub fn category_view(c: &Category, product_count: i64, total_product_count: i64) -> CategoryView {
    CategoryView {
        id: c.id.0,
        parent_id: c.parent_id.map(|p| p.0),
        name: c.name.clone(),
        slug: c.slug.clone(),
        description: c.description.clone(),
        product_count,
        total_product_count,
        created_at: c.created_at,
        updated_at: c.updated_at,
        version: c.version,
    }
}

impl From<&Review> for ReviewView {
    fn from(r: &Review) -> Self {
        Self {
            id: r.id.0,
            product_id: r.product_id.0,
            user_id: r.user_id,
            rating: r.rating,
            title: r.title.clone(),
            body: r.body.clone(),
            status: r.status,
            verified_purchase: r.verified_purchase,
            former_customer: r.author_erased,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}
