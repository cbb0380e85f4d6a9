//! Running the binary in a temporary project, and finding the test services.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use tributary_testkit::{mysql_url, pg_url, services_required, unavailable, unique_name};

/// A PostgreSQL client with a fresh schema (dropped on drop of the returned guard).
pub struct PgSchema {
    pub client: tokio_postgres::Client,
    pub schema: String,
    _conn: tokio::task::JoinHandle<()>,
}

impl PgSchema {
    pub async fn new() -> Option<PgSchema> {
        let (client, conn) = match tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => return unavailable("PostgreSQL", e),
        };
        let handle = tokio::spawn(async move {
            let _ = conn.await;
        });
        let schema = unique_name("tt");
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(PgSchema {
            client,
            schema,
            _conn: handle,
        })
    }

    pub async fn drop_schema(&self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
    }
}

/// A project folder with the binary pointed at it.
pub struct TestProject {
    pub dir: tempfile::TempDir,
    /// Environment variables every command of this project gets ([`TestProject::set_env`]).
    env: std::cell::RefCell<Vec<(String, String)>>,
}

impl TestProject {
    pub fn new(project_yaml: &str) -> TestProject {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tributary.yaml"), project_yaml).unwrap();
        TestProject::in_dir(dir)
    }

    /// A project in a folder that already holds its files.
    pub fn in_dir(dir: tempfile::TempDir) -> TestProject {
        TestProject {
            dir,
            env: Default::default(),
        }
    }

    /// Give every later command of this project `name=value` (a secret the configuration
    /// names, for commands such as `query` that load it too).
    pub fn set_env(&self, name: &str, value: &str) {
        self.env
            .borrow_mut()
            .push((name.to_string(), value.to_string()));
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--project").arg(self.dir.path()).args(args);
        c.env_remove("TRIBUTARY_LOG");
        c.env_remove("TRIBUTARY_TARGET");
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Run and assert success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tributary {args:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `tributary query --format json` parsed.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Value> {
        let out = self.ok(&["query", "--format", "json", sql]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON from query: {e}\n{out}"))
    }

    /// A single integer from a query.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let v = rows[0]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .clone();
        v.as_i64()
            .unwrap_or_else(|| v.as_str().unwrap().parse().unwrap())
    }

    /// Every file under the lake folder with its size, to prove a failed run changed nothing.
    pub fn lake_listing(&self) -> Vec<(PathBuf, u64)> {
        self.listing("lake")
    }

    /// Every file under `rel` (relative to the project) with its size.
    pub fn listing(&self, rel: &str) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        walk(&self.dir.path().join(rel), &mut out);
        out.sort();
        out
    }
}

fn walk(p: &Path, out: &mut Vec<(PathBuf, u64)>) {
    let Ok(rd) = std::fs::read_dir(p) else { return };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push((path.clone(), e.metadata().map(|m| m.len()).unwrap_or(0)));
        }
    }
}

/// Only `_delta_log` entries: what readers see. Parquet files of an aborted write may remain
/// (unreferenced, removed by vacuum) without changing the table.
pub fn delta_logs(listing: &[(PathBuf, u64)]) -> Vec<(PathBuf, u64)> {
    listing
        .iter()
        .filter(|(p, _)| p.components().any(|c| c.as_os_str() == "_delta_log"))
        .cloned()
        .collect()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tributary"))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a Python snippet; `None` (skip) when python/deltalake is missing outside CI.
pub fn python(script: &str) -> Option<String> {
    tributary_testkit::python::run("deltalake, polars", script)
}

/// One request received by a [`HookServer`].
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A small HTTP/1.1 server on loopback that records every request and answers each with
/// `status` and a JSON body (the testkit's capture server).
pub struct HookServer {
    pub addr: std::net::SocketAddr,
    server: tributary_testkit::http::ApiServer,
}

impl HookServer {
    pub fn start(status: u16, body: &'static str) -> HookServer {
        let server = tributary_testkit::http::ApiServer::start(move |_| {
            tributary_testkit::http::Response::json(status, body).into()
        });
        HookServer {
            addr: server.addr,
            server,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.server
            .requests()
            .into_iter()
            .map(|r| Received {
                method: r.method,
                target: r.target,
                headers: r.headers,
                body: r.body,
            })
            .collect()
    }
}

/// One HTTP/1.1 request to `addr`: returns (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
