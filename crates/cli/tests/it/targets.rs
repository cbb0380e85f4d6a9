//! Environments: `targets:` in tributary.yaml, `--target NAME` / `TRIBUTARY_TARGET`, and the CI
//! workflow `tributary init` writes.

use std::process::Command;

use crate::support::*;

const PROJECT: &str = r#"name: t
lake: ./lake
connections:
  erp: { type: sqlite, path: erp.db }
targets:
  dev:
    lake: ./lake-dev
  prod:
    lake: ./lake-prod
    state: sqlite://.tributary/prod.db
  staging:
    lake: ./lake-staging
    connections:
      erp: { type: postgres, url: "${env:TRIBUTARY_TEST_UNSET_STAGING_URL}" }
"#;

fn project() -> TestProject {
    let p = TestProject::new(PROJECT);
    let conn = rusqlite::Connection::open(p.path().join("erp.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount DECIMAL(10,2));
         INSERT INTO orders VALUES (1, '10.50'), (2, '3.00'), (3, '7.25');",
    )
    .unwrap();
    p.write(
        "ingest/erp.yaml",
        "connection: erp\ntables:\n  - name: orders\n",
    );
    p
}

#[test]
fn run_with_a_target_writes_to_that_targets_lake_only() {
    let p = project();
    // The staging target needs an unset variable; prod must not care.
    let out = p.ok(&["run", "--target", "prod"]);
    assert!(out.contains("(target prod)"), "{out}");
    let prod = p.listing("lake-prod");
    assert!(
        prod.iter()
            .any(|(f, _)| f.to_string_lossy().contains("bronze/erp_orders/_delta_log")),
        "{prod:?}"
    );
    assert!(p.listing("lake").is_empty(), "{:?}", p.listing("lake"));
    assert!(p.listing("lake-dev").is_empty());
    assert!(p.listing("lake-staging").is_empty());
    assert!(p.path().join(".tributary/prod.db").is_file());
    assert!(!p.path().join(".tributary/state.db").exists());

    // Reading goes through the same target: prod has the rows, dev has no tables.
    let rows: Vec<serde_json::Value> = serde_json::from_str(&p.ok(&[
        "--target",
        "prod",
        "query",
        "--format",
        "json",
        "SELECT count(*) AS n FROM bronze.erp_orders",
    ]))
    .unwrap();
    assert_eq!(rows[0]["n"], 3);
    let tables = p.ok(&["tables", "--target", "dev"]);
    assert!(tables.contains("No tables"), "{tables}");

    // TRIBUTARY_TARGET selects a target when --target is not given.
    let out = p
        .command(&["run"])
        .env("TRIBUTARY_TARGET", "dev")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(target dev)"), "{}", stdout(&out));
    assert!(!p.listing("lake-dev").is_empty());
    assert!(p.listing("lake").is_empty());

    // Without a target, the base lake.
    let out = p.ok(&["run"]);
    assert!(!out.contains("(target"), "{out}");
    assert!(!p.listing("lake").is_empty());
}

#[test]
fn unknown_target_exits_2_naming_the_defined_ones() {
    let p = project();
    let out = p.run(&["--target", "nope", "validate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tributary.yaml:5: key `targets`"), "{err}");
    assert!(
        err.contains("target `nope` (from --target or TRIBUTARY_TARGET) is not defined; defined targets: dev, prod, staging"),
        "{err}"
    );

    let out = p
        .command(&["validate"])
        .env("TRIBUTARY_TARGET", "qa")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("target `qa`"), "{}", stderr(&out));

    let out = p.ok(&["validate", "--target", "dev"]);
    assert!(
        out.starts_with("t (target dev): configuration is valid"),
        "{out}"
    );
    // The staging target is checked with its own environment only when selected.
    let out = p.run(&["validate", "--target", "staging"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("tributary.yaml:14: key `targets.staging.connections.erp.url`"),
        "{err}"
    );
    assert!(
        err.contains("TRIBUTARY_TEST_UNSET_STAGING_URL is not set"),
        "{err}"
    );
}

/// Run the binary in `cwd` (no `--project` added), asserting success; returns stdout.
fn ok_in(cwd: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("TRIBUTARY_TARGET")
        .output()
        .unwrap();
    assert!(out.status.success(), "tributary {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Every `run:` of the workflow's steps, after checking its triggers.
fn workflow_commands(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let on: Vec<&str> = yaml["on"]
        .as_sequence()
        .unwrap_or_else(|| panic!("no `on` list:\n{text}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(on, ["push", "pull_request"]);
    let jobs = yaml["jobs"].as_mapping().unwrap();
    let mut runs = Vec::new();
    for (_, job) in jobs {
        for step in job["steps"].as_sequence().unwrap() {
            if let Some(run) = step["run"].as_str() {
                runs.push(run.trim().to_string());
            }
        }
    }
    runs
}

#[test]
fn init_writes_a_ci_workflow_that_validates_and_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok_in(tmp.path(), &["init", "proj"]);
    assert!(out.contains(".github/workflows/tributary.yml"), "{out}");
    let dir = tmp.path().join("proj");
    let runs = workflow_commands(&dir.join(".github/workflows/tributary.yml"));
    assert!(
        runs.iter().any(|r| r == "tributary validate --target ci"),
        "{runs:#?}"
    );
    assert!(
        runs.iter().any(|r| r == "tributary test --target ci"),
        "{runs:#?}"
    );
    // The `ci` target the workflow uses exists and validates.
    let out = ok_in(&dir, &["validate", "--target", "ci"]);
    assert!(out.contains("(target ci)"), "{out}");

    // An existing workflow is kept as it is.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(other.join(".github/workflows")).unwrap();
    std::fs::write(other.join(".github/workflows/tributary.yml"), "mine\n").unwrap();
    let out = ok_in(tmp.path(), &["init", "other"]);
    assert!(out.contains("kept the existing"), "{out}");
    assert_eq!(
        std::fs::read_to_string(other.join(".github/workflows/tributary.yml")).unwrap(),
        "mine\n"
    );
    assert!(other.join("tributary.yaml").is_file());

    // The demo project gets it too, with a `ci` target.
    ok_in(tmp.path(), &["init", "demo", "--demo"]);
    let runs = workflow_commands(&tmp.path().join("demo/.github/workflows/tributary.yml"));
    assert!(
        runs.iter().any(|r| r == "tributary test --target ci"),
        "{runs:#?}"
    );
    let out = ok_in(
        tmp.path(),
        &["--project", "demo", "--target", "ci", "validate"],
    );
    assert!(
        out.starts_with("acme (target ci): configuration is valid"),
        "{out}"
    );
}
