//! Step two of reading the configuration: each connector's own keys, checked through
//! `tributary_connectors::load_project` with their file, line and key; a key of another kind's
//! tables says which kind takes it.

use std::path::{Path, PathBuf};

use tributary_core::Project;
use tributary_core::config::{ConfigError, ConfigProblem, PROJECT_FILE};

const PROJECT: &str =
    "name: t\nlake: ./lake\nconnections:\n  erp: { type: sqlite, path: erp.db }\n";

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn load(root: &Path) -> Result<Project, ConfigError> {
    tributary_connectors::load_project(root, None)
}

fn problems(r: Result<Project, ConfigError>) -> Vec<ConfigProblem> {
    match r {
        Err(ConfigError::Problems(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), PROJECT_FILE, PROJECT);
    write(
        d.path(),
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    mdoe: full\n",
    );
    let ConfigError::Problems(p) = load(d.path()).unwrap_err() else {
        panic!("expected problems")
    };
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].file, PathBuf::from("ingest/erp.yaml"));
    assert_eq!(p[0].line, Some(4));
    assert_eq!(p[0].key, "tables[0].mdoe");
    assert!(
        p[0].message.contains("unknown field `mdoe`"),
        "{}",
        p[0].message
    );
}

#[test]
fn rest_connections_and_resources_are_checked() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  api:\n    type: rest\n    base_url: ftp://x\n    rate_limit: 0\n    auth: { type: bearer, token: \"${env:TT_REST_TOKEN:-t}\" }\n  erp: { type: sqlite, path: erp.db }\n",
    );
    write(
        d.path(),
        "ingest/api.yaml",
        "connection: api\ntables:\n  - name: a\n  - name: b\n    path: /b\n    records: data..x\n    cursor_param: since\n    pagination: { type: offset, limit: 0 }\n",
    );
    write(
        d.path(),
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: c\n    pagination: { type: link_header }\n",
    );
    let p = problems(load(d.path()));
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let expect = [
        "tributary.yaml:6: key `connections.api.base_url`: the scheme must be http or https",
        "tributary.yaml:7: key `connections.api.rate_limit`: rate_limit is requests per second",
        "ingest/api.yaml:3: key `tables[0].name`: tables of a rest connection need `path`",
        "ingest/api.yaml:6: key `tables[1].records`: `data..x` is not a supported path",
        "ingest/api.yaml:8: key `tables[1].pagination.limit`: the page size must be at least 1",
        "ingest/api.yaml:7: key `tables[1].cursor_param`: `cursor_param` only applies to `mode: incremental`",
        "ingest/erp.yaml:4: key `tables[0].pagination`: `pagination` is for rest connections only",
    ];
    assert_eq!(p.len(), expect.len(), "{text:#?}");
    for e in expect {
        assert!(
            text.iter().any(|t| t.starts_with(e)),
            "missing {e}: {text:#?}"
        );
    }

    // A valid one loads, with scalar params as text.
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  api:\n    type: rest\n    base_url: https://api.example.com/v1\n    auth: { type: api_key, name: key, value: k, in: query }\n",
    );
    write(
        d.path(),
        "ingest/api.yaml",
        "connection: api\ntables:\n  - name: items\n    path: /items\n    params: { limit: 100, active: true, q: x }\n    pagination: { type: cursor, cursor_path: $.next, cursor_param: after }\n",
    );
    std::fs::remove_file(d.path().join("ingest/erp.yaml")).unwrap();
    let p = load(d.path()).unwrap();
    let spec = &p.load_specs()[0];
    assert_eq!(spec.target(), "bronze.api_items");
    let rest = tributary_connectors::rest::RestTable::of(&spec.table).unwrap();
    let params: Vec<(&str, &str)> = rest
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(params, [("active", "true"), ("limit", "100"), ("q", "x")]);
    assert!(p.config.connections["api"].is_rest());
    assert!(!format!("{:?}", p.config.connections["api"]).contains("value: k,"));
}

#[test]
fn delta_tables_default_to_their_last_path_part_and_refuse_cursor_options() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  ext: { type: delta, url: ./tables }\n  erp: { type: sqlite, path: erp.db }\n",
    );
    write(
        d.path(),
        "ingest/ext.yaml",
        "connection: ext\ntables:\n  - name: sales/orders\n    mode: incremental\n  - name: sales/prices\n    version: 3\n",
    );
    let p = load(d.path()).unwrap();
    assert_eq!(p.config.connections["ext"].kind(), "delta");
    let t: Vec<String> = p.load_specs().iter().map(|s| s.target()).collect();
    assert_eq!(t, vec!["bronze.ext_orders", "bronze.ext_prices"]);

    write(
        d.path(),
        "ingest/ext.yaml",
        "connection: ext\ntables:\n  - name: sales/orders\n    mode: incremental\n    cursor: id\n    version: 2\n  - name: ../up\n    timestamp: yesterday\n    query: SELECT 1\n",
    );
    write(
        d.path(),
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n    version: 1\n",
    );
    let text: Vec<String> = problems(load(d.path()))
        .iter()
        .map(|p| p.to_string())
        .collect();
    let expect = [
        "ingest/erp.yaml:4: key `tables[0].version`: `version` is for delta connections only",
        "ingest/ext.yaml:5: key `tables[0].cursor`: `cursor` does not apply: Delta tables are read incrementally by table version",
        "ingest/ext.yaml:6: key `tables[0].version`: `version` does not apply: time travel",
        "ingest/ext.yaml:7: key `tables[1].name`: a Delta table's name is its path under the connection url",
        "ingest/ext.yaml:9: key `tables[1].query`: `query` does not apply",
        "ingest/ext.yaml:8: key `tables[1].timestamp`: `yesterday` is not an RFC 3339 instant",
    ];
    assert_eq!(text.len(), expect.len(), "{text:#?}");
    for (t, e) in text.iter().zip(expect) {
        assert!(t.starts_with(e), "{t}\n  expected to start with\n{e}");
    }
}

#[test]
fn a_connection_type_no_connector_reads_is_named_with_the_known_ones() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: postgress, url: x }\n",
    );
    let p = problems(load(d.path()));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "connections.erp.type");
    assert_eq!(p[0].line, Some(4));
    assert!(
        p[0].message.contains("unknown connection type `postgress`")
            && p[0].message.contains("postgres"),
        "{p:?}"
    );
}

#[test]
fn a_registered_connector_parses_its_own_keys_with_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  gen: { type: fixture, fail_check: sometimes }\n",
    );
    write(
        d.path(),
        "ingest/gen.yaml",
        "connection: gen\ntables:\n  - name: a\n    rows: many\n  - name: b\n    rows: 3\n    glob: \"*.csv\"\n  - name: c\n    rows: 3\n    nulls: true\n",
    );
    let text: Vec<String> = problems(load(d.path()))
        .iter()
        .map(|p| p.to_string())
        .collect();
    let expect = [
        "tributary.yaml:4: key `connections.gen.fail_check`: unknown variant `sometimes`",
        "ingest/gen.yaml:4: key `tables[0].rows`: invalid type",
        "ingest/gen.yaml:7: key `tables[1].glob`: `glob` is for files connections only",
    ];
    assert_eq!(text.len(), expect.len(), "{text:#?}");
    for e in expect {
        assert!(
            text.iter().any(|t| t.starts_with(e)),
            "missing {e}: {text:#?}"
        );
    }
}

#[test]
fn odbc_connections_parse_and_are_checked_in_every_build() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  crm:\n    type: odbc\n    connection_string: \"Server=db;UID=app;PWD=s3cret\"\n    max_value_bytes: 0\n  erp: { type: odbc, connection_string: \"${env:TT_ODBC_ERP_UNSET:-Driver={ODBC Driver 18 for SQL Server};PWD=x}\" }\n",
    );
    let text: Vec<String> = problems(load(d.path()))
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(
        text[0].starts_with(
            "tributary.yaml:6: key `connections.crm.connection_string`: an ODBC connection string"
        ),
        "{text:#?}"
    );
    assert!(!text[0].contains("s3cret"), "{text:#?}");
    assert!(
        text[1].starts_with("tributary.yaml:7: key `connections.crm.max_value_bytes`"),
        "{text:#?}"
    );

    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  crm: { type: odbc, connection_string: \"DSN=crm;PWD=pw\", max_batch_bytes: 1000000 }\n",
    );
    let p = load(d.path()).unwrap();
    let crm = &p.config.connections["crm"];
    assert_eq!(crm.kind(), "odbc");
    let secrets = tributary_connectors::registry::secrets(crm);
    assert!(secrets.contains(&"pw".to_string()), "{secrets:?}");
}

#[test]
fn built_in_connection_keys_are_checked_by_their_connector_with_file_line_and_key() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  erp:\n    type: postgres\n    url: mysql://app@db/erp\n  shop:\n    type: mysql\n    uri: mysql://app@db/shop\n  files:\n    type: files\n    url: ftp://drop/in\n  ext: { type: delta, url: ./ext, storage_option: {} }\n  local: { type: sqlite, path: \"\" }\ntargets:\n  prod:\n    connections:\n      erp: { type: postgres, url: \"${env:TT_PROD_ERP_URL}\", sslmode: require }\n  staging:\n    connections:\n      erp: { type: postgres, url: \"mysql://x\" }\n",
    );
    let p = problems(load(d.path()));
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let expect = [
        (
            "tributary.yaml:6: key `connections.erp.url`",
            "starts with postgres://",
        ),
        (
            "tributary.yaml:13: key `connections.ext.storage_option`",
            "unknown field",
        ),
        (
            "tributary.yaml:12: key `connections.files.url`",
            "unsupported scheme `ftp://`",
        ),
        (
            "tributary.yaml:14: key `connections.local.path`",
            "must not be empty",
        ),
        (
            "tributary.yaml:9: key `connections.shop.uri`",
            "unknown field `uri`",
        ),
        (
            "tributary.yaml:18: key `targets.prod.connections.erp.sslmode`",
            "unknown field `sslmode`",
        ),
        (
            "tributary.yaml:21: key `targets.staging.connections.erp.url`",
            "starts with postgres://",
        ),
    ];
    assert_eq!(text.len(), expect.len(), "{text:#?}");
    for (prefix, words) in expect {
        assert!(
            text.iter()
                .any(|t| t.starts_with(prefix) && t.contains(words)),
            "no `{prefix}` … `{words}` in {text:#?}"
        );
    }
    // The value of a target not selected is not judged while it holds `${env:…}`.
    assert!(
        !text.iter().any(|t| t.contains("prod.connections.erp.url")),
        "{text:#?}"
    );
}

#[test]
fn connection_secrets_come_from_their_connector() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        PROJECT_FILE,
        "name: t\nlake: ./lake\nconnections:\n  erp: { type: postgres, url: \"postgres://app:pg-pw@db/erp\" }\n  api:\n    type: rest\n    base_url: https://api.example.com\n    headers: { X-Tenant: acme, Authorization: Bearer tok-1 }\n    auth: { type: api_key, name: X-Key, value: key-2 }\n  drop:\n    type: files\n    url: az://c/in\n    storage_options: { azure_storage_account_key: acct-3, azure_storage_account_name: acme }\n",
    );
    let p = load(d.path()).unwrap();
    let all: Vec<String> = p
        .config
        .connections
        .values()
        .flat_map(tributary_connectors::registry::secrets)
        .collect();
    for secret in ["pg-pw", "tok-1", "key-2", "acct-3"] {
        assert!(all.iter().any(|s| s == secret), "{secret} not in {all:?}");
    }
    for shown in ["acme", "X-Key", "https://api.example.com"] {
        assert!(!all.iter().any(|s| s == shown), "{shown} in {all:?}");
    }
}
