//! Numbers: My Numbers, the account's DID numbers — add, label, remove.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, json};

use super::form::PostForm;
use super::session::Signed;
use super::view::{Layout, Notice, When, when};
use super::{WebError, WebResult, WebState, page};
use crate::core::validate::FieldErrors;
use crate::service::numbers::{self, NumberError};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/numbers", get(list).post(add))
        .route("/numbers/label", post(label))
        .route("/numbers/remove", post(remove))
}

struct NumberRow {
    number: String,
    label: String,
    added: When,
}

#[derive(Template)]
#[template(path = "numbers.html")]
struct NumbersPage {
    layout: Layout,
    rows: Vec<NumberRow>,
    /// What the Add form shows again after an error.
    number: String,
    label: String,
    number_error: Option<String>,
    label_error: Option<String>,
}

/// The Add form's values and errors.
#[derive(Default)]
struct AddForm {
    number: String,
    label: String,
    errors: FieldErrors,
}

impl AddForm {
    fn error(&self, field: &str) -> Option<String> {
        let msgs: Vec<&str> = self
            .errors
            .0
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect();
        (!msgs.is_empty()).then(|| msgs.join("; "))
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    notice: Option<String>,
}

async fn render(
    state: &WebState,
    signed: &Signed,
    layout: Layout,
    add: AddForm,
    status: StatusCode,
) -> WebResult<Response> {
    let numbers = numbers::all(&*state.svc.store, &signed.actor()).await?;
    let mut resp = page(&NumbersPage {
        layout,
        rows: numbers
            .into_iter()
            .map(|n| NumberRow {
                number: n.number.to_string(),
                label: n.label.unwrap_or_default(),
                added: when(n.created_at),
            })
            .collect(),
        number_error: add.error("number"),
        label_error: add.error("label"),
        number: add.number,
        label: add.label,
    })?;
    *resp.status_mut() = status;
    Ok(resp)
}

async fn list(
    State(state): State<WebState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let layout = Layout::new(&signed, "Numbers", "numbers").with_notice(q.notice.as_deref());
    render(&state, &signed, layout, AddForm::default(), StatusCode::OK).await
}

/// The `{number, label}` body the operations take.
fn number_json(number: &str, label: &str) -> Map<String, serde_json::Value> {
    let mut m = Map::new();
    m.insert("number".into(), json!(number));
    m.insert("label".into(), json!(label));
    m
}

async fn add(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let (number, label) = (form.fields.get("number"), form.fields.get("label"));
    let again = |errors: FieldErrors| AddForm {
        number: number.to_owned(),
        label: label.to_owned(),
        errors,
    };
    let (errors, status) = match numbers::add(
        &*state.svc.store,
        &state.svc.quotas(),
        &signed.actor(),
        &number_json(number, label),
    )
    .await
    {
        Ok(_) => return Ok(Redirect::to("/numbers?notice=number-added").into_response()),
        Err(NumberError::Invalid(errors)) => (errors, StatusCode::UNPROCESSABLE_ENTITY),
        Err(NumberError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.push("number", m);
            (errors, StatusCode::CONFLICT)
        }
        Err(e) => return Err(e.into()),
    };
    let layout = Layout::new(signed, "Numbers", "numbers");
    render(&state, signed, layout, again(errors), status).await
}

async fn label(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let number = numbers::parse_path(form.fields.get("number"))?;
    let mut body = Map::new();
    body.insert("label".into(), json!(form.fields.get("label")));
    match numbers::update(&*state.svc.store, &signed.actor(), &number, &body).await {
        Ok(_) => Ok(Redirect::to("/numbers?notice=number-saved").into_response()),
        Err(NumberError::Invalid(errors)) => {
            let layout =
                Layout::new(signed, "Numbers", "numbers").with(Notice::error(errors.to_string()));
            render(
                &state,
                signed,
                layout,
                AddForm::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove(State(state): State<WebState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let number = numbers::parse_path(form.fields.get("number"))?;
    match numbers::remove(&*state.svc.store, &signed.actor(), &number).await {
        Ok(()) => Ok(Redirect::to("/numbers?notice=number-removed").into_response()),
        Err(NumberError::Conflict(m)) => {
            let layout = Layout::new(signed, "Numbers", "numbers").with(Notice::error(m));
            render(
                &state,
                signed,
                layout,
                AddForm::default(),
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(NumberError::NotFound) => Err(WebError::NotFound("number")),
        Err(e) => Err(e.into()),
    }
}
