//! Products and categories: lists, the product form (create and edit), category CRUD.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
    let list: Value = web.api(&session).get_json("catalog", &path).await?;
    let next_page = list["next"].as_str().map(|cursor| {
        format!(
            "/admin/products{}",
            query_string(&[("q", &filter.q), ("status", &filter.status), ("cursor", cursor)])
        )
    });
    page(
        &session,
        "admin/products.html",
        context! {
            products => value_of(&list["items"]),
            total => value_of(&list["total"]),
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
    fn from_product(p: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let money = |v: &Value| {
            v["amount"]
                .as_i64()
                .map(|minor| format!("{}.{:02}", minor / 100, minor % 100))
                .unwrap_or_default()
        };
        Self {
            name: text(&p["name"]),
            sku: text(&p["sku"]),
            slug: text(&p["slug"]),
            brand: text(&p["brand"]),
            category_id: text(&p["category_id"]),
            price: money(&p["price"]),
            compare_at_price: money(&p["compare_at_price"]),
            currency: p["price"]["currency"].as_str().unwrap_or("EUR").to_owned(),
            status: text(&p["status"]),
            description: text(&p["description"]),
            attributes: p["attributes"]
                .as_object()
                .map(|attrs| {
                    attrs
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            images: p["images"]
                .as_array()
                .map(|urls| urls.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default(),
        }
    }

    /// The JSON body catalog takes (`POST` and `PUT`), or the fields that cannot become one.
    fn to_input(&self) -> Result<Value, FieldErrors> {
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
        if !category.is_empty() && uuid::Uuid::try_parse(category).is_err() {
            errors.add("category_id", "Choose a category from the list.");
        }
        let status = self.status.trim();
        if !status.is_empty() && !PRODUCT_STATUSES.contains(&status) {
            errors.add("status", "Choose draft, active or archived.");
        }
        let currency = self.currency.trim().to_ascii_uppercase();
        if !currency.is_empty() && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase())) {
            errors.add("currency", "Use a three-letter ISO code such as EUR.");
        }
        let (Ok(price), Ok(compare_at), Ok(attributes)) = (price, compare_at, attributes) else {
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
        Ok(json!({
            "sku": self.sku.trim(),
            "name": self.name.trim(),
            "slug": optional(&self.slug),
            "description": self.description.trim(),
            "status": optional(status),
            "price": { "amount": price, "currency": currency },
            "compare_at_price": compare_at.map(|amount| json!({ "amount": amount, "currency": currency })),
            "brand": optional(&self.brand),
            "category_id": optional(category),
            "attributes": attributes,
            "images": self.images.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>(),
        }))
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

/// The categories as a flat list in tree order, each with its depth (for the `<select>`).
fn flatten_categories(tree: &Value) -> Vec<Value> {
    fn walk(nodes: &Value, depth: usize, out: &mut Vec<Value>) {
        for node in nodes.as_array().into_iter().flatten() {
            out.push(json!({
                "id": node["id"],
                "name": node["name"],
                "slug": node["slug"],
                "description": node["description"],
                "parent_id": node["parent_id"],
                "product_count": node["product_count"],
                "total_product_count": node["total_product_count"],
                "depth": depth,
                "label": format!("{}{}", "— ".repeat(depth), node["name"].as_str().unwrap_or_default()),
            }));
            walk(&node["children"], depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(&tree["roots"], 0, &mut out);
    out
}

async fn category_options(web: &WebState, session: &Session) -> Result<Vec<Value>, PageError> {
    let tree: Value = web
        .api(session)
        .get_json("catalog", "/api/v1/catalog/categories")
        .await?;
    Ok(flatten_categories(&tree))
}

async fn render_form(
    web: &WebState,
    session: &Session,
    status: StatusCode,
    product: Option<&Value>,
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
        let created: Value = api.decode(reply)?;
        session.flash(
            "success",
            format!("Product {} created.", created["name"].as_str().unwrap_or_default()),
        );
        let id = created["id"].as_str().unwrap_or_default();
        return Ok(Redirect::to(&format!("/admin/products/{}", segment(id))).into_response());
    }
    if matches!(reply.status, StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT) {
        let errors = problem_errors(&reply, product_input_name);
        return render_form(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, None, &form, errors).await;
    }
    Err(api.error_for(&reply))
}

async fn fetch_product(web: &WebState, session: &Session, id: &str) -> Result<Value, PageError> {
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
    let tree: Value = web
        .api(session)
        .get_json("catalog", "/api/v1/catalog/categories")
        .await?;
    let categories = flatten_categories(&tree);
    page_with_status(
        status,
        session,
        "admin/categories.html",
        context! {
            tree => value_of(&tree["roots"]),
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

#[derive(Debug, Default, Serialize, Deserialize)]
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

fn optional(text: &str) -> Option<&str> {
    let text = text.trim();
    (!text.is_empty()).then_some(text)
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
    if !errors.is_empty() {
        return render_categories(&web, &session, StatusCode::UNPROCESSABLE_ENTITY, &form, errors).await;
    }
    let body = json!({
        "name": form.name.trim(),
        "slug": optional(&form.slug),
        "parent_id": optional(&form.parent_id),
        "description": optional(&form.description),
    });
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
async fn category_with_options(web: &WebState, session: &Session, id: &str) -> Result<(Value, Vec<Value>), PageError> {
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(PageError::NotFound);
    }
    let all = category_options(web, session).await?;
    let at = all.iter().position(|c| c["id"] == id).ok_or(PageError::NotFound)?;
    let category = all[at].clone();
    let depth = category["depth"].as_u64().unwrap_or(0);
    let below = all[at + 1..]
        .iter()
        .take_while(|c| c["depth"].as_u64().unwrap_or(0) > depth)
        .count();
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
        || {
            json!({
                "name": category["name"],
                "slug": category["slug"],
                "parent_id": category["parent_id"].as_str().unwrap_or_default(),
                "description": category["description"].as_str().unwrap_or_default(),
            })
        },
        |f| json!(f),
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
    let parent = optional(&form.parent_id);
    if parent.is_some_and(|p| uuid::Uuid::try_parse(p).is_err()) {
        errors.add("parent_id", "Choose a parent from the list.");
    }
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
    let mut body = json!({
        "name": form.name.trim(),
        "description": form.description.trim(),
        "parent_id": parent,
    });
    if let Some(slug) = optional(&form.slug) {
        body["slug"] = json!(slug);
    }
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
        assert_eq!(input["price"], json!({ "amount": 1250, "currency": "EUR" }));
        assert_eq!(input["attributes"], json!({ "color": "red", "size": "M" }));
        assert_eq!(input["images"].as_array().map(Vec::len), Some(2));
        assert_eq!(input["slug"], Value::Null);
        assert_eq!(input["compare_at_price"], Value::Null);
        assert_eq!(input["status"], "active");
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
        let product = json!({
            "name": "Mug", "sku": "MUG-1", "slug": "mug", "brand": null, "category_id": null,
            "price": { "amount": 1205, "currency": "EUR" }, "compare_at_price": null,
            "status": "draft", "description": "", "attributes": { "color": "blue" }, "images": ["https://x/1.png"],
        });
        let form = ProductForm::from_product(&product);
        assert_eq!(form.price, "12.05");
        assert_eq!(form.compare_at_price, "");
        assert_eq!(form.attributes, "color: blue");
        assert_eq!(form.to_input().expect("round trip")["price"]["amount"], 1205);
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
        let tree = json!({ "roots": [
            { "id": "a", "name": "Clothing", "children": [ { "id": "b", "name": "Shirts", "children": [] } ] },
            { "id": "c", "name": "Home", "children": [] },
        ]});
        let flat = flatten_categories(&tree);
        let labels: Vec<_> = flat
            .iter()
            .map(|c| c["label"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(labels, ["Clothing", "— Shirts", "Home"]);
    }
}
