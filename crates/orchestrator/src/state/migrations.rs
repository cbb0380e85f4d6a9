//! Versioned schema migrations, shared by both backends.
//!
//! Each migration is DDL written once with type placeholders (`{TS}`, `{INT}`, `{BOOL}`,
//! `{JSON}`) that each backend fills in. Migrations run on open, all pending ones in one
//! transaction, under a lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`), and
//! each one adds a row to `schema_migrations (version, description, applied_at)`.

/// One schema migration.
pub(crate) struct Migration {
    pub(crate) version: u32,
    pub(crate) description: &'static str,
    pub(crate) ddl: &'static str,
}

/// The table that records applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version {INT} PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {TS} NOT NULL
)";

/// Every migration, in order. Never edit a released one: add the next.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "runs, tasks, attempts, expectations, leases and schedule fires (keeps the history of stores written before migrations)",
        ddl: "
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    triggered_by TEXT NOT NULL,
    selectors {JSON} NOT NULL,
    target TEXT,
    status TEXT NOT NULL,
    started_at {TS} NOT NULL,
    finished_at {TS},
    heartbeat_at {TS},
    error TEXT,
    resumed_from TEXT,
    host TEXT NOT NULL,
    pid {INT} NOT NULL
);
CREATE INDEX runs_by_start ON runs (started_at);
CREATE TABLE tasks (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at {TS},
    finished_at {TS},
    attempts {INT} NOT NULL,
    rows {INT},
    bytes {INT},
    version {INT},
    error TEXT,
    error_class TEXT,
    detail {JSON} NOT NULL,
    PRIMARY KEY (run_id, task_id)
);
CREATE INDEX tasks_by_task ON tasks (task_id);
CREATE TABLE attempts (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    attempt {INT} NOT NULL,
    started_at {TS} NOT NULL,
    finished_at {TS},
    status TEXT NOT NULL,
    error TEXT,
    error_class TEXT,
    PRIMARY KEY (run_id, task_id, attempt)
);
CREATE TABLE expectations (
    run_id TEXT NOT NULL,
    model TEXT NOT NULL,
    expectation TEXT NOT NULL,
    rule TEXT NOT NULL,
    on_fail TEXT NOT NULL,
    checked_rows {INT} NOT NULL,
    failed_rows {INT} NOT NULL,
    passed {BOOL} NOT NULL,
    recorded_at {TS} NOT NULL,
    PRIMARY KEY (run_id, model, expectation)
);
CREATE INDEX expectations_by_model ON expectations (model, recorded_at);
CREATE TABLE leases (
    resource TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid {INT} NOT NULL,
    acquired_at {TS} NOT NULL,
    expires_at {TS} NOT NULL
);
CREATE INDEX leases_by_run ON leases (run_id);
CREATE TABLE schedule_fires (
    schedule TEXT NOT NULL,
    fire_time {TS} NOT NULL,
    recorded_at {TS} NOT NULL,
    outcome TEXT NOT NULL,
    run_id TEXT,
    note TEXT,
    PRIMARY KEY (schedule, fire_time)
);
",
    },
    Migration {
        version: 2,
        description: "alert states, alert deliveries (every attempt) and incidents (open Jira requests)",
        ddl: "
CREATE TABLE alert_states (
    dedup_key TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    error_class TEXT NOT NULL,
    severity TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    first_fired_at {TS} NOT NULL,
    last_fired_at {TS} NOT NULL,
    resolved_at {TS},
    occurrences {INT} NOT NULL,
    last_run_id TEXT
);
CREATE INDEX alert_states_by_rule ON alert_states (rule, subject, status);
CREATE TABLE alert_deliveries (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    attempt {INT} NOT NULL,
    rule TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    event TEXT NOT NULL,
    run_id TEXT,
    status TEXT NOT NULL,
    http_status {INT},
    error TEXT,
    attempted_at {TS} NOT NULL,
    PRIMARY KEY (alert_id, channel, attempt)
);
CREATE INDEX alert_deliveries_by_time ON alert_deliveries (attempted_at);
CREATE TABLE incidents (
    incident_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    rule TEXT NOT NULL,
    external_key TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at {TS} NOT NULL,
    updated_at {TS} NOT NULL,
    resolved_at {TS},
    occurrences {INT} NOT NULL,
    last_run_id TEXT
);
CREATE UNIQUE INDEX incidents_one_open ON incidents (channel, dedup_key) WHERE status = 'open';
",
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// The column types of one backend.
pub(crate) struct Dialect {
    pub(crate) timestamp: &'static str,
    pub(crate) int: &'static str,
    pub(crate) boolean: &'static str,
    pub(crate) json: &'static str,
}

/// SQLite: times as RFC 3339 text (microseconds, `Z`), JSON as text.
pub(crate) const SQLITE: Dialect = Dialect {
    timestamp: "TEXT",
    int: "INTEGER",
    boolean: "INTEGER",
    json: "TEXT",
};

/// PostgreSQL: `timestamptz`, `bigint`, `boolean`, `jsonb`.
pub(crate) const POSTGRES: Dialect = Dialect {
    timestamp: "TIMESTAMPTZ",
    int: "BIGINT",
    boolean: "BOOLEAN",
    json: "JSONB",
};

/// Fill a DDL template's type placeholders for a dialect.
pub(crate) fn render(ddl: &str, d: &Dialect) -> String {
    ddl.replace("{TS}", d.timestamp)
        .replace("{INT}", d.int)
        .replace("{BOOL}", d.boolean)
        .replace("{JSON}", d.json)
}

/// SQL of the pre-migration SQLite store (written by Tributary before the orchestrator), to
/// recognise it. Its `runs` table has a `command` column; the new one does not.
pub(crate) const LEGACY_MARKER: &str =
    "SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name = 'command'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
        }
        assert_eq!(latest_version() as usize, MIGRATIONS.len());
    }

    #[test]
    fn templates_are_filled() {
        for m in MIGRATIONS {
            for d in [&SQLITE, &POSTGRES] {
                assert!(!render(m.ddl, d).contains('{'), "{}", m.version);
            }
        }
    }
}
