//! Which project a command works on, and the error every command returns with its exit code.

use std::path::{Path, PathBuf};

use tributary_core::Project;
use tributary_lake::Lake;
use tributary_orchestrator::run::RunError;

/// Which project to load: its folder and the selected target (`--target` / `TRIBUTARY_TARGET`).
#[derive(Debug, Clone)]
pub struct ProjectRef {
    pub dir: PathBuf,
    pub target: Option<String>,
}

impl ProjectRef {
    /// The same target, another folder.
    pub fn at(&self, dir: &Path) -> ProjectRef {
        ProjectRef {
            dir: dir.to_path_buf(),
            target: self.target.clone(),
        }
    }

    pub fn load(&self) -> Result<Project, Failure> {
        // The shared fields, then each connector's own keys (step two).
        tributary_connectors::load_project(&self.dir, self.target.as_deref())
            .map_err(Failure::config)
    }
}

/// The project's lake (an unusable location is a configuration error).
pub fn open_lake(project: &Project) -> Result<Lake, Failure> {
    tributary_orchestrator::run::open_lake(project).map_err(Failure::config)
}

/// An error with its exit code.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    /// Exit code 2: invalid configuration or usage.
    pub fn config(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
    /// Exit code 1: a task failed.
    pub fn task(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: 1,
            error: error.into(),
        }
    }
    /// The error and its causes on one line, as `main` prints them.
    pub fn message(&self) -> String {
        format!("{:#}", self.error)
    }
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        if e.is_config() {
            Failure::config(e)
        } else {
            Failure::task(e)
        }
    }
}
