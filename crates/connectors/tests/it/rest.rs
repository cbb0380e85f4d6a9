//! REST connector tests: pagination, auth, retries, schema inference across pages and secrets in
//! errors, against a real `json-server` (npm) and against scriptable loopback servers.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::StreamExt;
use serde_json::{Value, json};
use tributary_core::config::{ConnectionConfig, TableConfig};
use tributary_core::{CursorValue, ReadRequest, Source, SourceError};
use tributary_testkit::http::{ApiServer, JsonServer, Reply, Request, Response};

fn open(conn: Value) -> Box<dyn Source> {
    let config: ConnectionConfig = serde_json::from_value(conn).unwrap();
    tributary_connectors::open("api", &config, std::path::Path::new("/")).unwrap()
}

fn request(table: Value) -> ReadRequest {
    let table: TableConfig = serde_json::from_value(table).unwrap();
    ReadRequest {
        table,
        since: None,
        until: None,
        batch_size: 4,
        loaded_files: None,
        table_schema: None,
    }
}

/// Schema and batches, or the first error.
async fn read(
    source: &dyn Source,
    req: ReadRequest,
) -> Result<(SchemaRef, Vec<RecordBatch>), SourceError> {
    let stream = source.read(req).await?;
    let mut out = Vec::new();
    let stream_schema = stream.schema.clone();
    let mut s = stream.into_batches();
    while let Some(b) = s.next().await {
        let b = b?;
        assert_eq!(b.batch.schema(), stream_schema);
        assert_eq!(&*b.origin, "api:/items");
        out.push(b.batch);
    }
    Ok((stream_schema, out))
}

/// Rows as JSON objects (null fields left out).
fn rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut w = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    w.write_batches(&refs).unwrap();
    w.finish().unwrap();
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&bytes).unwrap()
}

fn ids(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn items(range: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    range
        .map(|i| json!({"id": i, "seq": i, "name": format!("item {i}")}))
        .collect()
}

/// The query of each logged json-server request to `/items`, as sorted `k=v` pairs, once at
/// least `n` are logged (json-server writes its log line after answering, so the last one can
/// lag the response by a moment; waits up to 10 s).
fn logged_queries(js: &JsonServer, n: usize) -> Vec<Vec<String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = logged_queries_now(js);
        if got.len() >= n || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn logged_queries_now(js: &JsonServer) -> Vec<Vec<String>> {
    js.requests()
        .iter()
        .filter_map(|r| r.strip_prefix("GET /items"))
        .map(|target| {
            let q = target.trim_start_matches('?');
            let mut pairs: Vec<String> = q
                .split('&')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            pairs.sort();
            pairs
        })
        .collect()
}

fn q(pairs: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn json_server_offset_page_and_link_header_pagination() {
    let db = json!({ "items": items(1..=25) }).to_string();
    let Some(js) = JsonServer::start(&db) else {
        return;
    };
    let source = open(json!({"type": "rest", "base_url": js.url()}));
    let expected: Vec<i64> = (1..=25).collect();

    // Offset: _start/_limit; the third page has 5 < 10 records and is the last.
    let (_, b) = read(
        &*source,
        request(json!({"name": "items", "path": "/items", "pagination":
            {"type": "offset", "offset_param": "_start", "limit_param": "_limit", "limit": 10}})),
    )
    .await
    .unwrap();
    let r = rows(&b);
    assert_eq!(ids(&r), expected);
    assert_eq!(r[24]["name"], "item 25");
    assert_eq!(
        logged_queries(&js, 3),
        vec![
            q(&["_start=0", "_limit=10"]),
            q(&["_start=10", "_limit=10"]),
            q(&["_start=20", "_limit=10"])
        ]
    );

    // Page numbers: _page/_limit.
    let (_, b) = read(
        &*source,
        request(json!({"name": "items", "path": "/items", "pagination":
            {"type": "page", "page_param": "_page", "size_param": "_limit", "size": 10}})),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows(&b)), expected);
    assert_eq!(
        logged_queries(&js, 6)[3..],
        [
            q(&["_page=1", "_limit=10"]),
            q(&["_page=2", "_limit=10"]),
            q(&["_page=3", "_limit=10"])
        ]
    );

    // The Link header's rel="next", until the last page has none.
    let (_, b) = read(
        &*source,
        request(
            json!({"name": "items", "path": "/items", "params": {"_page": 1, "_limit": 10},
            "pagination": {"type": "link_header"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows(&b)), expected);
    assert_eq!(
        logged_queries(&js, 9)[6..],
        [
            q(&["_page=1", "_limit=10"]),
            q(&["_page=2", "_limit=10"]),
            q(&["_page=3", "_limit=10"])
        ]
    );
}

#[tokio::test]
async fn json_server_incremental_read_sends_the_watermark() {
    let db = json!({ "items": items(1..=25) }).to_string();
    let Some(js) = JsonServer::start(&db) else {
        return;
    };
    let source = open(json!({"type": "rest", "base_url": js.url()}));
    let mut req = request(
        json!({"name": "items", "path": "/items", "mode": "incremental",
        "cursor": "seq", "cursor_param": "seq_gte", "primary_key": ["id"],
        "pagination": {"type": "page", "page_param": "_page", "size_param": "_limit", "size": 4}}),
    );
    req.since = Some(("seq".into(), CursorValue::Int(20)));
    let (_, b) = read(&*source, req).await.unwrap();
    assert_eq!(ids(&rows(&b)), (20..=25).collect::<Vec<_>>());
    assert_eq!(
        logged_queries(&js, 2),
        vec![
            q(&["seq_gte=20", "_page=1", "_limit=4"]),
            q(&["seq_gte=20", "_page=2", "_limit=4"])
        ]
    );
}

/// Pages of `records` records per page, from `all`, for a `page` parameter (1-based).
fn page_of(all: &[Value], page: usize, per_page: usize) -> Vec<Value> {
    all.iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

#[tokio::test]
async fn cursor_in_body_and_next_url_pagination() {
    let all = items(1..=7);
    let data = all.clone();
    let server = ApiServer::start(move |r: &Request| {
        let start: usize = r.param("after").map_or(0, |c| c[1..].parse().unwrap());
        let page: Vec<Value> = data.iter().skip(start).take(3).cloned().collect();
        let end = start + page.len();
        let next = if end < data.len() {
            json!(format!("c{end}"))
        } else {
            Value::Null
        };
        Response::json(
            200,
            json!({"data": page, "meta": {"next_cursor": next}}).to_string(),
        )
        .into()
    });
    let source = open(json!({"type": "rest", "base_url": format!("{}/v1", server.url())}));
    let (_, b) = read(
        &*source,
        request(json!({"name": "items", "path": "/items", "records": "$.data",
            "params": {"status": "active"},
            "pagination": {"type": "cursor", "cursor_path": "$.meta.next_cursor", "cursor_param": "after"}})),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows(&b)), (1..=7).collect::<Vec<_>>());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.path == "/v1/items"));
    assert!(reqs.iter().all(|r| r.param("status") == Some("active")));
    let cursors: Vec<Option<&str>> = reqs.iter().map(|r| r.param("after")).collect();
    assert_eq!(cursors, vec![None, Some("c3"), Some("c6")]);

    // Next URL in the body, relative to the current page; stops when it is null.
    let data = all.clone();
    let server = ApiServer::start(move |r: &Request| {
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        let next = if page * 3 < data.len() {
            json!(format!("items?page={}&sig=x", page + 1))
        } else {
            Value::Null
        };
        Response::json(
            200,
            json!({"results": page_of(&data, page, 3), "links": {"next": next}}).to_string(),
        )
        .into()
    });
    let source = open(json!({"type": "rest", "base_url": format!("{}/v1/", server.url())}));
    let (_, b) = read(
        &*source,
        request(
            json!({"name": "items", "path": "items", "records": "results",
            "pagination": {"type": "next_url", "next_url_path": "links.next"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows(&b)), (1..=7).collect::<Vec<_>>());
    let pages: Vec<Option<String>> = server
        .requests()
        .iter()
        .map(|r| r.param("page").map(str::to_string))
        .collect();
    assert_eq!(pages, vec![None, Some("2".into()), Some("3".into())]);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_5xx_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let server = ApiServer::start(move |_: &Request| match n.fetch_add(1, Ordering::SeqCst) {
        0 => Response::json(429, r#"{"error":"slow down"}"#)
            .header("Retry-After", "1")
            .into(),
        1 => Response::json(500, r#"{"error":"oops"}"#).into(),
        2 => Response::json(502, "bad gateway").into(),
        _ => Response::json(200, json!(items(1..=3)).to_string()).into(),
    });
    let source = open(json!({"type": "rest", "base_url": server.url(), "retries": 3}));
    let (_, b) = read(
        &*source,
        request(json!({"name": "items", "path": "/items"})),
    )
    .await
    .unwrap();
    assert_eq!(ids(&rows(&b)), vec![1, 2, 3]);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4, "429, 500, 502, then 200");
    // The second request came after the Retry-After second (a lower bound the client
    // guarantees by sleeping; no upper bound is asserted).
    assert!(
        reqs[1].at.duration_since(reqs[0].at) >= Duration::from_secs(1),
        "{:?}",
        reqs[1].at.duration_since(reqs[0].at)
    );

    // Retries exhausted: the error names the status, the page and the URL, and not the token
    // the server echoes back.
    let server = ApiServer::start(|r: &Request| {
        Response::json(
            503,
            format!(
                "maintenance, your header was {}",
                r.header("authorization").unwrap_or("")
            ),
        )
        .into()
    });
    let source = open(
        json!({"type": "rest", "base_url": server.url(), "retries": 1,
        "auth": {"type": "bearer", "token": "tok-s3cr3t-123"}}),
    );
    let e = read(
        &*source,
        request(json!({"name": "items", "path": "/items"})),
    )
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            SourceError::Http {
                status: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_retryable());
    assert!(text.contains("table items, page 1"), "{text}");
    assert!(
        text.contains(&format!("GET {}/items", server.url())),
        "{text}"
    );
    assert!(
        text.contains("503") && text.contains("after 1 retry"),
        "{text}"
    );
    assert!(text.contains("Bearer ***"), "{text}");
    assert!(!text.contains("tok-s3cr3t-123"), "{text}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn bearer_basic_and_api_key_auth() {
    let server = ApiServer::start(|r: &Request| {
        let ok = match r.path.as_str() {
            "/bearer/items" => r.header("authorization") == Some("Bearer tok-123"),
            // base64("app:pw-456")
            "/basic/items" => r.header("authorization") == Some("Basic YXBwOnB3LTQ1Ng=="),
            "/hkey/items" => r.header("x-api-key") == Some("key-789"),
            "/qkey/items" => r.param("api_key") == Some("key-789") && r.param("page").is_some(),
            _ => false,
        };
        if ok {
            let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
            Response::json(200, json!(page_of(&items(1..=3), page, 2)).to_string()).into()
        } else {
            Response::json(401, r#"{"error":"unauthorized"}"#).into()
        }
    });
    let base = server.url();
    let auths = [
        ("bearer", json!({"type": "bearer", "token": "tok-123"})),
        (
            "basic",
            json!({"type": "basic", "username": "app", "password": "pw-456"}),
        ),
        (
            "hkey",
            json!({"type": "api_key", "name": "X-API-Key", "value": "key-789"}),
        ),
        (
            "qkey",
            json!({"type": "api_key", "name": "api_key", "value": "key-789", "in": "query"}),
        ),
    ];
    let table = json!({"name": "items", "path": "/items",
        "pagination": {"type": "page", "size_param": "per_page", "size": 2}});
    for (prefix, auth) in &auths {
        let source =
            open(json!({"type": "rest", "base_url": format!("{base}/{prefix}"), "auth": auth}));
        let (_, b) = read(&*source, request(table.clone()))
            .await
            .unwrap_or_else(|e| panic!("{prefix}: {e}"));
        assert_eq!(ids(&rows(&b)), vec![1, 2, 3], "{prefix}");
    }
    assert_eq!(server.requests().len(), 8, "two pages for each of the four");

    // Wrong credentials: 401 at once (not retried), with a hint and no secret.
    for (prefix, auth) in [
        (
            "bearer",
            json!({"type": "bearer", "token": "wrong-tok-000"}),
        ),
        (
            "qkey",
            json!({"type": "api_key", "name": "api_key", "value": "wrong-key-000", "in": "query"}),
        ),
    ] {
        let before = server.requests().len();
        let source =
            open(json!({"type": "rest", "base_url": format!("{base}/{prefix}"), "auth": auth}));
        let e = read(&*source, request(table.clone())).await.unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(
                e,
                SourceError::Http {
                    status: Some(401),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        assert!(
            text.contains("check the credentials of connection `api`"),
            "{text}"
        );
        assert!(!text.contains("wrong-"), "{text}");
        assert_eq!(server.requests().len(), before + 1);
    }

    // validate --connections: the check requests check_path with the credentials.
    let source = open(json!({"type": "rest", "base_url": format!("{base}/bearer"),
        "check_path": "/items", "auth": auths[0].1}));
    let detail = source.check_detail().await.unwrap().unwrap();
    assert_eq!(detail, format!("GET {base}/bearer/items: 200 OK"));
    let source = open(json!({"type": "rest", "base_url": format!("{base}/bearer"),
        "auth": {"type": "bearer", "token": "nope-nope"}}));
    let e = source.check().await.unwrap_err().to_string();
    assert!(e.contains("401") && e.contains("(check)"), "{e}");
    assert!(!e.contains("nope-nope"), "{e}");
}

/// A token endpoint and an API: tokens are good for `uses` API requests (although the token
/// response says 3600 s), or for any number when `uses` is 0. Returns the server and the count
/// of 401s it sent.
fn oauth_server(uses: usize, expires_in: u64) -> (ApiServer, Arc<AtomicUsize>) {
    let tokens: Arc<Mutex<Vec<usize>>> = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(AtomicUsize::new(0));
    let r401 = rejected.clone();
    let server = ApiServer::start(move |r: &Request| {
        let mut tokens = tokens.lock().unwrap();
        if r.path == "/oauth/token" {
            let form = r.form();
            let field = |k: &str| form.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
            // base64("cid:csecret-xyz")
            let client_ok = r.header("authorization") == Some("Basic Y2lkOmNzZWNyZXQteHl6");
            if !client_ok
                || field("grant_type") != Some("client_credentials")
                || field("scope") != Some("read items")
            {
                return Response::json(401, r#"{"error":"invalid_client"}"#).into();
            }
            tokens.push(0);
            return Response::json(
                200,
                json!({"access_token": format!("at-{}", tokens.len()), "token_type": "Bearer",
                    "expires_in": expires_in})
                .to_string(),
            )
            .into();
        }
        let n = r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer at-"))
            .and_then(|n| n.parse::<usize>().ok());
        let valid = match n {
            Some(n) if (1..=tokens.len()).contains(&n) => {
                tokens[n - 1] += 1;
                uses == 0 || tokens[n - 1] <= uses
            }
            _ => false,
        };
        if !valid {
            r401.fetch_add(1, Ordering::SeqCst);
            return Response::json(401, r#"{"error":"token expired"}"#).into();
        }
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        Response::json(200, json!(page_of(&items(1..=10), page, 2)).to_string()).into()
    });
    (server, rejected)
}

fn oauth_conn(server: &ApiServer, extra: Value) -> Value {
    let mut c = json!({"type": "rest", "base_url": server.url(),
        "auth": {"type": "oauth2", "token_url": format!("{}/oauth/token", server.url()),
            "client_id": "cid", "client_secret": "csecret-xyz", "scopes": ["read", "items"]}});
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

#[tokio::test]
async fn oauth2_token_is_refreshed_after_a_401_and_before_expiry() {
    let table = json!({"name": "items", "path": "/items",
        "pagination": {"type": "page", "size_param": "per_page", "size": 2}});

    // Tokens die after two uses although they claim an hour: each 401 gets a new token, once.
    let (server, rejected) = oauth_server(2, 3600);
    let source = open(oauth_conn(&server, json!({})));
    let (_, b) = read(&*source, request(table.clone())).await.unwrap();
    assert_eq!(ids(&rows(&b)), (1..=10).collect::<Vec<_>>());
    let reqs = server.requests();
    let token_requests = reqs.iter().filter(|r| r.path == "/oauth/token").count();
    // Pages 1..6 (the 6th is empty): at-1 serves 1-2, at-2 serves 3-4, at-3 serves 5-6.
    assert_eq!(token_requests, 3);
    assert_eq!(rejected.load(Ordering::SeqCst), 2);

    // Tokens that say they live 1 s: the connector asks for a new one before it expires. The
    // rate limit (2 requests/s over 6 pages) makes the read last more than 2.5 s.
    let (server, rejected) = oauth_server(0, 1);
    let source = open(oauth_conn(&server, json!({"rate_limit": 2})));
    let started = Instant::now();
    let (_, b) = read(&*source, request(table.clone())).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(ids(&rows(&b)), (1..=10).collect::<Vec<_>>());
    let token_requests = server
        .requests()
        .iter()
        .filter(|r| r.path == "/oauth/token")
        .count();
    assert!(token_requests >= 2, "{token_requests}");
    assert_eq!(rejected.load(Ordering::SeqCst), 0);

    // Wrong client secret: the token request fails with a hint, without the secret.
    let (server, _) = oauth_server(0, 3600);
    let mut conn = oauth_conn(&server, json!({}));
    conn["auth"]["client_secret"] = json!("wrong-secret-1");
    let e = read(&*open(conn), request(table))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("OAuth2 token request"), "{e}");
    assert!(
        e.contains(&format!("POST {}/oauth/token", server.url())),
        "{e}"
    );
    assert!(
        e.contains("check auth.client_id, auth.client_secret"),
        "{e}"
    );
    assert!(!e.contains("wrong-secret-1"), "{e}");
}

#[tokio::test]
async fn a_field_first_seen_on_page_3_is_a_column_and_nested_json_maps_to_structs() {
    // Raw text, so the server sends the keys in this order (`json!` would sort them).
    let pages: Vec<&'static str> = vec![
        r#"[{"id": 1, "name": "a", "customer": {"name": "Ann", "tags": ["x", "y"]},
             "lines": [{"sku": "s1", "qty": 2}]},
            {"id": 2, "name": "b", "customer": {"name": "Bob", "tags": []}, "lines": []}]"#,
        r#"[{"id": 3, "name": "c", "customer": null, "lines": [{"sku": "s2", "qty": 1}]},
            {"id": 4, "name": "d", "customer": {"name": "Dee", "tags": ["z"]}, "lines": null}]"#,
        r#"[{"id": 5, "name": "e", "discount": 2.5,
             "customer": {"name": "Eve", "tags": [], "vip": true},
             "lines": [{"sku": "s3", "qty": 4, "note": "gift"}]}]"#,
    ];
    let server = ApiServer::start(move |r: &Request| {
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        let body = pages.get(page - 1).copied().unwrap_or("[]");
        Response::json(200, body).into()
    });
    let source = open(json!({"type": "rest", "base_url": server.url()}));
    let table = json!({"name": "items", "path": "/items", "pagination": {"type": "page"}});
    let (schema, b) = read(&*source, request(table.clone())).await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "customer", "lines", "discount"]);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(4).data_type(), &DataType::Float64);
    let DataType::Struct(customer) = schema.field(2).data_type() else {
        panic!("{schema:?}")
    };
    let sub: Vec<&str> = customer.iter().map(|f| f.name().as_str()).collect();
    assert_eq!(sub, ["name", "tags", "vip"]);
    assert!(
        matches!(customer[1].data_type(), DataType::List(f) if f.data_type() == &DataType::Utf8)
    );
    let DataType::List(line) = schema.field(3).data_type() else {
        panic!("{schema:?}")
    };
    assert!(
        matches!(line.data_type(), DataType::Struct(f) if f.len() == 3 && f[1].data_type() == &DataType::Int64),
        "{line:?}"
    );
    let r = rows(&b);
    assert_eq!(ids(&r), vec![1, 2, 3, 4, 5]);
    assert_eq!(r[0].get("discount"), None, "NULL before page 3");
    assert_eq!(r[4]["discount"], json!(2.5));
    assert_eq!(r[0]["customer"], json!({"name": "Ann", "tags": ["x", "y"]}));
    assert_eq!(r[4]["customer"]["vip"], json!(true));
    assert_eq!(r[2].get("customer"), None);
    assert_eq!(
        r[4]["lines"][0],
        json!({"sku": "s3", "qty": 4, "note": "gift"})
    );

    // nested: json keeps objects and arrays as their JSON text.
    let mut t = table.clone();
    t["nested"] = json!("json");
    let (schema, b) = read(&*source, request(t)).await.unwrap();
    assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    assert_eq!(schema.field(3).data_type(), &DataType::Utf8);
    let r = rows(&b);
    assert_eq!(
        r[0]["customer"],
        json!(r#"{"name":"Ann","tags":["x","y"]}"#)
    );
    assert_eq!(r[0]["lines"], json!(r#"[{"sku":"s1","qty":2}]"#));

    // With the table's columns: they come first and keep their types; a column the records
    // never have stays (NULL); integers load into a double column.
    let mut req = request(json!({"name": "items", "path": "/items", "params": {"page": 2}}));
    req.table_schema = Some(Arc::new(Schema::new(vec![
        Field::new("id", DataType::Float64, true),
        Field::new("legacy", DataType::Utf8, true),
        Field::new("discount", DataType::Float64, true),
    ])));
    let (schema, b) = read(&*source, req).await.unwrap();
    let fields: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    assert_eq!(
        fields[..3],
        [
            ("id", &DataType::Float64),
            ("legacy", &DataType::Utf8),
            ("discount", &DataType::Float64)
        ]
    );
    assert_eq!(fields[3].0, "name");
    assert_eq!(rows(&b)[0]["id"], json!(3.0));
}

#[tokio::test]
async fn a_server_that_dies_mid_pagination_fails_the_read_naming_the_page() {
    fn handler(r: &Request) -> Reply {
        let page: usize = r.param("page").map_or(1, |p| p.parse().unwrap());
        Response::json(200, json!(page_of(&items(1..=9), page, 3)).to_string()).into()
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let n = calls.clone();
    let mut server = ApiServer::start(move |r: &Request| {
        if n.fetch_add(1, Ordering::SeqCst) == 2 {
            return Reply::Die;
        }
        handler(r)
    });
    let port = server.addr.port();
    let conn = json!({"type": "rest", "base_url": server.url(), "retries": 2,
        "auth": {"type": "api_key", "name": "api_key", "value": "k3y-in-the-query", "in": "query"}});
    let source = open(conn.clone());
    let table = json!({"name": "items", "path": "/items",
        "pagination": {"type": "page", "size_param": "per_page", "size": 3}});
    let e = read(&*source, request(table.clone())).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, SourceError::Http { status: None, .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(text.contains("table items, page 3"), "{text}");
    assert!(
        text.contains(&format!("GET http://127.0.0.1:{port}/items ")),
        "{text}"
    );
    assert!(text.contains("after 2 retries"), "{text}");
    assert!(
        !text.contains("k3y-in-the-query") && !text.contains('?'),
        "{text}"
    );
    server.stop();

    // Back up: the read starts over and returns every record once.
    let server = ApiServer::start_on(port, handler);
    let (_, b) = read(&*source, request(table)).await.unwrap();
    assert_eq!(ids(&rows(&b)), (1..=9).collect::<Vec<_>>());
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn bad_responses_say_what_to_configure() {
    let server = ApiServer::start(|r: &Request| match r.path.as_str() {
        "/wrapped" => Response::json(200, r#"{"data": [{"id": 1}], "total": 1}"#).into(),
        "/html" => Response::json(200, "<html>hello</html>").into(),
        "/far" => Response::json(
            200,
            r#"{"items": [{"id": 1}], "next": "http://127.0.0.2:9/x"}"#,
        )
        .into(),
        _ => Response::json(404, "{}").into(),
    });
    let source = open(json!({"type": "rest", "base_url": server.url()}));
    let e = read(
        &*source,
        request(json!({"name": "items", "path": "/wrapped"})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`records: $` selects an object") && e.contains("`$.data`"),
        "{e}"
    );
    let e = read(&*source, request(json!({"name": "items", "path": "/html"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not JSON") && e.contains("page 1"), "{e}");
    let e = read(
        &*source,
        request(json!({"name": "items", "path": "/far", "records": "items",
            "pagination": {"type": "next_url", "next_url_path": "next"}})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("only URLs on the base_url's server are followed"),
        "{e}"
    );
    let e = read(
        &*source,
        request(json!({"name": "items", "path": "/nothing"})),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("404") && e.contains("check the connection's base_url"),
        "{e}"
    );
}
