//! Products and categories: lists, the product form (create and edit), category CRUD.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::catalog::{
    CategoryInput, CategoryNode, CategoryPatch, CategoryTree, CategoryView, MoneyJson, ProductInput, ProductPage,
    ProductStatus, ProductView,
};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{problem_errors, query_string, segment, sentence};
use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page, page_with_status, parse_money, value_of};
use crate::{PageError, Session, WebState};

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/admin/products", get(products).post(create_product))
        .route("/admin/products/new", get(new_product))
        .route("/admin/products/{id}", get(edit_product).post(update_product))
        .route("/admin/products/{id}/delete", post(delete_product))
        .route("/admin/categories", get(categories).post(create_category))
        .route("/admin/categories/{id}", get(category_page).post(update_category))
        .route(
            "/admin/categories/{id}/delete",
            get(confirm_delete_category).post(delete_category),
        )
}

const PRODUCT_STATUSES: [&str; 3] = ["draft", "active", "archived"];

#[derive(Debug, Default, Deserialize)]
struct ProductFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

async fn products(
    State(web): State<WebState>,
    session: Session,
    Query(filter): Query<ProductFilter>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let status = if PRODUCT_STATUSES.contains(&filter.status.as_str()) {
        filter.status.as_str()
    } else {
        "all"
    };
    let path = format!(
        "/api/v1/catalog/products{}",
        query_string(&[
            ("q", &filter.q),
            ("status", status),
            ("limit", "50"),
            ("cursor", &filter.cursor),
        ])
    );
    let list: ProductPage = web.api(&session).get_json("catalog", &path).await?;
    let next_page = list.next.as_deref().map(|cursor| {
        format!(
            "/admin/products{}",
            query_string(&[("q", &filter.q), ("status", &filter.status), ("cursor", cursor)])
        )
    });
    page(
        &session,
        "admin/products.html",
        context! {
            products => value_of(&list.items),
            total => list.total,
            q => filter.q,
            status => filter.status,
            statuses => PRODUCT_STATUSES,
            next_page => next_page,
        },
    )
}

/// What the product form posts: text as typed, validated here and by catalog.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct ProductForm {
    name: String,
    sku: String,
    slug: String,
    brand: String,
    category_id: String,
    price: String,
    compare_at_price: String,
    currency: String,
    status: String,
    description: String,
    attributes: String,
    images: String,
}

impl ProductForm {
    /// The form filled from catalog's product.
    fn from_product(p: &ProductView) -> Self {
        let money = |m: &MoneyJson| format!("{}.{:02}", m.amount / 100, m.amount % 100);
        Self {
            name: p.name.clone(),
            sku: p.sku.clone(),
            slug: p.slug.clone(),
            brand: p.brand.clone().unwrap_or_default(),
            category_id: p.category_id.map(|id| id.to_string()).unwrap_or_default(),
            price: money(&p.price),
            compare_at_price: p.compare_at_price.as_ref().map(money).unwrap_or_default(),
            currency: p.price.currency.clone().unwrap_or_else(|| "EUR".into()),
            status: p.status.as_str().to_owned(),
            description: p.description.clone(),
            attributes: p
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            images: p.images.join("\n"),
        }
    }

    /// The JSON body catalog takes (`POST` and `PUT`), or the fields that cannot become one.
    fn to_input(&self) -> Result<ProductInput, FieldErrors> {
        let mut errors = FieldErrors::new();
        let price = parse_money(&self.price).map_err(|m| errors.add("price", sentence(m)));
        let compare_at = if self.compare_at_price.trim().is_empty() {
            Ok(None)
        } else {
            parse_money(&self.compare_at_price)
                .map(Some)
                .map_err(|m| errors.add("compare_at_price", sentence(m)))
        };
        let attributes = parse_attributes(&self.attributes).map_err(|m| errors.add("attributes", m));
        let category = self.category_id.trim();
        let category = match category {
            "" => Ok(None),
            id => Uuid::try_parse(id)
                .map(Some)
                .map_err(|_| errors.add("category_id", "Choose a category from the list.")),
        };
        let status = match self.status.trim() {
            "" => Ok(None),
            status => status
                .parse::<ProductStatus>()
                .map(Some)
                .map_err(|_| errors.add("status", "Choose draft, active or archived.")),
        };
        let currency = self.currency.trim().to_ascii_uppercase();
        if !currency.is_empty() && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase())) {
            errors.add("currency", "Use a three-letter ISO code such as EUR.");
        }
        let (Ok(price), Ok(compare_at), Ok(attributes), Ok(category_id), Ok(status)) =
            (price, compare_at, attributes, category, status)
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let currency = (!currency.is_empty()).then_some(currency);
        let optional = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        };
        Ok(ProductInput {
            sku: self.sku.trim().to_owned(),
            name: self.name.trim().to_owned(),
            slug: optional(&self.slug),
            description: Some(self.description.trim().to_owned()),
            status,
            price: MoneyJson {
                amount: price,
                currency: currency.clone(),
            },
            compare_at_price: compare_at.map(|amount| MoneyJson { amount, currency }),
            brand: optional(&self.brand),
            category_id,
            attributes,
            images: self
                .images
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `key: value` per line (blank lines ignored) → attributes; the first bad line is named.
fn parse_attributes(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut attributes = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once(':') {
            Some((key, value)) if !key.trim().is_empty() && !value.trim().is_empty() => {
                attributes.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => return Err(format!("Line {} must look like “color: red”.", n + 1)),
        }
    }
    Ok(attributes)
}

/// catalog's field paths → the form's inputs.
fn product_input_name(api_field: &str) -> String {
    let input = match api_field {
        "price.amount" | "price" => "price",
        "price.currency" | "compare_at_price.currency" | "currency" => "currency",
        f if f.starts_with("compare_at_price") => "compare_at_price",
        f if f.starts_with("images") => "images",
        f if f.starts_with("attributes") => "attributes",
        f => f,
    };
    input.to_owned()
}

/// A category as a line of the `<select>`: indented by its depth in the tree.
#[derive(Debug, Clone, Serialize)]
struct CategoryOption {
    #[serde(flatten)]
    category: CategoryView,
    depth: usize,
    label: String,
}

/// The categories as a flat list in tree order, each with its depth (for the `<select>`).
fn flatten_categories(tree: &CategoryTree) -> Vec<CategoryOption> {
    fn walk(nodes: &[CategoryNode], depth: usize, out: &mut Vec<CategoryOption>) {
        for node in nodes {
            out.push(CategoryOption {
                category: node.category.clone(),
                depth,
                label: format!("{}{}", "— ".repeat(depth), node.category.name),
            });
            walk(&node.children, depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(&tree.roots, 0, &mut out);
    out
}

async fn category_options(web: &WebState, session: &Session) -> Result<Vec<CategoryOption>, PageError> {
    let tree: CategoryTree = web
        .api(session)
        .get_json("catalog", "/api/v1/catalog/categories")
        .await?;
    Ok(flatten_categories(&tree))
}

async fn render_form(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    product: Option<&ProductView>,
    form: &ProductForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let categories = category_options(web, session).await?;
    page_with_status(
        status,
        session,
        "admin/product_form.html",
        context! {
            product => value_of(product),
            form => value_of(form),
            errors => errors,
            categories => value_of(&categories),
            statuses => PRODUCT_STATUSES,
        },
    )
}

async fn new_product(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    let form = ProductForm {
        currency: "EUR".into(),
        status: "draft".into(),
        ..ProductForm::default()
    };
    render_form(&web, &session, StatusCode::OK, None, &form, FieldErrors::new()).await
}

async fn create_product(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<ProductForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let input = match form.to_input() {
        Ok(input) => input,
        Err(errors) => {
            return render_form(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, None, &form, errors).await;
        }
    };
    let api = web.api(&session);
    let reply = api.post("catalog", "/api/v1/catalog/products", &input).await?;
    if reply.is_success() {
        let created: ProductView = api.decode(reply)?;
        session.flash("success", format!("Product {} created.", created.name));
        return Ok(Redirect::to(&format!("/admin/products/{}", created.id)).into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, product_input_name);
        return render_form(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, None, &form, errors).await;
    }
    Err(api.error_for(&reply))
}

async fn fetch_product(web: &WebState, session: &Session, id: &str) -> Result<ProductView, PageError> {
    web.api(session)
        .get_json("catalog", &format!("/api/v1/catalog/products/{}", segment(id)))
        .await
}

async fn edit_product(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let product = fetch_product(&web, &session, &id).await?;
    let form = ProductForm::from_product(&product);
    render_form(
        &web,
        &session,
        StatusCode::OK,
        Some(&product),
        &form,
        FieldErrors::new(),
    )
    .await
}

async fn update_product(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ProductForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let product = fetch_product(&web, &session, &id).await?;
    let input = match form.to_input() {
        Ok(input) => input,
        Err(errors) => {
            return render_form(
                &web,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&product),
                &form,
                errors,
            )
            .await;
        }
    };
    let api = web.api(&session);
    let reply = api
        .put("catalog", &format!("/api/v1/catalog/products/{}", segment(&id)), &input)
        .await?;
    if reply.is_success() {
        session.flash("success", "Changes saved.");
        return Ok(Redirect::to(&format!("/admin/products/{}", segment(&id))).into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, product_input_name);
        return render_form(
            &web,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&product),
            &form,
            errors,
        )
        .await;
    }
    Err(api.error_for(&reply))
}

async fn delete_product(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let api = web.api(&session);
    let reply = api
        .delete("catalog", &format!("/api/v1/catalog/products/{}", segment(&id)))
        .await?;
    if !reply.is_success() {
        return Err(api.error_for(&reply));
    }
    session.flash("success", "Product deleted.");
    Ok(Redirect::to("/admin/products").into_response())
}

// ---- categories ------------------------------------------------------------------------------

async fn render_categories(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    form: &CategoryForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let tree: CategoryTree = web
        .api(session)
        .get_json("catalog", "/api/v1/catalog/categories")
        .await?;
    let categories = flatten_categories(&tree);
    page_with_status(
        status,
        session,
        "admin/categories.html",
        context! {
            tree => value_of(&tree.roots),
            categories => value_of(&categories),
            form => value_of(form),
            errors => errors,
        },
    )
}

async fn categories(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    session.require_staff()?;
    render_categories(
        &web,
        &session,
        StatusCode::OK,
        &CategoryForm::default(),
        FieldErrors::new(),
    )
    .await
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct CategoryForm {
    name: String,
    slug: String,
    parent_id: String,
    description: String,
    reassign_to: String,
    /// `yes` from the delete confirmation page.
    confirmed: String,
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

async fn create_category(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<CategoryForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let mut errors = FieldErrors::new();
    if form.name.trim().is_empty() {
        errors.add("name", "Enter a name.");
    }
    // The list offers existing categories only; anything else is catalog's to refuse, as before.
    let parent_id = match optional(&form.parent_id).map(|p| Uuid::try_parse(&p)) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.add("parent_id", "Choose a parent from the list.");
            None
        }
    };
    if !errors.is_empty() {
        return render_categories(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await;
    }
    let body = CategoryInput {
        name: form.name.trim().to_owned(),
        slug: optional(&form.slug),
        parent_id,
        description: optional(&form.description),
    };
    let api = web.api(&session);
    let reply = api.post("catalog", "/api/v1/catalog/categories", &body).await?;
    if reply.is_success() {
        session.flash("success", format!("Category {} added.", form.name.trim()));
        return Ok(Redirect::to("/admin/categories").into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, str::to_owned);
        return render_categories(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await;
    }
    Err(api.error_for(&reply))
}

/// One category and, for its edit form, every other category a parent may be chosen from (not
/// itself or anything below it: the catalog refuses cycles anyway, the form need not offer them).
async fn category_with_options(
    web: &WebState,
    session: &Session,
    id: &str,
) -> Result<(CategoryOption, Vec<CategoryOption>), PageError> {
    let id = Uuid::try_parse(id).map_err(|_| PageError::NotFound)?;
    let all = category_options(web, session).await?;
    let at = all
        .iter()
        .position(|c| c.category.id == id)
        .ok_or(PageError::NotFound)?;
    let category = all[at].clone();
    let below = all[at + 1..].iter().take_while(|c| c.depth > category.depth).count();
    let options = all[..at].iter().chain(&all[at + 1 + below..]).cloned().collect();
    Ok((category, options))
}

async fn render_category(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    id: &str,
    form: Option<&CategoryForm>,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let (category, parents) = category_with_options(web, session, id).await?;
    let form = form.map_or_else(
        || CategoryForm {
            name: category.category.name.clone(),
            slug: category.category.slug.clone(),
            parent_id: category.category.parent_id.map(|id| id.to_string()).unwrap_or_default(),
            description: category.category.description.clone(),
            ..CategoryForm::default()
        },
        Clone::clone,
    );
    page_with_status(
        status,
        session,
        "admin/category.html",
        context! {
            category => value_of(&category),
            parents => value_of(&parents),
            form => value_of(&form),
            errors => errors,
        },
    )
}

async fn category_page(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    render_category(&web, &session, StatusCode::OK, &id, None, FieldErrors::new()).await
}

async fn update_category(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CategoryForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let mut errors = FieldErrors::new();
    if form.name.trim().is_empty() {
        errors.add("name", "Enter a name.");
    }
    let parent = match optional(&form.parent_id).map(|p| Uuid::try_parse(&p)) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.add("parent_id", "Choose a parent from the list.");
            None
        }
    };
    if !errors.is_empty() {
        return render_category(
            &web,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &id,
            Some(&form),
            errors,
        )
        .await;
    }
    let body = CategoryPatch {
        name: Some(form.name.trim().to_owned()),
        slug: optional(&form.slug),
        description: Some(form.description.trim().to_owned()),
        parent_id: Some(parent),
    };
    let api = web.api(&session);
    let reply = api
        .patch(
            "catalog",
            &format!("/api/v1/catalog/categories/{}", segment(&id)),
            &body,
        )
        .await?;
    if reply.is_success() {
        session.flash("success", format!("Category {} saved.", form.name.trim()));
        return Ok(Redirect::to("/admin/categories").into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let mut errors = problem_errors(&reply, str::to_owned);
        if errors.is_empty() {
            errors.add("_form", sentence(&reply.problem_detail()));
        }
        return render_category(
            &web,
            &session,
            StatusCode::UNPROCESSABLE_ENTITY,
            &id,
            Some(&form),
            errors,
        )
        .await;
    }
    Err(api.error_for(&reply))
}

/// The confirmation step before a delete: what goes, how many products it holds, and where to
/// move them.
async fn confirm_delete_category(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    let (category, others) = category_with_options(&web, &session, &id).await?;
    page_with_status(
        StatusCode::OK,
        &session,
        "admin/category_delete.html",
        context! { category => value_of(&category), others => value_of(&others) },
    )
}

async fn delete_category(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CategoryForm>,
) -> Result<Response, PageError> {
    session.require_staff()?;
    // Only the confirmation page sends `confirmed`; anything else is shown that page first.
    if form.confirmed != "yes" {
        return Ok(Redirect::to(&format!("/admin/categories/{}/delete", segment(&id))).into_response());
    }
    let path = format!(
        "/api/v1/catalog/categories/{}{}",
        segment(&id),
        query_string(&[("reassign_to", &form.reassign_to)])
    );
    let api = web.api(&session);
    let reply = api.delete("catalog", &path).await?;
    after_category_change(&api, &session, &reply, "Category deleted.")
}

/// Success or a refusal (a category still in use, a cycle): both are told on the list page.
fn after_category_change(
    api: &crate::api::Api<'_>,
    session: &Session,
    reply: &platform::client::Reply,
    done: &str,
) -> Result<Response, PageError> {
    if reply.is_success() {
        session.flash("success", done);
    } else if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        session.flash("error", sentence(&reply.problem_detail()));
    } else {
        return Err(api.error_for(reply));
    }
    Ok(Redirect::to("/admin/categories").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> ProductForm {
        ProductForm {
            name: "Red shirt".into(),
            sku: "SHIRT-RED".into(),
            price: "12.50".into(),
            currency: "eur".into(),
            status: "active".into(),
            attributes: "color: red\n\n size : M ".into(),
            images: "https://img.example/1.png\n  \nhttps://img.example/2.png".into(),
            ..ProductForm::default()
        }
    }

    #[test]
    fn a_filled_form_becomes_catalogs_input() {
        let input = filled().to_input().expect("valid");
        assert_eq!(
            input.price,
            MoneyJson {
                amount: 1250,
                currency: Some("EUR".into())
            }
        );
        assert_eq!(
            input.attributes,
            BTreeMap::from([("color".into(), "red".into()), ("size".into(), "M".into())])
        );
        assert_eq!(input.images.len(), 2);
        assert_eq!(input.slug, None);
        assert_eq!(input.compare_at_price, None);
        assert_eq!(input.status, Some(ProductStatus::Active));
    }

    #[test]
    fn bad_fields_are_named() {
        let form = ProductForm {
            price: "12,5x".into(),
            compare_at_price: "abc".into(),
            attributes: "color red".into(),
            category_id: "nope".into(),
            currency: "EURO".into(),
            ..filled()
        };
        let errors = form.to_input().expect_err("invalid");
        for field in ["price", "compare_at_price", "attributes", "category_id", "currency"] {
            assert!(errors.get(field).is_some(), "{field}: {errors:?}");
        }
        assert_eq!(errors.get("attributes"), Some("Line 1 must look like “color: red”."));
    }

    #[test]
    fn a_product_fills_the_form_back() {
        let product: ProductView = serde_json::from_value(serde_json::json!({
            "id": "5f0c2a3e-8d1b-4c6a-9e7f-0a1b2c3d4e5f", "name": "Mug", "sku": "MUG-1", "slug": "mug",
            "brand": null, "category_id": null,
            "price": { "amount": 1205, "currency": "EUR" }, "compare_at_price": null,
            "status": "draft", "description": "", "attributes": { "color": "blue" }, "images": ["https://x/1.png"],
            "rating": { "average": 0.0, "count": 0, "histogram": {} }, "available": 0, "in_stock": false,
            "created_at": "2026-12-03T12:00:00Z", "updated_at": "2026-12-03T12:00:00Z", "version": 1,
        }))
        .expect("a product view");
        let form = ProductForm::from_product(&product);
        assert_eq!(form.price, "12.05");
        assert_eq!(form.compare_at_price, "");
        assert_eq!(form.attributes, "color: blue");
        assert_eq!(form.to_input().expect("round trip").price.amount, 1205);
    }

    #[test]
    fn api_fields_map_onto_inputs() {
        assert_eq!(product_input_name("price.amount"), "price");
        assert_eq!(product_input_name("price.currency"), "currency");
        assert_eq!(product_input_name("compare_at_price.amount"), "compare_at_price");
        assert_eq!(product_input_name("images[3]"), "images");
        assert_eq!(product_input_name("sku"), "sku");
    }

    #[test]
    fn categories_flatten_in_tree_order() {
        let node = |name: &str, children| {
            serde_json::json!({
                "id": Uuid::now_v7(), "parent_id": null, "name": name, "slug": name.to_lowercase(),
                "description": "", "product_count": 0, "total_product_count": 0,
                "created_at": "2026-12-03T12:00:00Z", "updated_at": "2026-12-03T12:00:00Z", "version": 1,
                "children": children,
            })
        };
        let tree: CategoryTree = serde_json::from_value(serde_json::json!({ "roots": [
            node("Clothing", serde_json::json!([node("Shirts", serde_json::json!([]))])),
            node("Home", serde_json::json!([])),
        ]}))
        .expect("a category tree");
        let flat = flatten_categories(&tree);
        let labels: Vec<_> = flat.iter().map(|c| c.label.clone()).collect();
        assert_eq!(labels, ["Clothing", "— Shirts", "Home"]);
    }
}
