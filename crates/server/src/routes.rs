//! Every route of the server, in one table: the router is built from it, [`routes`] lists it,
//! and a test checks that the OpenAPI document (`assets/openapi.json`) describes exactly these.

use std::collections::BTreeMap;

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};

use crate::AppState;
use crate::api::{self, error};
use crate::dashboard::{json, pages};
use crate::metrics;

/// The OpenAPI 3 document of every route, served at `/api/openapi.json`.
pub(crate) const OPENAPI: &str = include_str!("../assets/openapi.json");

/// One route: a method and a path (`{name}` marks a path parameter, as in OpenAPI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteInfo {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, e.g. `/api/runs/{id}`.
    pub path: &'static str,
}

struct Route {
    info: RouteInfo,
    handler: MethodRouter<AppState>,
}

fn r(method: &'static str, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        info: RouteInfo { method, path },
        handler,
    }
}

fn table() -> Vec<Route> {
    vec![
        // Health, metrics and the API description.
        r("GET", "/health", get(api::health)),
        r("GET", "/metrics", get(metrics::metrics)),
        r("GET", "/api/openapi.json", get(json::openapi)),
        // The JSON API.
        r("GET", "/api/runs", get(json::runs)),
        r("POST", "/api/runs", post(api::start_run)),
        r("GET", "/api/runs/{id}", get(json::run)),
        r("POST", "/api/runs/{id}/resume", post(api::resume_run)),
        r("GET", "/api/dag", get(json::dag)),
        r("GET", "/api/tables", get(json::tables)),
        r("GET", "/api/tables/{layer}/{name}", get(json::table)),
        r(
            "GET",
            "/api/tables/{layer}/{name}/sample",
            get(json::sample),
        ),
        r("GET", "/api/quality", get(json::quality)),
        r(
            "GET",
            "/api/quality/quarantine/{layer}/{name}",
            get(json::quarantine),
        ),
        r("GET", "/api/tasks/{id}/history", get(json::task_history)),
        r("GET", "/api/trends", get(json::trends)),
        // The pages and their assets.
        r("GET", "/", get(pages::index)),
        r("GET", "/runs", get(pages::runs)),
        r("GET", "/runs/{id}", get(pages::run)),
        r("GET", "/lineage", get(pages::lineage)),
        r("GET", "/tables", get(pages::tables)),
        r("GET", "/tables/{layer}/{name}", get(pages::table)),
        r("GET", "/quality", get(pages::quality)),
        r(
            "GET",
            "/quality/quarantine/{layer}/{name}",
            get(pages::quarantine),
        ),
        r("GET", "/tasks/{id}", get(pages::task)),
        r("GET", "/trends", get(pages::trends)),
        r("GET", "/assets/app.css", get(pages::css)),
        r("GET", "/assets/app.js", get(pages::js)),
    ]
}

/// Every route the server answers (besides `extra` routes given to [`crate::router`]).
pub fn routes() -> Vec<RouteInfo> {
    table().into_iter().map(|r| r.info).collect()
}

/// The router of [`table`]: the methods of one path merged into one route.
pub(crate) fn router() -> Router<AppState> {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for route in table() {
        let merged = match by_path.remove(route.info.path) {
            Some(existing) => existing.merge(route.handler),
            None => route.handler,
        };
        by_path.insert(route.info.path, merged);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

/// What answers a path no route serves.
pub(crate) async fn not_found(uri: Uri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    error(
        StatusCode::NOT_FOUND,
        &format!("no route {path}; GET /api/openapi.json lists them"),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI document describes exactly the routes of the table, each with its path
    /// parameters and a response.
    #[test]
    fn openapi_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(OPENAPI).unwrap_or_else(|e| panic!("openapi.json: {e}"));
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        let paths = doc["paths"]
            .as_object()
            .unwrap_or_else(|| panic!("no paths"));
        for (path, item) in paths {
            let item = item.as_object().unwrap_or_else(|| panic!("{path}"));
            for (method, op) in item {
                if method == "parameters" {
                    continue;
                }
                documented.insert((method.to_ascii_uppercase(), path.clone()));
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}: no responses"
                );
                assert!(op["summary"].is_string(), "{method} {path}: no summary");
                // Every `{param}` of the path is documented as a path parameter.
                let params: BTreeSet<String> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(
                        item.get("parameters")
                            .and_then(|p| p.as_array())
                            .into_iter()
                            .flatten(),
                    )
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                let in_path: BTreeSet<String> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .map(str::to_string)
                    .collect();
                assert_eq!(params, in_path, "{method} {path}: path parameters");
            }
        }
        let served: BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        assert_eq!(
            served.difference(&documented).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "served but not documented"
        );
        assert_eq!(
            documented.difference(&served).collect::<Vec<_>>(),
            Vec::<&(String, String)>::new(),
            "documented but not served"
        );
        // Every `$ref` points at a schema that exists.
        let text = OPENAPI;
        for part in text.split("\"$ref\": \"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "missing schema {name}"
            );
        }
    }
}
