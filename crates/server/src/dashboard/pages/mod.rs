//! The HTML pages: the same documents as the JSON API, rendered on the server through the
//! templates ([`super::templates`]) with inline SVG. Each handler turns a document into what
//! its template shows (text, links, buttons) and nothing else: the engine escapes it all. The
//! only script (`/assets/app.js`) sends the buttons' POSTs and reloads pages of runs in
//! progress.

mod runs;
mod tables;
mod tasks;

pub(crate) use runs::{run, runs};
pub(crate) use tables::{quality, quarantine, table, tables};
pub(crate) use tasks::{lineage, task, trends};

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use minijinja::Value;
use serde::Serialize;
use tracing::error;
use tributary_orchestrator::state::TaskRecord;

use super::data::DataError;
use super::format::{bytes, duration, opt_count, time};
use super::templates::{Layout, Nav, render as render_template};
use crate::AppState;

/// The result of one page: its title, template, what the template shows and whether the page
/// reloads itself.
struct Page {
    title: String,
    template: &'static str,
    view: Value,
    refresh: bool,
}

impl Page {
    fn new(title: impl Into<String>, template: &'static str, view: &impl Serialize) -> Page {
        Page {
            title: title.into(),
            template,
            view: Value::from_serialize(view),
            refresh: false,
        }
    }
}

/// What `error.html` shows.
#[derive(Serialize)]
struct ErrorView<'a> {
    status: u16,
    message: &'a str,
}

fn render(s: &AppState, nav: Nav, page: Result<Page, DataError>) -> Response {
    let project = s
        .dashboard
        .as_ref()
        .map(|d| d.project().to_string())
        .unwrap_or_else(|| "Tributary".into());
    let (status, template, title, refresh, view) = match page {
        Ok(p) => (StatusCode::OK, p.template, p.title, p.refresh, p.view),
        Err(e) => {
            let view = Value::from_serialize(ErrorView {
                status: e.status.as_u16(),
                message: &e.message,
            });
            let title = e.status.canonical_reason().unwrap_or("Error").to_string();
            (e.status, "error.html", title, false, view)
        }
    };
    let layout = Layout {
        project: &project,
        title: &title,
        nav,
        csrf: s.security.csrf(),
        refresh,
    };
    match render_template(template, &layout, view) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            error!(template = %template, error = %e, "Page rendering failed.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error: the page could not be rendered ({e}); please report it\n"),
            )
                .into_response()
        }
    }
}

/// `/`: the runs.
pub(crate) async fn index() -> Redirect {
    Redirect::to("/runs")
}

/// A link: `<a href="{href}">{text}</a>` in the templates.
#[derive(Debug, Clone, Serialize)]
struct Link {
    href: String,
    text: String,
}

fn link(href: impl Into<String>, text: impl Into<String>) -> Link {
    Link {
        href: href.into(),
        text: text.into(),
    }
}

/// A button that POSTs `body` (JSON) to `url` through the page's script, then opens the run it
/// started.
#[derive(Debug, Serialize)]
struct Button {
    id: &'static str,
    url: String,
    body: String,
    label: &'static str,
}

fn secs_between(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some((b - a).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6),
        _ => None,
    }
}

fn opt_duration(secs: Option<f64>) -> String {
    secs.map(duration).unwrap_or_else(|| "–".into())
}

/// The cells of a task record (`task_cells` in `macros.html`).
#[derive(Debug, Serialize)]
struct TaskCells {
    status: &'static str,
    attempts: u32,
    started: String,
    duration: String,
    rows: String,
    bytes: String,
    error_class: String,
    error: String,
}

fn task_cells(t: &TaskRecord) -> TaskCells {
    TaskCells {
        status: t.status.as_str(),
        attempts: t.attempts,
        started: time(t.started_at),
        duration: opt_duration(secs_between(t.started_at, t.finished_at)),
        rows: opt_count(t.rows),
        bytes: t.bytes.map(bytes).unwrap_or_else(|| "–".into()),
        error_class: t.error_class.clone().unwrap_or_default(),
        error: t.error.clone().unwrap_or_default(),
    }
}

// ---- assets ----

pub(crate) async fn css() -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../../assets/app.css"),
    )
        .into_response()
}

pub(crate) async fn js() -> Response {
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../../../assets/app.js"),
    )
        .into_response()
}
