//! Browsing: the home page, category and search listings with facets, product pages and reviews.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::Deserialize;
use serde_json::{Value, json};

use super::present::{self, ListingFilters};
use crate::forms::{FieldErrors, Form};
use crate::render::{page, page_with_status, value_of};
use crate::{PageError, Session, WebState};

/// Products per listing page (a multiple of 2, 3 and 4 so the grid rows fill up).
const PAGE_SIZE: u32 = 24;
const FEATURED: u32 = 12;

/// A product as a card or page shows it: the API's fields plus the picture to show (its first
/// image, else a generated placeholder) and the stock badge.
pub(super) fn decorate(product: &Value, low_threshold: i64) -> Value {
    let mut p = product.clone();
    let name = p["name"].as_str().unwrap_or_default().to_owned();
    let sku = p["sku"].as_str().unwrap_or_default().to_owned();
    let placeholder = present::placeholder_image(&name, &sku);
    let images: Vec<String> = p["images"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .filter(|u| present::is_web_url(u))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (stock, stock_label) = present::stock_status(p["available"].as_i64().unwrap_or(0), low_threshold);
    if let Value::Object(map) = &mut p {
        map.insert(
            "image".into(),
            json!(images.first().cloned().unwrap_or_else(|| placeholder.clone())),
        );
        map.insert("gallery".into(), json!(images));
        map.insert("placeholder".into(), json!(placeholder));
        map.insert("stock".into(), json!(stock));
        map.insert("stock_label".into(), json!(stock_label));
    }
    p
}

fn decorate_all(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .map(|items| items.iter().map(|p| decorate(p, 0)).collect())
        .unwrap_or_default()
}

pub async fn home(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    let api = web.api(&session);
    let featured_path = format!("/api/v1/catalog/products?sort=rating&in_stock=true&limit={FEATURED}");
    let (featured, tree) = tokio::join!(
        api.get_json::<Value>("catalog", &featured_path),
        api.get_json::<Value>("catalog", "/api/v1/catalog/categories"),
    );
    let (featured, tree) = (featured?, tree?);
    page(
        &session,
        "shop/home.html",
        context! {
            products => value_of(decorate_all(&featured)),
            categories => value_of(&tree["roots"]),
        },
    )
}

/// The node of `tree` (`roots`, each with `children`) whose slug is `slug`.
fn find_category<'a>(nodes: &'a Value, slug: &str) -> Option<&'a Value> {
    nodes.as_array()?.iter().find_map(|node| {
        if node["slug"].as_str() == Some(slug) {
            Some(node)
        } else {
            find_category(&node["children"], slug)
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
    let tree: Value = api.get_json("catalog", "/api/v1/catalog/categories").await?;
    let id = find_category(&tree["roots"], &slug)
        .and_then(|c| c["id"].as_str())
        .ok_or(PageError::NotFound)?
        .to_owned();
    let detail: Value = api
        .get_json(
            "catalog",
            &format!("/api/v1/catalog/categories/{}", present::path_segment(&id)),
        )
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
    category: Option<Value>,
) -> Result<Response, PageError> {
    let api = web.api(session);
    let category_id = category.as_ref().and_then(|c| c["id"].as_str());
    let (query, price_errors) = filters.api_query(category_id, PAGE_SIZE);
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
    let (products, total, next) = if list.is_success() {
        let page: Value = api.decode(list)?;
        let next = page["next"].as_str().map(|n| filters.next_page_url(base, n));
        (decorate_all(&page), page["total"].as_i64().unwrap_or(0), next)
    } else if list.status == StatusCode::UNPROCESSABLE_ENTITY {
        let problem = FieldErrors::from_problem(&list);
        errors.add(
            "_form",
            problem
                .get("q")
                .map(|m| format!("Search: {m}"))
                .unwrap_or_else(|| list.problem_detail()),
        );
        (Vec::new(), 0, None)
    } else {
        return Err(api.error_for(&list));
    };
    let facets: Value = if facets.is_success() {
        api.decode(facets)?
    } else {
        json!({})
    };
    let price_links: Vec<Value> = facets["price_buckets"]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter(|b| b["count"].as_i64().unwrap_or(0) > 0)
                .map(|b| {
                    let min = b["min"]["amount"].as_i64().unwrap_or(0);
                    let max = b["max"]["amount"].as_i64();
                    json!({
                        "min": b["min"], "max": b["max"], "count": b["count"],
                        "url": filters.with_price_range(base, min, max),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let sorts: Vec<Value> = present::SORTS
        .iter()
        .filter(|(s, _)| *s != "relevance" || !filters.q.is_empty())
        .map(|(value, label)| json!({"value": value, "label": label}))
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
            brands => value_of(&facets["brands"]),
            price_links => value_of(price_links),
            sorts => value_of(sorts),
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
    let product: Value = api
        .get_json(
            "catalog",
            &format!("/api/v1/catalog/products/by-slug/{}", present::path_segment(slug)),
        )
        .await?;
    let id = present::path_segment(product["id"].as_str().unwrap_or_default());
    let sku = present::path_segment(product["sku"].as_str().unwrap_or_default());
    let reviews_path = format!("/api/v1/catalog/products/{id}/reviews?limit=50");
    let related_path = format!("/api/v1/catalog/products/{id}/related?limit=4");
    let stock_path = format!("/api/v1/inventory/{sku}");
    let (reviews, related, stock) = tokio::join!(
        api.get_json::<Value>("catalog", &reviews_path),
        api.get_json::<Value>("catalog", &related_path),
        api.get("inventory", &stock_path),
    );
    let reviews = reviews?;
    // Related products are a nicety: the page stands without them.
    let related = related.unwrap_or_else(|_| json!({"items": []}));
    // Stock comes from inventory itself (the catalog's copy follows it through events); a SKU
    // inventory does not know yet counts as none in stock.
    let stock = stock?;
    let (available, threshold) = if stock.is_success() {
        let s: Value = api.decode(stock)?;
        (
            s["available"].as_i64().unwrap_or(0),
            s["low_stock_threshold"].as_i64().unwrap_or(0),
        )
    } else if stock.status == StatusCode::NOT_FOUND {
        (0, 0)
    } else {
        return Err(api.error_for(&stock));
    };
    let mut product = decorate(&product, threshold);
    product["available"] = json!(available);
    let (stock_kind, stock_label) = present::stock_status(available, threshold);
    product["stock"] = json!(stock_kind);
    product["stock_label"] = json!(stock_label);
    let max_quantity = available.clamp(1, present::MAX_LINE_QUANTITY);
    let user = session.user();
    let already_reviewed = user.as_ref().is_some_and(|u| {
        reviews["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|r| r["user_id"].as_str() == Some(u.id.to_string().as_str()))
        })
    });
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
            reviews => value_of(&reviews["items"]),
            related => value_of(decorate_all(&related)),
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
        let product: Value = api
            .get_json(
                "catalog",
                &format!("/api/v1/catalog/products/by-slug/{}", present::path_segment(&slug)),
            )
            .await?;
        let id = present::path_segment(product["id"].as_str().unwrap_or_default());
        let body = json!({
            "rating": rating,
            "title": form.title.trim(),
            "body": Some(form.body.trim()).filter(|b| !b.is_empty()),
        });
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
