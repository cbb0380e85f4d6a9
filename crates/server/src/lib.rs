//! The HTTP server of `tributary serve`: the dashboard (HTML pages), its JSON API (described by
//! the OpenAPI document at `/api/openapi.json`), Prometheus metrics at `/metrics`, and
//! `GET /health`. Every route is listed by [`routes`] and goes through the same guard
//! ([`router`]):
//! - bound to a loopback address (the default, `127.0.0.1:8080`), requests must name a loopback
//!   host in `Host` (no DNS rebinding);
//! - with a token configured, every route except `/health` needs `Authorization: Bearer TOKEN`
//!   (compared in constant time), or the session cookie a browser gets by opening any page once
//!   with `?token=TOKEN`; binding a non-loopback address without a token is refused;
//! - state-changing requests (`POST`, `PUT`, `PATCH`, `DELETE`) need `Content-Type:
//!   application/json`, an `Origin` header, if present, must be the server's own, and those
//!   authenticated by the cookie must carry the page's CSRF token in `X-Tributary-CSRF`.
//!
//! The token and the project's secrets never appear in logs or responses.
//!
//! ```no_run
//! # async fn demo(launcher: std::sync::Arc<dyn tributary_orchestrator::schedule::Launcher>)
//! # -> Result<(), Box<dyn std::error::Error>> {
//! use tributary_server::{ServerConfig, bind, router};
//! let cfg = ServerConfig::new("127.0.0.1:0".parse()?, None);
//! let server = bind(cfg).await?;
//! println!("listening on {}", server.local_addr());
//! let app = router(server.state(launcher), axum::Router::new());
//! server.run(app, tokio_util::sync::CancellationToken::new()).await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod api;
pub mod dashboard;
mod guard;
mod metrics;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tributary_core::pipeline::{ServeConfig, check_exposure, parse_bind};
use tributary_orchestrator::schedule::Launcher;

pub use axum;
pub use dashboard::{DagSource, Dashboard};
pub use routes::{RouteInfo, routes};

/// Where and how the server listens.
#[derive(Clone)]
pub struct ServerConfig {
    /// The address to listen on (port 0: any free port).
    pub bind: SocketAddr,
    /// The API token; `None` leaves the API open (allowed on loopback addresses only).
    pub token: Option<String>,
}

// By hand, so that the token never reaches a log.
impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ServerConfig {
    /// A configuration; an empty token counts as none.
    pub fn new(bind: SocketAddr, token: Option<String>) -> ServerConfig {
        ServerConfig {
            bind,
            token: token.filter(|t| !t.trim().is_empty()),
        }
    }

    /// From `serve:` in `tributary.yaml`, with `tributary serve --bind` (if given) replacing
    /// `serve.bind`.
    pub fn from_config(
        serve: &ServeConfig,
        bind_override: Option<&str>,
    ) -> Result<ServerConfig, ServerError> {
        let (bind, source) = match bind_override {
            Some(b) => (b, "--bind"),
            None => (serve.bind.as_str(), "serve.bind"),
        };
        let addr = parse_bind(bind).map_err(|e| ServerError::Config(format!("{source}: {e}")))?;
        let token = serve
            .resolved_token(&|name| std::env::var(name).ok())
            .map_err(ServerError::Config)?;
        Ok(ServerConfig::new(addr, token))
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting cannot be used (`serve.bind`, `--bind`, `serve.token`, a public address
    /// without a token); the message names it.
    #[error("{0}")]
    Config(String),
    /// The socket failed.
    #[error("{what} {address}")]
    Io {
        /// What failed (`cannot listen on`, …).
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Shared state of every route: what handlers need, and what the guard checks against.
#[derive(Clone)]
pub struct AppState {
    /// Starts runs (`POST /api/runs`, `POST /api/runs/{id}/resume`).
    pub launcher: Arc<dyn Launcher>,
    /// What the pages, the read API and `/metrics` show; without it they answer 503.
    pub dashboard: Option<Arc<Dashboard>>,
    pub(crate) security: Arc<guard::Security>,
}

impl AppState {
    /// State for a server listening on `local_addr` with `token`.
    pub fn new(
        launcher: Arc<dyn Launcher>,
        local_addr: SocketAddr,
        token: Option<String>,
    ) -> AppState {
        AppState {
            launcher,
            dashboard: None,
            security: Arc::new(guard::Security::new(local_addr, token)),
        }
    }

    /// The same state with the dashboard's data (run history, DAG, lake).
    pub fn with_dashboard(mut self, dashboard: Dashboard) -> AppState {
        self.dashboard = Some(Arc::new(dashboard));
        self
    }
}

/// The application: the built-in routes ([`routes`]: dashboard pages, JSON API, metrics,
/// health), plus `extra`, all behind the guard (token or session cookie, host, content type,
/// origin, CSRF token).
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    routes::router()
        .merge(extra)
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .with_state(state)
}

/// A server whose socket is open, not yet answering.
#[derive(Debug)]
pub struct BoundServer {
    listener: TcpListener,
    config: ServerConfig,
    local_addr: SocketAddr,
}

/// Open the listening socket. A non-loopback address without a token is refused.
pub async fn bind(config: ServerConfig) -> Result<BoundServer, ServerError> {
    check_exposure(config.bind, config.token.as_deref()).map_err(ServerError::Config)?;
    let io = |what: &'static str| {
        move |source| ServerError::Io {
            what,
            address: config.bind,
            source,
        }
    };
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(io("cannot listen on"))?;
    let local_addr = listener
        .local_addr()
        .map_err(io("cannot read the address bound for"))?;
    Ok(BoundServer {
        listener,
        config,
        local_addr,
    })
}

impl BoundServer {
    /// The address actually listened on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The state for [`router`], for this server's address and token.
    pub fn state(&self, launcher: Arc<dyn Launcher>) -> AppState {
        AppState::new(launcher, self.local_addr, self.config.token.clone())
    }

    /// Answer requests with `app` until `shutdown` is cancelled, then finish the requests in
    /// flight and return.
    pub async fn run(self, app: Router, shutdown: CancellationToken) -> Result<(), ServerError> {
        info!(
            address = %self.local_addr,
            token = self.config.token.is_some(),
            "Server listening."
        );
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(|source| ServerError::Io {
                what: "the server failed on",
                address: self.local_addr,
                source,
            })?;
        info!(address = %self.local_addr, "Server stopped.");
        Ok(())
    }
}

/// Bind `config.bind` and serve the built-in routes until `shutdown` is cancelled.
pub async fn serve(
    config: ServerConfig,
    launcher: Arc<dyn Launcher>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let server = bind(config).await?;
    let app = router(server.state(launcher), Router::new());
    server.run(app, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_project_and_override() {
        let serve = ServeConfig {
            bind: "127.0.0.1:9000".into(),
            token: Some("tok-secret".into()),
            public_url: None,
        };
        let cfg = ServerConfig::from_config(&serve, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.bind, SocketAddr::from(([127, 0, 0, 1], 9000)));
        assert!(!format!("{cfg:?}").contains("tok-secret"));
        let over =
            ServerConfig::from_config(&serve, Some("0.0.0.0:80")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(over.bind, SocketAddr::from(([0, 0, 0, 0], 80)));
        let bad = ServerConfig::from_config(&serve, Some("nowhere"));
        assert!(bad.is_err_and(|e| e.to_string().starts_with("--bind: `nowhere`")));
        assert_eq!(ServerConfig::new(cfg.bind, Some(String::new())).token, None);
    }
}
