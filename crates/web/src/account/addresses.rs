//! The signed-in user's address book: saved shipping addresses with one default, which checkout
//! offers. Identity keeps the book and its rules; this page lists it, adds to it, moves the
//! default and removes addresses.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::api::identity::{AddressBook, AddressRequest, AddressView};
use contracts::api::ordering::{RawAddress, ShippingMethods};
use http::StatusCode;
use minijinja::context;
use platform::http::Path;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api_errors;
use crate::api::Api;
use crate::countries::country_options;
use crate::forms::{FieldErrors, Form, NoFields};
use crate::render::{page_with_status, value_of};
use crate::{PageError, Session, WebState};

const BOOK: &str = "/api/v1/users/me/addresses";

pub(super) fn routes() -> Router<WebState> {
    Router::new()
        .route("/account/addresses", get(addresses_page).post(add_address))
        .route("/account/addresses/{id}/edit", get(edit_page).post(save_edit))
        .route("/account/addresses/{id}/default", post(make_default))
        .route("/account/addresses/{id}/remove", post(remove_address))
}

/// The add form, as typed.
#[derive(Debug, Default, Deserialize, Serialize)]
struct AddressForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    phone: String,
    /// "Use as my default address" (a checkbox: present when ticked).
    #[serde(default)]
    default: String,
}

/// Identity's field names → the form's inputs and their labels.
const INPUTS: &[(&str, &str, &str)] = &[
    ("label", "label", "Label"),
    ("address.name", "name", "Full name"),
    ("address.line1", "line1", "Address line 1"),
    ("address.line2", "line2", "Address line 2"),
    ("address.city", "city", "City"),
    ("address.postal_code", "postal_code", "Postal code"),
    ("address.country", "country", "Country"),
    ("address.phone", "phone", "Phone"),
];

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

impl AddressForm {
    fn request(&self) -> AddressRequest {
        AddressRequest {
            label: optional(&self.label),
            address: RawAddress {
                name: self.name.clone(),
                line1: self.line1.clone(),
                line2: optional(&self.line2),
                city: self.city.clone(),
                postal_code: self.postal_code.clone(),
                country: self.country.clone(),
                phone: optional(&self.phone),
            },
            default: !self.default.is_empty(),
        }
    }
}

async fn render(
    api: &Api<'_>,
    session: &Session,
    status: StatusCode,
    form: &AddressForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let (book, methods) = tokio::join!(
        api.get_json::<AddressBook>("identity", BOOK),
        api.get_json::<ShippingMethods>("ordering", "/api/v1/orders/shipping-methods"),
    );
    let (book, methods) = (book?, methods?);
    let full = book.items.len() >= book.limit;
    page_with_status(
        status,
        session,
        "account/addresses.html",
        context! {
            addresses => value_of(&book.items),
            limit => book.limit,
            full => full,
            countries => value_of(country_options(&methods.countries)),
            form => value_of(form),
            errors => errors,
        },
    )
}

async fn addresses_page(State(web): State<WebState>, session: Session) -> Result<Response, PageError> {
    let user = session.require_user()?;
    let form = AddressForm {
        name: user.name,
        country: "DE".into(),
        ..AddressForm::default()
    };
    render(&web.api(&session), &session, StatusCode::OK, &form, FieldErrors::new()).await
}

async fn add_address(
    State(web): State<WebState>,
    session: Session,
    Form(form): Form<AddressForm>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let api = web.api(&session);
    let reply = api.post("identity", BOOK, &form.request()).await?;
    if reply.is_success() {
        session.flash("success", "The address is saved.");
        return Ok(Redirect::to("/account/addresses").into_response());
    }
    let status = reply.status;
    if status != StatusCode::UNPROCESSABLE_ENTITY && status != StatusCode::CONFLICT {
        return Err(api.error_for(&reply));
    }
    let errors = api_errors(&reply, INPUTS);
    render(&api, &session, status, &form, errors).await
}

impl From<&AddressView> for AddressForm {
    fn from(saved: &AddressView) -> Self {
        let a = &saved.address;
        Self {
            label: saved.label.clone().unwrap_or_default(),
            name: a.name.clone(),
            line1: a.line1.clone(),
            line2: a.line2.clone().unwrap_or_default(),
            city: a.city.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
            phone: a.phone.clone().unwrap_or_default(),
            default: if saved.is_default { "on".into() } else { String::new() },
        }
    }
}

async fn render_edit(
    api: &Api<'_>,
    session: &Session,
    status: StatusCode,
    id: Uuid,
    form: &AddressForm,
    errors: FieldErrors,
) -> Result<Response, PageError> {
    let methods: ShippingMethods = api.get_json("ordering", "/api/v1/orders/shipping-methods").await?;
    page_with_status(
        status,
        session,
        "account/address_edit.html",
        context! {
            id => id.to_string(),
            countries => value_of(country_options(&methods.countries)),
            form => value_of(form),
            errors => errors,
        },
    )
}

async fn edit_page(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id = address_id(&id)?;
    let api = web.api(&session);
    let book: AddressBook = api.get_json("identity", BOOK).await?;
    let saved = book.items.iter().find(|a| a.id == id).ok_or(PageError::NotFound)?;
    render_edit(
        &api,
        &session,
        StatusCode::OK,
        id,
        &AddressForm::from(saved),
        FieldErrors::new(),
    )
    .await
}

async fn save_edit(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<AddressForm>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id = address_id(&id)?;
    let api = web.api(&session);
    let reply = api.put("identity", &format!("{BOOK}/{id}"), &form.request()).await?;
    match reply.status {
        s if s.is_success() => {
            session.flash("success", "The address is saved.");
            Ok(Redirect::to("/account/addresses").into_response())
        }
        StatusCode::NOT_FOUND => {
            session.flash("info", "That address was removed meanwhile.");
            Ok(Redirect::to("/account/addresses").into_response())
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let errors = api_errors(&reply, INPUTS);
            render_edit(&api, &session, StatusCode::UNPROCESSABLE_ENTITY, id, &form, errors).await
        }
        _ => Err(api.error_for(&reply)),
    }
}

/// An address id from the path: anything but a UUID names no address (and must not reach the
/// API's path).
fn address_id(id: &str) -> Result<Uuid, PageError> {
    Uuid::parse_str(id).map_err(|_| PageError::NotFound)
}

async fn make_default(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id = address_id(&id)?;
    let api = web.api(&session);
    let reply = api.post("identity", &format!("{BOOK}/{id}/default"), &()).await?;
    match reply.status {
        status if status.is_success() => session.flash("success", "That address is now your default."),
        StatusCode::NOT_FOUND => session.flash("info", "That address was removed meanwhile."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/account/addresses").into_response())
}

async fn remove_address(
    State(web): State<WebState>,
    session: Session,
    Path(id): Path<String>,
    Form(_): Form<NoFields>,
) -> Result<Response, PageError> {
    session.require_user()?;
    let id = address_id(&id)?;
    let api = web.api(&session);
    let reply = api.delete("identity", &format!("{BOOK}/{id}")).await?;
    match reply.status {
        status if status.is_success() => session.flash("success", "The address is removed."),
        // Removed already (another tab): the list is what matters.
        StatusCode::NOT_FOUND => session.flash("info", "That address was already removed."),
        _ => return Err(api.error_for(&reply)),
    }
    Ok(Redirect::to("/account/addresses").into_response())
}
