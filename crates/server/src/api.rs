//! The built-in routes: `GET /health` and `POST /api/runs`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};
use tributary_orchestrator::schedule::LaunchRequest;

use crate::AppState;

/// The trigger of runs started through the API.
pub(crate) const API_TRIGGER: &str = "api";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/api/runs", post(start_run))
}

/// A JSON error response: `{"error": "…"}`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

async fn health() -> Response {
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

async fn start_run(State(state): State<AppState>, body: Bytes) -> Response {
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
            let message = state.security.scrub(&message);
            warn!(error = %message, "Run requested through the API could not start.");
            error(StatusCode::BAD_REQUEST, &message)
        }
    }
}
