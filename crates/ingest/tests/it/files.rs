//! `new_files` loads from a landing folder: metadata columns, quarantine, and files loaded once.

use tributary_ingest::load_table;

use crate::support;

#[tokio::test]
async fn new_files_are_loaded_once_with_their_stamps_and_malformed_records_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing/orders");
    std::fs::create_dir_all(&landing).unwrap();
    std::fs::write(landing.join("a.csv"), "id,amount\n1,10\n2,20,extra\n3,30\n").unwrap();
    let project = support::project(
        dir.path(),
        "  landing: { type: files, url: ./landing }\n",
        "connection: landing\ntables:\n  - name: orders\n    glob: \"orders/*.csv\"\n    mode: new_files\n    on_error: quarantine\n",
    );
    let spec = support::spec(&project);
    let first = load_table(&support::context(&project, "run-1"), &spec).await;
    assert!(first.error.is_none(), "{:?}", first.error);
    assert_eq!((first.rows, first.mode), (2, "new_files"));

    // The same file again is not new; a second file is.
    let again = load_table(&support::context(&project, "run-2"), &spec).await;
    assert_eq!(again.rows, 0, "{:?}", again.error);
    std::fs::write(landing.join("b.csv"), "id,amount\n4,40\n").unwrap();
    let second = load_table(&support::context(&project, "run-3"), &spec).await;
    assert_eq!(second.rows, 1, "{:?}", second.error);

    let lake = dir.path().join("lake/bronze");
    let Some(out) = support::python(&format!(
        r#"
from deltalake import DeltaTable
a = DeltaTable("{main}").to_pyarrow_table().sort_by("id")
print(a.column("id").to_pylist())
print(sorted(set(s.rsplit("/", 1)[-1] for s in a.column("_tributary_source").to_pylist())))
print(sorted(set(a.column("_tributary_run_id").to_pylist())))
print(all(n > 0 for n in a.column("_tributary_file_size").to_pylist()))
q = DeltaTable("{quarantine}").to_pyarrow_table()
print(q.column("_tributary_line").to_pylist(), q.column("_tributary_raw").to_pylist(), q.column("_tributary_run_id").to_pylist())
"#,
        main = lake.join("landing_orders").display(),
        quarantine = lake.join("_quarantine_landing_orders").display(),
    )) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "[1, 3, 4]", "{out}");
    assert_eq!(lines[1], "['a.csv', 'b.csv']", "{out}");
    assert_eq!(lines[2], "['run-1', 'run-3']", "{out}");
    assert_eq!(lines[3], "True", "{out}");
    assert_eq!(lines[4], "[3] ['2,20,extra'] ['run-1']", "{out}");
}
