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
use super::{WebResult, page};
use crate::api::AppState;
use crate::api::numbers::new_number;
use crate::api::problem::ApiError;
use crate::core::number::E164;
use crate::core::validate::FieldErrors;
use crate::store::{PageRequest, StoreError};

pub fn router() -> Router<AppState> {
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
    state: &AppState,
    signed: &Signed,
    layout: Layout,
    add: AddForm,
    status: StatusCode,
) -> WebResult<Response> {
    let numbers = state
        .store
        .list_numbers(
            signed.account(),
            &PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await?;
    let mut resp = page(&NumbersPage {
        layout,
        rows: numbers
            .items
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
    State(state): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> WebResult<Response> {
    let layout = Layout::new(&signed, "Numbers", "numbers").with_notice(q.notice.as_deref());
    render(&state, &signed, layout, AddForm::default(), StatusCode::OK).await
}

/// The `{number, label}` body the API's parser takes.
fn number_json(number: &str, label: &str) -> Map<String, serde_json::Value> {
    let mut m = Map::new();
    m.insert("number".into(), json!(number));
    m.insert("label".into(), json!(label));
    m
}

async fn add(State(state): State<AppState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let (number, label) = (form.fields.get("number"), form.fields.get("label"));
    let layout = Layout::new(signed, "Numbers", "numbers");
    let again = |errors: FieldErrors| AddForm {
        number: number.to_owned(),
        label: label.to_owned(),
        errors,
    };
    let n = match new_number(&number_json(number, label)) {
        Ok(n) => n,
        Err(ApiError::Invalid(errors)) => {
            return render(
                &state,
                signed,
                layout,
                again(errors),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    match state.store.insert_number(signed.account(), &n).await {
        Ok(()) => Ok(Redirect::to("/numbers?notice=number-added").into_response()),
        Err(StoreError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.push("number", m);
            render(&state, signed, layout, again(errors), StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn label(State(state): State<AppState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let n = match new_number(&number_json(
        form.fields.get("number"),
        form.fields.get("label"),
    )) {
        Ok(n) => n,
        Err(ApiError::Invalid(errors)) => {
            let layout =
                Layout::new(signed, "Numbers", "numbers").with(Notice::error(errors.to_string()));
            return render(
                &state,
                signed,
                layout,
                AddForm::default(),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    state
        .store
        .set_number_label(signed.account(), &n.number, n.label.as_deref())
        .await?;
    Ok(Redirect::to("/numbers?notice=number-saved").into_response())
}

async fn remove(State(state): State<AppState>, form: PostForm) -> WebResult<Response> {
    let signed = &form.signed;
    let Ok(number) = E164::parse(form.fields.get("number")) else {
        return Err(super::WebError::NotFound("number"));
    };
    match state.store.delete_number(signed.account(), &number).await {
        Ok(()) => Ok(Redirect::to("/numbers?notice=number-removed").into_response()),
        Err(StoreError::Conflict(m)) => {
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
        Err(StoreError::NotFound) => Err(super::WebError::NotFound("number")),
        Err(e) => Err(e.into()),
    }
}
