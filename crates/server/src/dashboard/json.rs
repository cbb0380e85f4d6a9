//! The read side of the JSON API: the documents the pages show, as JSON (described in
//! `assets/openapi.json`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Dashboard;
use super::data::{self, DataError, RunsQuery};
use crate::AppState;
use crate::api::error;

/// `?limit=N`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub(crate) struct Limit {
    pub(crate) limit: Option<usize>,
}

/// The dashboard, or the 503 saying there is none.
pub(crate) fn dashboard(state: &AppState) -> Result<Arc<Dashboard>, DataError> {
    state.dashboard.clone().ok_or_else(|| {
        DataError::unavailable(
            "this server has no run history or lake attached (start it with `tributary serve`)",
        )
    })
}

fn respond<T: Serialize>(r: Result<T, DataError>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(e.status, &e.message),
    }
}

pub(crate) async fn runs(State(s): State<AppState>, Query(q): Query<RunsQuery>) -> Response {
    respond(async { data::runs(&*dashboard(&s)?, &q).await }.await)
}

pub(crate) async fn run(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    respond(async { data::run(&*dashboard(&s)?, &id).await }.await)
}

pub(crate) async fn dag(State(s): State<AppState>) -> Response {
    respond(async { data::dag(&*dashboard(&s)?).await }.await)
}

pub(crate) async fn tables(State(s): State<AppState>) -> Response {
    respond(
        async { Ok(serde_json::json!({ "tables": data::tables(&*dashboard(&s)?).await? })) }.await,
    )
}

pub(crate) async fn table(
    State(s): State<AppState>,
    Path((layer, name)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> Response {
    respond(async { data::table(&*dashboard(&s)?, &layer, &name, q.limit).await }.await)
}

pub(crate) async fn sample(
    State(s): State<AppState>,
    Path((layer, name)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> Response {
    respond(
        async {
            data::sample(
                &*dashboard(&s)?,
                &layer,
                &name,
                q.limit,
                data::DEFAULT_SAMPLE,
            )
            .await
        }
        .await,
    )
}

pub(crate) async fn quality(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    respond(async { data::quality(&*dashboard(&s)?, q.limit).await }.await)
}

pub(crate) async fn quarantine(
    State(s): State<AppState>,
    Path((layer, name)): Path<(String, String)>,
    Query(q): Query<Limit>,
) -> Response {
    respond(async { data::quarantine_rows(&*dashboard(&s)?, &layer, &name, q.limit).await }.await)
}

pub(crate) async fn task_history(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<Limit>,
) -> Response {
    respond(async { data::task_history(&*dashboard(&s)?, &id, q.limit).await }.await)
}

pub(crate) async fn trends(State(s): State<AppState>, Query(q): Query<Limit>) -> Response {
    respond(
        async {
            Ok(serde_json::json!({ "tasks": data::trends(&*dashboard(&s)?, q.limit).await? }))
        }
        .await,
    )
}

/// The OpenAPI document, as embedded.
pub(crate) async fn openapi() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::routes::OPENAPI,
    )
        .into_response()
}
