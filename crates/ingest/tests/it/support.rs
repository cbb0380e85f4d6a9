//! A project folder in a temporary directory, its lake, and the independent reader.

use std::path::Path;

use tributary_core::Project;
use tributary_core::config::LoadSpec;
use tributary_ingest::LoadContext;
use tributary_lake::Lake;

pub use tributary_testkit::{pg_url, unavailable, unique_name};

/// A project written into `dir`: `tributary.yaml` with `connections` (YAML, indented under
/// `connections:`) and one ingest file.
pub fn project(dir: &Path, connections: &str, ingest: &str) -> Project {
    std::fs::write(
        dir.join("tributary.yaml"),
        format!("name: t\nlake: ./lake\nstate: sqlite://.tributary/state.db\nconnections:\n{connections}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("ingest")).unwrap();
    std::fs::write(dir.join("ingest/src.yaml"), ingest).unwrap();
    Project::load(dir).unwrap_or_else(|e| panic!("{e}"))
}

/// A load context of a new run on the project's lake.
pub fn context(project: &Project, run_id: &str) -> LoadContext {
    let lake = Lake::new(
        &project.config.lake,
        &project.root,
        &project.config.lake_options,
    )
    .unwrap();
    LoadContext::new(
        project.clone(),
        lake,
        run_id.to_string(),
        chrono::Utc::now().timestamp_micros(),
    )
}

/// The project's only load spec.
pub fn spec(project: &Project) -> LoadSpec {
    let mut specs = project.load_specs();
    assert_eq!(specs.len(), 1);
    specs.remove(0)
}

/// Run a Python snippet with `deltalake` and return its stdout; `None` (skip) without it
/// outside CI.
pub fn python(script: &str) -> Option<String> {
    tributary_testkit::python::run("deltalake, pyarrow", script)
}
