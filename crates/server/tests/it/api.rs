//! Health, the run trigger, and the guard: token, origin, content type, host, exposure.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tributary_orchestrator::schedule::LaunchRequest;
use tributary_server::{ServerConfig, bind};

use crate::TestServer;

const TOKEN: &str = "tok-3f9a-very-secret";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

#[tokio::test]
async fn health_answers_ok() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let (status, body) = json_of(client().get(s.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
    s.stop().await;
}

#[tokio::test]
async fn trigger_returns_the_run_id_and_passes_the_request_on() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let r = client()
        .post(s.url("/api/runs"))
        .json(&json!({"select": ["+gold.daily_revenue"], "full_refresh": true}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"run_id": "run-1"}));

    // An empty body runs everything.
    let r = client()
        .post(s.url("/api/runs"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"run_id": "run-2"}));

    assert_eq!(
        *s.launcher.requests.lock().unwrap(),
        vec![
            LaunchRequest {
                selectors: vec!["+gold.daily_revenue".into()],
                full_refresh: true,
                trigger: "api".into(),
                resume: None,
            },
            LaunchRequest {
                selectors: vec![],
                full_refresh: false,
                trigger: "api".into(),
                resume: None,
            },
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn launcher_errors_and_bad_bodies_are_400_with_the_reason() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let r = client()
        .post(s.url("/api/runs"))
        .json(&json!({"select": ["nope"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown selector `nope`")),
        "{body}"
    );

    let r = client()
        .post(s.url("/api/runs"))
        .json(&json!({"selekt": ["x"]}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(r).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid request body") && e.contains("selekt")),
        "{body}"
    );
    assert!(s.launcher.requests.lock().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn token_is_required_except_on_health() {
    let s = TestServer::start([127, 0, 0, 1], Some(TOKEN)).await;
    let run = || client().post(s.url("/api/runs")).json(&json!({}));

    let (status, body) = json_of(run().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let r = run().bearer_auth("wrong-token").send().await.unwrap();
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer realm=\"tributary\"")
    );
    let (status, _) = json_of(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The token with a different length, and as Basic credentials.
    let r = run().bearer_auth(format!("{TOKEN}x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = run().basic_auth("admin", Some(TOKEN)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown routes do not tell whether they exist.
    let r = client().get(s.url("/api/nothing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(s.launcher.requests.lock().unwrap().is_empty());

    let (status, body) = json_of(run().bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["run_id"], "run-1");

    let (status, _) = json_of(client().get(s.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn foreign_origin_is_403_and_own_origin_passes() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let own = format!("http://127.0.0.1:{}", s.addr.port());
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let r = client()
            .post(s.url("/api/runs"))
            .header("origin", origin)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(r).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("cross-origin")),
            "{body}"
        );
    }
    assert!(s.launcher.requests.lock().unwrap().is_empty());
    let r = client()
        .post(s.url("/api/runs"))
        .header("origin", &own)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    s.stop().await;
}

#[tokio::test]
async fn state_changes_need_json() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = client().post(s.url("/api/runs")).body("{}");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
    }
    assert!(s.launcher.requests.lock().unwrap().is_empty());
    let r = client()
        .post(s.url("/api/runs"))
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    s.stop().await;
}

#[tokio::test]
async fn loopback_server_refuses_foreign_host_names() {
    // A page on evil.example whose name was re-pointed at 127.0.0.1 (DNS rebinding) reaches the
    // server with `Host: evil.example:PORT`.
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let r = client()
        .get(s.url("/health"))
        .header("host", format!("evil.example:{}", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client()
        .get(format!("http://localhost:{}/health", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn non_loopback_bind_needs_a_token() {
    let refused = bind(ServerConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)), None)).await;
    let message = refused.map(|_| ()).unwrap_err().to_string();
    assert!(
        message.starts_with("binding 0.0.0.0:0 exposes the server; set serve.token"),
        "{message}"
    );
    let empty = bind(ServerConfig::new(
        SocketAddr::from(([0, 0, 0, 0], 0)),
        Some("  ".into()),
    ))
    .await;
    assert!(empty.is_err());

    // With a token it starts, and then every route but /health wants it.
    let s = TestServer::start([0, 0, 0, 0], Some(TOKEN)).await;
    let r = client()
        .post(s.url("/api/runs"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .post(s.url("/api/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    s.stop().await;
}

/// Collects log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log of every test in this binary: a global subscriber, installed once (a thread-local
/// one misses log sites that other tests met first).
fn captured_log() -> &'static Captured {
    static LOG: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        captured
    })
}

#[tokio::test]
async fn the_token_never_reaches_the_log() {
    let captured = captured_log();
    let s = TestServer::start([127, 0, 0, 1], Some(TOKEN)).await;
    let port = s.addr.port();
    for token in [TOKEN, "wrong"] {
        let _ = client()
            .post(s.url("/api/runs"))
            .bearer_auth(token)
            .json(&json!({"select": ["nope"]}))
            .send()
            .await
            .unwrap();
    }
    s.stop().await;
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        log.contains(&format!(
            "Server listening. address=127.0.0.1:{port} token=true"
        )),
        "{log}"
    );
    assert!(log.contains("could not start"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[tokio::test]
async fn shutdown_finishes_serve() {
    let s = TestServer::start([127, 0, 0, 1], None).await;
    let r = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let url = s.url("/health");
    s.stop().await;
    assert!(client().get(url).send().await.is_err());
}
