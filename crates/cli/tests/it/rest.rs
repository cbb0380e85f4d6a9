//! REST API sources end to end: the real binary against a real `json-server` (npm) and against
//! loopback servers in the test, read back with `tributary query` and Python polars.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tributary_testkit::http::{ApiServer, JsonServer, Reply, Request, Response};

use crate::support::*;

const TOKEN: &str = "tok-e2e-s3cr3t-4711";

fn run_with_token(p: &TestProject, args: &[&str], token: &str) -> std::process::Output {
    p.command(args).env("API_TOKEN", token).output().unwrap()
}

fn ok_with_token(p: &TestProject, args: &[&str]) -> String {
    let out = run_with_token(p, args, TOKEN);
    assert!(
        out.status.success(),
        "tributary {args:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn json_server_incremental_second_run_requests_only_new_records() {
    let items: Vec<Value> = (1..=25)
        .map(|i| json!({"id": i, "seq": i, "name": format!("item {i}"), "price": i as f64 * 1.5}))
        .collect();
    let Some(js) = JsonServer::start(&json!({ "items": items }).to_string()) else {
        return;
    };
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  shop: {{ type: rest, base_url: \"{}\", rate_limit: 50 }}\n",
        js.url()
    ));
    p.write(
        "ingest/shop.yaml",
        "connection: shop\ntables:\n  - name: items\n    path: /items\n    params: { _page: 1, _limit: 10 }\n    pagination: { type: link_header }\n    mode: incremental\n    cursor: seq\n    cursor_param: seq_gte\n    primary_key: [id]\n",
    );
    p.ok(&["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.shop_items"),
        25
    );
    let first: Vec<String> = js.requests();
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.iter().all(|r| !r.contains("seq_gte")), "{first:?}");

    // Three new records, and one changed record (a new seq).
    let addr = format!("127.0.0.1:{}", js.port);
    for i in 26..=28 {
        let body =
            json!({"id": i, "seq": i, "name": format!("item {i}"), "price": 1.0}).to_string();
        let (status, _) = http(
            &addr,
            "POST",
            "/items",
            &[("Content-Type", "application/json")],
            &body,
        );
        assert_eq!(status, 201);
    }
    let (status, _) = http(
        &addr,
        "PATCH",
        "/items/5",
        &[("Content-Type", "application/json")],
        &json!({"seq": 29, "name": "item 5 renamed"}).to_string(),
    );
    assert_eq!(status, 200);

    p.ok(&["run"]);
    let second: Vec<String> = js.requests()[first.len() + 4..].to_vec();
    // Only records at or after the watermark (25) were requested: one page.
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0].contains("seq_gte=25"), "{second:?}");
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.shop_items"),
        29
    );
    assert_eq!(
        p.query_i64(
            "SELECT count(*) AS n FROM (SELECT id, seq FROM bronze.shop_items GROUP BY id, seq HAVING count(*) > 1)"
        ),
        0,
        "record 25 (at the watermark) was read again but not loaded twice"
    );
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT _tributary_run_id) AS n FROM bronze.shop_items"),
        2
    );
    let renamed = p.query("SELECT name FROM bronze.shop_items WHERE id = 5 ORDER BY seq");
    assert_eq!(renamed.len(), 2);
    assert_eq!(renamed[1]["name"], "item 5 renamed");

    // Nothing new: the request starts at the new watermark and nothing is appended.
    p.ok(&["run"]);
    let third = js.requests().last().cloned().unwrap_or_default();
    assert!(third.contains("seq_gte=29"), "{third}");
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.shop_items"),
        29
    );
}

/// Orders with a bearer token check, 2 per page (`page`, `per_page`); a `discount` field and a
/// nested `vip` first appear on page 3. With `extra`, records also get `channel` and lose
/// `discount`.
fn orders_server(extra: Arc<AtomicBool>) -> ApiServer {
    ApiServer::start(move |r: &Request| {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return Response::json(401, r#"{"error":"bad token"}"#).into();
        }
        if r.path == "/api/health" {
            return Response::json(200, r#"{"ok":true}"#).into();
        }
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        let mut all: Vec<Value> = (1..=5)
            .map(|i| {
                let mut o = json!({"id": i, "status": "open",
                    "customer": {"name": format!("c{i}"), "tags": ["a"]},
                    "lines": [{"sku": format!("s{i}"), "qty": i}]});
                if i == 5 {
                    o["discount"] = json!(0.5);
                    o["customer"]["vip"] = json!(true);
                }
                o
            })
            .collect();
        if extra.load(Ordering::SeqCst) {
            for o in &mut all {
                if let Value::Object(m) = o {
                    m.remove("discount");
                    m.insert("channel".into(), json!("web"));
                }
            }
        }
        let page: Vec<Value> = all.into_iter().skip((page - 1) * 2).take(2).collect();
        Response::json(200, json!({"data": page}).to_string()).into()
    })
}

fn orders_project(server: &ApiServer) -> TestProject {
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  api:\n    type: rest\n    base_url: \"{}/api\"\n    check_path: /health\n    auth: {{ type: bearer, token: \"${{env:API_TOKEN}}\" }}\n",
        server.url()
    ));
    p.write(
        "ingest/api.yaml",
        "connection: api\ntables:\n  - name: orders\n    path: /orders\n    records: $.data\n    pagination: { type: page, size_param: per_page, size: 2 }\n    primary_key: [id]\n",
    );
    p
}

#[test]
fn schema_drift_across_pages_and_runs_and_nested_structs() {
    let extra = Arc::new(AtomicBool::new(false));
    let server = orders_server(extra.clone());
    let p = orders_project(&server);

    // `query` loads the configuration too, so it needs the variable (never the API).
    p.set_env("API_TOKEN", TOKEN);
    let out = ok_with_token(&p, &["validate", "--connections"]);
    assert!(
        out.contains(&format!("GET {}/api/health: 200 OK", server.url())),
        "{out}"
    );

    ok_with_token(&p, &["run"]);
    let rows = p.query(
        "SELECT id, discount, customer['name'] AS cname, customer['vip'] AS vip, lines[1]['qty'] AS qty \
         FROM bronze.api_orders ORDER BY id",
    );
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0]["discount"],
        Value::Null,
        "NULL on the pages before the field"
    );
    assert_eq!(rows[4]["discount"], json!(0.5));
    assert_eq!(rows[1]["cname"], "c2");
    assert_eq!(rows[0]["vip"], Value::Null);
    assert_eq!(rows[4]["vip"], json!(true));
    assert_eq!(rows[2]["qty"], json!(3));

    // An independent reader sees the struct and list columns.
    let lake = p.path().join("lake/bronze/api_orders");
    let script = format!(
        "import polars as pl\n\
         df = pl.read_delta({:?}).sort('id')\n\
         print(df['customer'].struct.field('name').to_list())\n\
         print(df['lines'].list.get(0).struct.field('sku').to_list())\n\
         print(df.schema['customer'])\n",
        lake.display().to_string()
    );
    if let Some(out) = python(&script) {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "['c1', 'c2', 'c3', 'c4', 'c5']", "{out}");
        assert_eq!(lines[1], "['s1', 's2', 's3', 's4', 's5']", "{out}");
        assert!(
            lines[2].contains("vip") && lines[2].contains("Boolean"),
            "{out}"
        );
    }

    // Next run: the API dropped `discount` and added `channel`. The full load replaces the
    // rows; `discount` stays a column (NULL), `channel` is added.
    extra.store(true, Ordering::SeqCst);
    ok_with_token(&p, &["run"]);
    let rows = p.query("SELECT id, discount, channel FROM bronze.api_orders ORDER BY id");
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter().all(|r| r["discount"] == Value::Null),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["channel"] == "web"), "{rows:?}");

    // A wrong token: validate reports the 401 without the token.
    let out = run_with_token(&p, &["validate", "--connections"], "wrong-tok-0000");
    assert_eq!(out.status.code(), Some(1));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("FAILED") && text.contains("401"), "{text}");
    assert!(!text.contains("wrong-tok-0000"), "{text}");
}

#[test]
fn a_server_dying_mid_pagination_fails_the_run_and_the_rerun_loads_each_record_once() {
    /// Records with id >= `since_id`, 3 per page, from `count` records.
    fn respond(r: &Request, count: i64) -> Reply {
        if r.header("authorization") != Some(format!("Bearer {TOKEN}").as_str()) {
            return Response::json(401, "{}").into();
        }
        let since: i64 = r.param("since_id").map_or(1, |s| s.parse().unwrap());
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        let records: Vec<Value> = (since.max(1)..=count)
            .map(|i| json!({"id": i, "v": format!("v{i}")}))
            .skip((page - 1) * 3)
            .take(3)
            .collect();
        Response::json(200, json!(records).to_string()).into()
    }
    let grown = Arc::new(AtomicBool::new(false));
    let g = grown.clone();
    let mut server = ApiServer::start(move |r: &Request| {
        if !g.load(Ordering::SeqCst) {
            return respond(r, 6);
        }
        // The second run: the server dies while asked for page 3.
        if r.param("page") == Some("3") {
            return Reply::Die;
        }
        respond(r, 12)
    });
    let port = server.addr.port();
    let p = TestProject::new(&format!(
        "name: t\nlake: ./lake\nconnections:\n  api:\n    type: rest\n    base_url: \"{}\"\n    retries: 1\n    auth: {{ type: bearer, token: \"${{env:API_TOKEN}}\" }}\n",
        server.url()
    ));
    p.write(
        "ingest/api.yaml",
        "connection: api\ntables:\n  - name: events\n    path: /events\n    pagination: { type: page, size_param: per_page, size: 3 }\n    mode: incremental\n    cursor: id\n    cursor_param: since_id\n    primary_key: [id]\n",
    );
    p.set_env("API_TOKEN", TOKEN);
    ok_with_token(&p, &["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.api_events"),
        6
    );
    let before = delta_logs(&p.lake_listing());

    grown.store(true, Ordering::SeqCst);
    let out = run_with_token(&p, &["run"], TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("table events, page 3"), "{text}");
    assert!(
        text.contains(&format!("GET http://127.0.0.1:{port}/events")),
        "{text}"
    );
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        !text.contains("since_id="),
        "URLs are shown without query: {text}"
    );
    assert_eq!(delta_logs(&p.lake_listing()), before, "nothing committed");
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.api_events"),
        6
    );
    let state = p.listing(".tributary");
    assert!(!state.is_empty());
    for (file, _) in state {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "the token is in {}",
            file.display()
        );
    }
    let shown = p.ok(&["runs"]);
    assert!(!shown.contains(TOKEN));
    server.stop();

    // The server is back: the rerun reads from the unchanged watermark and loads each record
    // once.
    let server = ApiServer::start_on(port, |r: &Request| respond(r, 12));
    ok_with_token(&p, &["run"]);
    assert_eq!(
        p.query_i64("SELECT count(*) AS n FROM bronze.api_events"),
        12
    );
    assert_eq!(
        p.query_i64("SELECT count(DISTINCT id) AS n FROM bronze.api_events"),
        12
    );
    let since: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.param("since_id").map(str::to_string))
        .collect();
    assert!(since.iter().all(|s| s.as_deref() == Some("6")), "{since:?}");
}
