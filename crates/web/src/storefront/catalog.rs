//! Browsing: the home page, category and search listings with facets, product pages and reviews.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use contracts::api::catalog::{
    CategoryDetail, CategoryNode, CategoryTree, FacetsView, PriceBucket, ProductPage, ProductView, Recommendation,
    RecommendationList, RecommendationReason, ReviewInput, ReviewView,
};
use contracts::api::inventory::StockView;
use contracts::api::money::MoneyView;
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use platform::pagination::Page;
use serde::{Deserialize, Serialize};

use super::present::{self, ListingFilters};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status, value_of};
use crate::{PageError, Session, WebState};

/// Products per listing page (a multiple of 2, 3 and 4 so the grid rows fill up).
const PAGE_SIZE: u32 = 24;
const FEATURED: u32 = 12;

/// A product as a card or page shows it: catalog's view plus the picture to show (its first
/// image, else a generated placeholder) and the stock badge.
#[derive(Debug, Serialize)]
pub(super) struct ShownProduct {
    #[serde(flatten)]
    product: ProductView,
    image: String,
    gallery: Vec<String>,
    placeholder: String,
    stock: &'static str,
    stock_label: String,
}

pub(super) fn decorate(product: ProductView, low_threshold: i64) -> ShownProduct {
    let placeholder = present::placeholder_image(&product.name, &product.sku);
    let gallery: Vec<String> = product
        .images
        .iter()
        .filter(|u| present::is_web_url(u))
        .cloned()
        .collect();
    let (stock, stock_label) = present::stock_status(product.available, low_threshold);
    ShownProduct {
        image: gallery.first().cloned().unwrap_or_else(|| placeholder.clone()),
        gallery,
        placeholder,
        stock,
        stock_label,
        product,
    }
}

/// Recommendations as the pages show them: "customers also bought" apart from "you may also like".
pub(super) fn split_recommendations(items: Vec<Recommendation>) -> (Vec<ProductView>, Vec<ProductView>) {
    let (bought, related): (Vec<_>, Vec<_>) = items
        .into_iter()
        .partition(|r| r.reason == RecommendationReason::BoughtTogether);
    (
        bought.into_iter().map(|r| r.product).collect(),
        related.into_iter().map(|r| r.product).collect(),
    )
}

pub(super) fn decorate_all(items: Vec<ProductView>) -> Vec<ShownProduct> {
    items.into_iter().map(|p| decorate(p, 0)).collect()
}

/// A price facet as a link that filters the listing to its range.
#[derive(Debug, Serialize)]
struct PriceLink {
    min: MoneyView,
    max: Option<MoneyView>,
    count: i64,
    url: String,
}

pub async fn home(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    let api = web.api(&session);
    let featured_path = format!("/api/v1/catalog/products?sort=rating&in_stock=true&limit={FEATURED}");
    let (featured, tree) = tokio::join!(
        api.get_json::<ProductPage>("catalog", &featured_path),
        api.get_json::<CategoryTree>("catalog", "/api/v1/catalog/categories"),
    );
    let (featured, tree) = (featured?, tree?);
    page(
        &session,
        "shop/home.html",
        context! {
            products => value_of(decorate_all(featured.items)),
            categories => value_of(&tree.roots),
        },
    )
}

/// The node of `tree` (`roots`, each with `children`) whose slug is `slug`.
fn find_category<'a>(nodes: &'a [CategoryNode], slug: &str) -> Option<&'a CategoryNode> {
    nodes.iter().find_map(|node| {
        if node.category.slug == slug {
            Some(node)
        } else {
            find_category(&node.children, slug)
        }
    })
}

pub async fn category(
    State(web): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let api = web.api(&session);
    let tree: CategoryTree = api.get_json("catalog", "/api/v1/catalog/categories").await?;
    let id = find_category(&tree.roots, &slug)
        .map(|c| c.category.id)
        .ok_or(PageError::NotFound)?;
    let detail: CategoryDetail = api
        .get_json("catalog", &format!("/api/v1/catalog/categories/{id}"))
        .await?;
    let filters = ListingFilters::from_query(query.as_deref().unwrap_or(""));
    listing(
        &web,
        &session,
        &format!("/c/{}", present::path_segment(&slug)),
        filters,
        Some(detail),
    )
    .await
}

pub async fn search(
    State(web): State<WebState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let filters = ListingFilters::from_query(query.as_deref().unwrap_or(""));
    listing(&web, &session, "/search", filters, None).await
}

/// A category (`category` set) or search page: products, count, facets and paging.
async fn listing(
    web: &WebState,
    session: &Session,
    base: &str,
    filters: ListingFilters,
    category: Option<CategoryDetail>,
) -> Result<Response, PageError> {
    let api = web.api(session);
    let category_id = category.as_ref().map(|c| c.category.id.to_string());
    let (query, price_errors) = filters.api_query(category_id.as_deref(), PAGE_SIZE);
    // Search words go to full-text search; without them the plain list (all products) answers.
    let list_path = if filters.q.is_empty() {
        format!("/api/v1/catalog/products?{query}")
    } else {
        format!("/api/v1/catalog/search?{query}")
    };
    // Facets count the same filters, without the paging and sorting.
    let facet_query: String = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !matches!(k.as_ref(), "cursor" | "limit" | "sort"))
        .fold(form_urlencoded::Serializer::new(String::new()), |mut s, (k, v)| {
            s.append_pair(&k, &v);
            s
        })
        .finish();
    let facets_path = format!("/api/v1/catalog/products/facets?{facet_query}");
    let (list, facets) = tokio::join!(api.get("catalog", &list_path), api.get("catalog", &facets_path));
    let (list, facets) = (list?, facets?);
    let mut errors = FieldErrors::new();
    for (field, message) in price_errors {
        errors.add(field, message);
    }
    // A filter the catalog refuses (a stale shared link, an over-long query) is explained next
    // to the filters instead of failing the page.
    let (products, total, next, did_you_mean) = if list.is_success() {
        let page: ProductPage = api.decode(list)?;
        let next = page.next.as_deref().map(|n| filters.next_page_url(base, n));
        // The corrected query, as a link that searches it with the same filters.
        let did_you_mean = page.did_you_mean.map(|text| {
            let url = ListingFilters {
                q: text.clone(),
                cursor: String::new(),
                ..filters.clone()
            }
            .url(base);
            context! { text => text, url => url }
        });
        (decorate_all(page.items), page.total, next, did_you_mean)
    } else if list.status == StatusCode::UNPROCESSABLE_ENTITY {
        let problem = FieldErrors::from_problem(&list);
        errors.add(
            "_form",
            problem
                .get("q")
                .map(|m| format!("Search: {m}"))
                .unwrap_or_else(|| list.problem_detail()),
        );
        (Vec::new(), 0, None, None)
    } else {
        return Err(api.error_for(&list));
    };
    // The facets are a nicety: without them the listing shows no brand or price filters.
    let facets: Option<FacetsView> = if facets.is_success() {
        Some(api.decode(facets)?)
    } else {
        None
    };
    let (brands, buckets) = facets.map_or_else(Default::default, |f| (f.brands, f.price_buckets));
    let price_links: Vec<PriceLink> = buckets
        .into_iter()
        .filter(|b| b.count > 0)
        .map(|PriceBucket { min, max, count }| PriceLink {
            url: filters.with_price_range(base, min.amount, max.as_ref().map(|m| m.amount)),
            min,
            max,
            count,
        })
        .collect();
    let sorts: Vec<_> = present::SORTS
        .iter()
        .filter(|(s, _)| *s != "relevance" || !filters.q.is_empty())
        .map(|&(value, label)| context! { value => value, label => label })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page_with_status(
        status,
        session,
        "shop/listing.html",
        context! {
            base => base,
            category => value_of(&category),
            q => filters.q.clone(),
            did_you_mean => did_you_mean,
            filters => context! {
                brands => filters.brands.clone(),
                min_price => filters.min_price.clone(),
                max_price => filters.max_price.clone(),
                in_stock => filters.in_stock,
                sort => filters.sort.clone(),
                paged => !filters.cursor.is_empty(),
            },
            filtered => filters.is_filtered(),
            first_page_url => ListingFilters { cursor: String::new(), ..filters.clone() }.url(base),
            clear_url => filters.cleared_url(base),
            products => value_of(products),
            total => total,
            next_url => next,
            brands => value_of(brands),
            price_links => value_of(price_links),
            sorts => sorts,
            errors => errors,
        },
    )
}

/// What the product page's forms hold when it is re-rendered after a refused post.
#[derive(Default)]
pub(super) struct ProductForms {
    pub quantity: String,
    pub cart_errors: FieldErrors,
    pub review: ReviewForm,
    pub review_errors: FieldErrors,
}

/// Renders `/p/{slug}` (also after a refused add-to-cart or review, with `status` 422).
pub(super) async fn product_page(
    web: &WebState,
    session: &Session,
    slug: &str,
    forms: ProductForms,
    status: StatusCode,
) -> Result<Response, PageError> {
    let api = web.api(session);
    let product: ProductView = api
        .get_json(
            "catalog",
            &format!("/api/v1/catalog/products/by-slug/{}", present::path_segment(slug)),
        )
        .await?;
    let id = product.id;
    let sku = present::path_segment(&product.sku);
    let reviews_path = format!("/api/v1/catalog/products/{id}/reviews?limit=50");
    let related_path = format!("/api/v1/catalog/products/{id}/recommendations?limit=4");
    let stock_path = format!("/api/v1/inventory/{sku}");
    let (reviews, related, stock) = tokio::join!(
        api.get_json::<Page<ReviewView>>("catalog", &reviews_path),
        api.get_json::<RecommendationList>("catalog", &related_path),
        api.get("inventory", &stock_path),
    );
    let reviews = reviews?;
    // Recommendations are a nicety: the page stands without them.
    let (bought_together, related) = split_recommendations(related.map(|r| r.items).unwrap_or_default());
    // Stock comes from inventory itself (the catalog's copy follows it through events); a SKU
    // inventory does not know yet counts as none in stock.
    let stock = stock?;
    let (available, threshold) = if stock.is_success() {
        let s: StockView = api.decode(stock)?;
        (s.available, s.low_stock_threshold)
    } else if stock.status == StatusCode::NOT_FOUND {
        (0, 0)
    } else {
        return Err(api.error_for(&stock));
    };
    let product = decorate(ProductView { available, ..product }, threshold);
    let max_quantity = available.clamp(1, present::MAX_LINE_QUANTITY);
    let user = session.user();
    let already_reviewed = user
        .as_ref()
        .is_some_and(|u| reviews.items.iter().any(|r| r.user_id == u.id));
    let quantity = if forms.quantity.is_empty() {
        "1".to_owned()
    } else {
        forms.quantity
    };
    page_with_status(
        status,
        session,
        "shop/product.html",
        context! {
            product => value_of(&product),
            reviews => value_of(&reviews.items),
            bought_together => value_of(decorate_all(bought_together)),
            related => value_of(decorate_all(related)),
            max_quantity => max_quantity,
            quantity => quantity,
            cart_errors => forms.cart_errors,
            review => context! {
                rating => forms.review.rating,
                title => forms.review.title,
                body => forms.review.body,
            },
            review_errors => forms.review_errors,
            already_reviewed => already_reviewed,
        },
    )
}

pub async fn product(
    State(web): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
) -> Result<Response, PageError> {
    product_page(&web, &session, &slug, ProductForms::default(), StatusCode::OK).await
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ReviewForm {
    #[serde(default)]
    pub rating: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

pub async fn review(
    State(web): State<WebState>,
    session: Session,
    Path(slug): Path<String>,
    Form(form): Form<ReviewForm>,
) -> Result<Response, PageError> {
    let back = format!("/p/{}", present::path_segment(&slug));
    if session.user().is_none() {
        // Come back to the product, not to this POST-only address.
        return Err(PageError::LoginRequired {
            next: format!("{back}#reviews"),
        });
    }
    let mut errors = FieldErrors::new();
    let rating = match form.rating.trim().parse::<i64>() {
        Ok(r) if (1..=5).contains(&r) => r,
        _ => {
            errors.add("rating", "Choose a rating from 1 to 5 stars.");
            0
        }
    };
    if form.title.trim().is_empty() {
        errors.add("title", "Give your review a title.");
    }
    if errors.is_empty() {
        let api = web.api(&session);
        let product: ProductView = api
            .get_json(
                "catalog",
                &format!("/api/v1/catalog/products/by-slug/{}", present::path_segment(&slug)),
            )
            .await?;
        let id = product.id;
        let body = ReviewInput {
            rating,
            title: form.title.trim().to_owned(),
            body: Some(form.body.trim().to_owned()).filter(|b| !b.is_empty()),
        };
        let reply = api
            .post("catalog", &format!("/api/v1/catalog/products/{id}/reviews"), &body)
            .await?;
        if reply.is_success() {
            session.flash("success", "Thank you for your review.");
            return Ok(Redirect::to(&format!("{back}#reviews")).into_response());
        }
        match reply.status {
            StatusCode::UNPROCESSABLE_ENTITY => errors = FieldErrors::from_problem(&reply),
            StatusCode::CONFLICT => errors.add("_form", "You have already reviewed this product."),
            StatusCode::FORBIDDEN => errors.add("_form", "Your account may not review this product."),
            _ => return Err(api.error_for(&reply)),
        }
    }
    let forms = ProductForms {
        review: form,
        review_errors: errors,
        ..ProductForms::default()
    };
    product_page(&web, &session, &slug, forms, StatusCode::UNPROCESSABLE_ENTITY).await
}
