//! The PostgreSQL backend: one shared client (statements from concurrent callers are pipelined
//! on it), reconnected when the server closed it, every table in one schema (`?schema=NAME`,
//! default `tributary`) reached through the session's `search_path`.

use std::error::Error as _;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls};
use tributary_core::redact::{redact_url, scrub};

use super::backend::{Cell, DbError, Param, Row};
use super::error::StateError;
use super::migrations::{self, MIGRATIONS, MIGRATIONS_TABLE, POSTGRES};

/// The schema used when the URL has no `schema=` parameter.
pub(crate) const DEFAULT_SCHEMA: &str = "tributary";

/// How long connecting may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A PostgreSQL state store.
pub(crate) struct PgStore {
    config: Config,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    location: String,
    secrets: Vec<String>,
}

/// A parsed `postgres://` location.
pub(crate) struct PgLocation {
    pub(crate) config: Config,
    pub(crate) schema: String,
    pub(crate) location: String,
    pub(crate) secrets: Vec<String>,
}

/// Parse a `postgres://` / `postgresql://` URL: take out `schema=`, refuse TLS, and point the
/// session's `search_path` at the schema.
pub(crate) fn parse_location(raw: &str) -> Result<PgLocation, StateError> {
    let location = redact_url(raw);
    let invalid = |reason: String| StateError::InvalidLocation {
        location: location.clone(),
        reason,
    };
    let mut url = url::Url::parse(raw).map_err(|e| invalid(format!("not a URL: {e}")))?;
    let mut secrets = Vec::new();
    if let Some(p) = url.password() {
        secrets.push(p.to_string());
        if let Ok(decoded) = percent_decode(p) {
            secrets.push(decoded);
        }
    }
    let mut schema = DEFAULT_SCHEMA.to_string();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "schema" => schema = v.to_ascii_lowercase(),
            "sslmode" if !matches!(v.as_ref(), "disable" | "prefer" | "allow") => {
                return Err(invalid(format!(
                    "sslmode={v}: TLS to the state database is not supported yet; use a \
                     connection on a trusted network (sslmode=disable or prefer) or the SQLite store"
                )));
            }
            "password" => {
                secrets.push(v.to_string());
                kept.push((k.into_owned(), v.into_owned()));
            }
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let valid_schema = schema
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if !valid_schema {
        return Err(invalid(format!(
            "schema `{schema}` is not a plain SQL name (letters, digits and _, not starting with a digit, at most 63 characters)"
        )));
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let mut config = Config::from_str(url.as_str())
        .map_err(|e| invalid(scrub(&error_chain(&e), &secret_refs)))?;
    let options = match config.get_options() {
        Some(o) if !o.trim().is_empty() => format!("{o} -c search_path={schema}"),
        _ => format!("-c search_path={schema}"),
    };
    config.options(options);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("tributary");
    }
    Ok(PgLocation {
        config,
        schema,
        location,
        secrets,
    })
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// A driver error with its causes (tokio-postgres's own message leaves them out).
fn error_chain(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether an error means the session is gone: the connection closed, or the server ended the
/// session (`FATAL`, e.g. 57P01 "terminating connection due to administrator command" on a
/// restart). The statement was not run, so it may be sent again on a new connection.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    e.is_closed() || e.as_db_error().is_some_and(|d| d.severity() == "FATAL")
}

/// The advisory lock key that serialises migrations of one schema.
fn lock_key(schema: &str) -> i64 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"tributary-state:".iter().chain(schema.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

impl PgStore {
    /// Connect, create the schema if needed and bring it up to date.
    pub(crate) async fn open(loc: PgLocation) -> Result<PgStore, StateError> {
        let store = PgStore {
            config: loc.config,
            client: tokio::sync::Mutex::new(None),
            location: loc.location,
            secrets: loc.secrets,
        };
        let mut client = store.connect().await.map_err(|e| StateError::Unavailable {
            location: store.location.clone(),
            message: e.message,
        })?;
        store.migrate(&mut client, &loc.schema).await?;
        *store.client.lock().await = Some(Arc::new(client));
        Ok(store)
    }

    fn scrubbed(&self, message: &str) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        scrub(message, &secrets)
    }

    fn db_error(&self, e: &tokio_postgres::Error) -> DbError {
        DbError {
            message: self.scrubbed(&error_chain(e)),
            connection_lost: connection_lost(e),
        }
    }

    async fn connect(&self) -> Result<Client, DbError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| DbError {
            message: self.scrubbed(&error_chain(&e)),
            connection_lost: true,
        })?;
        let location = self.location.clone();
        let secrets = self.secrets.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
                tracing::warn!(
                    store = %location,
                    error = %scrub(&error_chain(&e), &secrets),
                    "State store connection closed; the next call reconnects."
                );
            }
        });
        Ok(client)
    }

    /// Forget `dead`, so that the next call connects again.
    async fn forget(&self, dead: &Arc<Client>) {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, dead)) {
            *guard = None;
        }
    }

    /// The shared client, reconnecting first if the server closed it.
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref()
            && !c.is_closed()
        {
            return Ok(Arc::clone(c));
        }
        *guard = None;
        let client = Arc::new(self.connect().await?);
        tracing::info!(store = %self.location, "Connected to the state store again.");
        *guard = Some(Arc::clone(&client));
        Ok(client)
    }

    async fn migrate(&self, client: &mut Client, schema: &str) -> Result<(), StateError> {
        let prepare_failed = |e: tokio_postgres::Error| StateError::Query {
            location: self.location.clone(),
            operation: format!("preparing schema {schema} for migrations"),
            message: self.scrubbed(&error_chain(&e)),
            connection_lost: e.is_closed(),
        };
        let tx = client.transaction().await.map_err(prepare_failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
            .await
            .map_err(prepare_failed)?;
        let exists = tx
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await
            .map_err(prepare_failed)?
            .is_some();
        if !exists {
            // `schema` is checked to be a plain lower-case SQL name.
            tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .map_err(prepare_failed)?;
        }
        tx.batch_execute(&migrations::render(MIGRATIONS_TABLE, &POSTGRES))
            .await
            .map_err(prepare_failed)?;
        let current: i64 = tx
            .query_one(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
                &[],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(prepare_failed)?;
        let known = migrations::latest_version();
        if current > i64::from(known) {
            return Err(StateError::TooNew {
                location: self.location.clone(),
                found: u32::try_from(current).unwrap_or(u32::MAX),
                known,
            });
        }
        let mut applied = false;
        for m in MIGRATIONS.iter().filter(|m| i64::from(m.version) > current) {
            let failed = |e: tokio_postgres::Error| StateError::Migration {
                location: self.location.clone(),
                version: m.version,
                description: m.description.to_string(),
                message: self.scrubbed(&error_chain(&e)),
            };
            tx.batch_execute(&migrations::render(m.ddl, &POSTGRES))
                .await
                .map_err(failed)?;
            let now: DateTime<Utc> = Utc::now().trunc_subsecs(6);
            tx.execute(
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES ($1, $2, $3)",
                &[&i64::from(m.version), &m.description, &now],
            )
            .await
            .map_err(failed)?;
            applied = true;
        }
        tx.commit().await.map_err(|e| StateError::Query {
            location: self.location.clone(),
            operation: "committing the migrations".into(),
            message: self.scrubbed(&error_chain(&e)),
            connection_lost: e.is_closed(),
        })?;
        if applied {
            tracing::info!(store = %self.location, version = known, "State store schema migrated.");
        }
        Ok(())
    }

    pub(crate) async fn execute(&self, sql: &str, params: Vec<Param>) -> Result<u64, DbError> {
        let values = to_sql_values(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as _).collect();
        let mut retried = false;
        loop {
            let client = self.client().await?;
            match client.execute(sql, &refs).await {
                Ok(n) => return Ok(n),
                Err(e) if connection_lost(&e) && !retried => {
                    self.forget(&client).await;
                    retried = true;
                }
                Err(e) => {
                    if connection_lost(&e) {
                        self.forget(&client).await;
                    }
                    return Err(self.db_error(&e));
                }
            }
        }
    }

    pub(crate) async fn query(&self, sql: &str, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        let values = to_sql_values(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref() as _).collect();
        let mut retried = false;
        let rows = loop {
            let client = self.client().await?;
            match client.query(sql, &refs).await {
                Ok(rows) => break rows,
                Err(e) if connection_lost(&e) && !retried => {
                    self.forget(&client).await;
                    retried = true;
                }
                Err(e) => {
                    if connection_lost(&e) {
                        self.forget(&client).await;
                    }
                    return Err(self.db_error(&e));
                }
            }
        };
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let names: Arc<[String]> = first
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(names.len());
            for (i, column) in row.columns().iter().enumerate() {
                cells.push(to_cell(row, i, column.type_()).map_err(|e| self.db_error(&e))?);
            }
            out.push(Row {
                names: Arc::clone(&names),
                cells,
            });
        }
        Ok(out)
    }
}

fn to_sql_values(params: Vec<Param>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .into_iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Text(v) => Box::new(v),
                Param::Int(v) => Box::new(v),
                Param::Bool(v) => Box::new(v),
                Param::Time(v) => Box::new(v),
                Param::Json(v) => Box::new(v),
            }
        })
        .collect()
}

fn to_cell(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<Cell, tokio_postgres::Error> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> Cell) -> Cell {
        v.map(f).unwrap_or(Cell::Null)
    }
    Ok(if *ty == Type::BOOL {
        or_null(row.try_get::<_, Option<bool>>(i)?, Cell::Bool)
    } else if *ty == Type::INT2 {
        or_null(row.try_get::<_, Option<i16>>(i)?, |v| Cell::Int(v.into()))
    } else if *ty == Type::INT4 {
        or_null(row.try_get::<_, Option<i32>>(i)?, |v| Cell::Int(v.into()))
    } else if *ty == Type::INT8 {
        or_null(row.try_get::<_, Option<i64>>(i)?, Cell::Int)
    } else if *ty == Type::FLOAT8 {
        or_null(row.try_get::<_, Option<f64>>(i)?, Cell::Real)
    } else if *ty == Type::TIMESTAMPTZ {
        or_null(row.try_get::<_, Option<DateTime<Utc>>>(i)?, Cell::Time)
    } else if *ty == Type::JSON || *ty == Type::JSONB {
        or_null(row.try_get::<_, Option<serde_json::Value>>(i)?, Cell::Json)
    } else {
        // Text, and anything else: try_get reports a type it cannot read as text.
        or_null(row.try_get::<_, Option<String>>(i)?, Cell::Text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_taken_out_and_tls_refused() {
        let loc =
            parse_location("postgres://app:s3cr%40t@db:5433/erp?schema=Hist&application_name=x")
                .map_err(|e| e.to_string());
        let loc = match loc {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(loc.schema, "hist");
        assert!(!loc.location.contains("s3cr"), "{}", loc.location);
        assert!(loc.secrets.iter().any(|s| s == "s3cr@t"));
        assert_eq!(loc.config.get_dbname(), Some("erp"));
        assert_eq!(loc.config.get_options(), Some("-c search_path=hist"));
        assert_eq!(loc.config.get_application_name(), Some("x"));

        let err = parse_location("postgresql://app:s3cret@db/erp?sslmode=require")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("TLS to the state database is not supported"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");

        let err = parse_location("postgres://db/erp?schema=drop%20table")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a plain SQL name"), "{err}");
    }

    #[test]
    fn lock_keys_differ_by_schema() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("a"), lock_key("a"));
    }
}
