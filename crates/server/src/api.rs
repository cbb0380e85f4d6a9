//! The state-changing routes and health: `GET /health`, `POST /api/runs` (start a run) and
//! `POST /api/runs/{id}/resume` (rerun a run's tasks that did not succeed).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};
use tributary_orchestrator::schedule::LaunchRequest;

use crate::AppState;

/// The trigger of runs started through the API.
pub(crate) const API_TRIGGER: &str = "api";

/// `message` without the token or the project's secrets.
fn scrub_all(state: &AppState, message: &str) -> String {
    let m = state.security.scrub(message);
    match &state.dashboard {
        Some(d) => d.scrub(&m),
        None => m,
    }
}

/// A JSON error response: `{"error": "…"}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

pub(crate) async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// The body of `POST /api/runs`; an empty body runs everything.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    /// Selectors, as `tributary run --select` takes them.
    #[serde(default)]
    select: Vec<String>,
    /// Rebuild incremental tables from scratch.
    #[serde(default)]
    full_refresh: bool,
}

pub(crate) async fn start_run(State(state): State<AppState>, body: Bytes) -> Response {
    let req: RunRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RunRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "invalid request body: {e}; expected {{\"select\": [\"…\"], \"full_refresh\": false}}"
                    ),
                );
            }
        }
    };
    let launch = LaunchRequest {
        selectors: req.select,
        full_refresh: req.full_refresh,
        trigger: API_TRIGGER.into(),
        resume: None,
    };
    match state.launcher.launch(launch).await {
        Ok(run) => {
            info!(run_id = %run.run_id, "Run started through the API.");
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "run_id": run.run_id })),
            )
                .into_response()
        }
        Err(message) => {
            let message = scrub_all(&state, &message);
            warn!(error = %message, "Run requested through the API could not start.");
            error(StatusCode::BAD_REQUEST, &message)
        }
    }
}

/// `POST /api/runs/{id}/resume`: a new run of the tasks of run `id` (or a unique prefix) that
/// did not succeed, as `tributary run --resume`. The body, if any, must be a JSON object
/// (`{}`); nothing in it is read.
pub(crate) async fn resume_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !body.iter().all(u8::is_ascii_whitespace)
        && !matches!(
            serde_json::from_slice::<serde_json::Value>(&body),
            Ok(serde_json::Value::Object(_))
        )
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid request body: send nothing or `{}`",
        );
    }
    let launch = LaunchRequest {
        selectors: Vec::new(),
        full_refresh: false,
        trigger: API_TRIGGER.into(),
        resume: Some(id.clone()),
    };
    let scrub = |m: &str| scrub_all(&state, m);
    match state.launcher.launch(launch).await {
        Ok(run) => {
            info!(run_id = %run.run_id, resumes = %scrub(&id), "Run resumed through the API.");
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({ "run_id": run.run_id, "resumes": scrub(&id) })),
            )
                .into_response()
        }
        Err(message) => {
            let message = scrub(&message);
            warn!(error = %message, "Resume requested through the API could not start.");
            error(StatusCode::BAD_REQUEST, &message)
        }
    }
}
