//! Integration tests of the server: a real server on 127.0.0.1 (port 0), real HTTP requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod dashboard;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tributary_orchestrator::schedule::{LaunchRequest, LaunchedRun, Launcher};
use tributary_server::{ServerConfig, bind, router};

/// A launcher that records what it was asked and starts nothing; selector `nope` is unknown.
#[derive(Default)]
pub struct RecordingLauncher {
    pub requests: Mutex<Vec<LaunchRequest>>,
}

#[async_trait]
impl Launcher for RecordingLauncher {
    async fn launch(&self, req: LaunchRequest) -> Result<LaunchedRun, String> {
        if req.selectors.iter().any(|s| s == "nope") {
            return Err("unknown selector `nope`: no task, table or layer has that name".into());
        }
        let mut requests = self.requests.lock().unwrap();
        requests.push(req);
        let (_tx, rx) = watch::channel(true);
        Ok(LaunchedRun {
            run_id: format!("run-{}", requests.len()),
            finished: rx,
        })
    }
}

/// A running server and what it needs.
pub struct TestServer {
    pub addr: SocketAddr,
    pub launcher: Arc<RecordingLauncher>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), tributary_server::ServerError>>,
}

impl TestServer {
    /// Start a server on `ip`:0 with `token`.
    pub async fn start(ip: [u8; 4], token: Option<&str>) -> TestServer {
        let launcher = Arc::new(RecordingLauncher::default());
        let config = ServerConfig::new(SocketAddr::from((ip, 0)), token.map(str::to_string));
        let server = bind(config).await.unwrap();
        let addr = server.local_addr();
        let app = router(
            server.state(launcher.clone()),
            tributary_server::axum::Router::new(),
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(server.run(app, shutdown.clone()));
        TestServer {
            addr,
            launcher,
            shutdown,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), self.handle).await;
        match ended {
            Ok(Ok(Ok(()))) => {}
            other => panic!("server did not stop cleanly: {other:?}"),
        }
    }
}
