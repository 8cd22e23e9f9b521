//! Services > Webhook: the list ([`list`]), the Add / edit form with its live preview
//! ([`form`]), and a webhook's own page with what can be done there ([`show`]): settings,
//! enable/disable, delete, signing secret, Send test, delivery log and the deliveries-per-hour
//! chart.

mod form;
mod list;
mod show;

use axum::Router;
use axum::routing::{get, post};

use super::WebState;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/webhooks", get(list::list).post(form::create))
        .route("/webhooks/new", get(form::new_form))
        .route("/webhooks/preview", get(form::preview))
        .route("/webhooks/test", post(form::test))
        .route("/webhooks/{id}", get(show::show).post(form::save))
        .route("/webhooks/{id}/edit", get(form::edit_form))
        .route("/webhooks/{id}/enable", post(show::enable))
        .route("/webhooks/{id}/disable", post(show::disable))
        .route(
            "/webhooks/{id}/delete",
            get(show::confirm_delete).post(show::delete),
        )
        .route("/webhooks/{id}/secret", get(show::secret))
        .route("/webhooks/{id}/secret/rotate", post(show::rotate_secret))
        .route("/webhooks/{id}/headers/reveal", post(show::reveal_headers))
        .route("/webhooks/{id}/test", post(show::test))
        .route("/webhooks/{id}/retry", post(show::retry))
}
