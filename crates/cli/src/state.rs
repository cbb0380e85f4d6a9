//! The state store: run history in SQLite (`state: sqlite://.tributary/state.db`).
//!
//! Load progress (watermarks) lives in the Delta tables themselves, committed with the data;
//! this store only records what ran, for `tributary runs` and the dashboard. Losing it loses
//! history, never data.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::{Connection, params};

/// One finished table load, as recorded.
pub struct LoadRecord<'a> {
    pub target: &'a str,
    pub status: &'a str,
    pub rows: u64,
    pub version: Option<i64>,
    pub seconds: f64,
    pub error: Option<&'a str>,
}

pub struct StateStore {
    conn: Connection,
}

impl StateStore {
    /// Open (creating) the store named by the project's `state` setting.
    pub fn open(project_root: &Path, state: &str) -> anyhow::Result<StateStore> {
        let rel = state
            .strip_prefix("sqlite://")
            .with_context(|| format!("state `{state}` is not a sqlite:// location"))?;
        let path = if Path::new(rel).is_absolute() {
            PathBuf::from(rel)
        } else {
            project_root.join(rel)
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let conn = Connection::open(&path)
            .with_context(|| format!("cannot open the state store {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY, command TEXT NOT NULL, started_at TEXT NOT NULL,
                finished_at TEXT, status TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS table_loads (
                run_id TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,
                rows INTEGER NOT NULL, version INTEGER, seconds REAL NOT NULL, error TEXT,
                PRIMARY KEY (run_id, target));
             CREATE TABLE IF NOT EXISTS expectation_results (
                run_id TEXT NOT NULL, model TEXT NOT NULL, expectation TEXT NOT NULL,
                rule TEXT NOT NULL, on_fail TEXT NOT NULL, checked_rows INTEGER NOT NULL,
                failed_rows INTEGER NOT NULL, passed INTEGER NOT NULL,
                PRIMARY KEY (run_id, model, expectation));",
        )
        .with_context(|| format!("cannot initialise the state store {}", path.display()))?;
        Ok(StateStore { conn })
    }

    pub fn start_run(&self, run_id: &str, command: &str, started_at: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT INTO runs (run_id, command, started_at, status) VALUES (?1, ?2, ?3, 'running')",
            params![run_id, command, started_at],
        )?;
        Ok(())
    }

    pub fn record_load(&self, run_id: &str, r: &LoadRecord<'_>) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO table_loads (run_id, target, status, rows, version, seconds, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![run_id, r.target, r.status, r.rows as i64, r.version, r.seconds, r.error],
        )?;
        Ok(())
    }

    /// Record one expectation's outcome for a model in a run.
    pub fn record_expectation(
        &self,
        run_id: &str,
        model: &str,
        e: &tributary_transform::ExpectationResult,
    ) -> anyhow::Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO expectation_results
               (run_id, model, expectation, rule, on_fail, checked_rows, failed_rows, passed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run_id,
                model,
                e.name,
                e.rule,
                e.on_fail,
                e.checked_rows as i64,
                e.failed_rows as i64,
                e.passed
            ],
        )?;
        Ok(())
    }

    pub fn finish_run(&self, run_id: &str, status: &str, finished_at: &str) -> anyhow::Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, finished_at = ?3 WHERE run_id = ?1",
            params![run_id, status, finished_at],
        )?;
        Ok(())
    }
}
