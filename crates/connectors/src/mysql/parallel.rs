//! Parallel reads of one MySQL/MariaDB table: key ranges of an integer column, read over
//! several connections that all see the same committed state.
//!
//! MySQL and MariaDB cannot share one snapshot between sessions, so the reader makes the
//! snapshots equal instead: a coordinating session takes `LOCK TABLES t READ`, which waits for
//! transactions writing to `t` and holds off new writes; while it is held, every reading session
//! opens `START TRANSACTION WITH CONSISTENT SNAPSHOT`; then the lock is released. Writers to `t`
//! wait for those few milliseconds, and every reader sees exactly the rows committed before the
//! lock. This needs the `LOCK TABLES` privilege on the table, and works for tables, not for a
//! custom `query` (whose tables the reader does not know).
//!
//! The ranges split `[MIN, MAX]` of the column evenly (integer columns only), so skewed keys
//! give ranges of different sizes; rows whose key is NULL are read with the first range.

use std::sync::Arc;

use crate::parallel::ParallelRead;
use mysql_async::prelude::Queryable;
use tracing::debug;
use tributary_core::{ReadRequest, SourceError};

use super::{Inner, Output, begin_snapshot, describe, read_ranges, session_settings, sql};
use crate::util::range_predicates;

/// Read `request` in `parallel.partitions` key ranges over `parallel.workers()` connections.
pub(super) async fn produce(
    inner: Arc<Inner>,
    request: Arc<ReadRequest>,
    out: Output,
    parallel: ParallelRead,
) {
    let (mut coordinator, ranges) = match plan(&inner, &request, &parallel).await {
        Ok(Plan::Single) => {
            let conn = match inner.connect().await {
                Ok(c) => c,
                Err(e) => return out.fail(e).await,
            };
            return read_ranges(&inner, &request, conn, out, &[None], true).await;
        }
        Ok(Plan::Ranges {
            coordinator,
            ranges,
        }) => (coordinator, ranges),
        Err(e) => return out.fail(e).await,
    };
    let workers = parallel.workers().min(ranges.len()).max(1);
    // Deal the ranges out round-robin: they are of about equal width.
    let mut shares: Vec<Vec<Option<String>>> = vec![Vec::new(); workers];
    for (i, r) in ranges.into_iter().enumerate() {
        shares[i % workers].push(r);
    }
    // Open every reader's snapshot while the coordinator holds the table lock, then release it.
    let opened = futures::future::join_all((0..workers).map(|_| async {
        let mut conn = inner.connect().await?;
        begin_snapshot(&inner, &request, &mut conn).await?;
        Ok::<_, SourceError>(conn)
    }))
    .await;
    if let Err(e) = coordinator.query_drop("UNLOCK TABLES").await {
        debug!(error = %describe(&e, &inner.secrets), "UNLOCK TABLES failed.");
    }
    let _ = coordinator.disconnect().await;
    let mut conns = Vec::with_capacity(workers);
    for conn in opened {
        match conn {
            Ok(c) => conns.push(c),
            Err(e) => return out.fail(e).await,
        }
    }
    debug!(connection = %inner.name, table = %request.table.name, workers, "Parallel MySQL read.");
    // Kept until every reader has ended, to report one that panicked.
    let errors = out.batches_only();
    let mut out = Some(out);
    let mut readers = Vec::with_capacity(workers);
    for (i, (conn, share)) in conns.into_iter().zip(shares).enumerate() {
        // The last reader started reports the schema; the others only send batches.
        let worker_out = match (i + 1 == workers, out.as_ref()) {
            (true, _) => out.take(),
            (false, Some(o)) => Some(o.batches_only()),
            (false, None) => None,
        };
        let Some(worker_out) = worker_out else { break };
        let inner = Arc::clone(&inner);
        let request = Arc::clone(&request);
        readers.push(tokio::spawn(async move {
            read_ranges(&inner, &request, conn, worker_out, &share, false).await
        }));
    }
    for reader in readers {
        if let Err(e) = reader.await {
            errors
                .fail(SourceError::Internal(format!(
                    "a parallel MySQL reader of {} failed: {e}",
                    request.table.name
                )))
                .await;
            return;
        }
    }
}

enum Plan {
    /// Read in one query (an empty table, or one key value).
    Single,
    /// The coordinator holds `LOCK TABLES … READ`; read these ranges.
    Ranges {
        coordinator: mysql_async::Conn,
        ranges: Vec<Option<String>>,
    },
}

/// Find the column, its range and the predicates, and lock the table.
async fn plan(
    inner: &Inner,
    request: &ReadRequest,
    parallel: &ParallelRead,
) -> Result<Plan, SourceError> {
    let label = request.table.name.as_str();
    let config_error = |reason: String| SourceError::Config {
        table: label.to_string(),
        reason,
    };
    if request.table.query.is_some() {
        return Err(config_error(
            "`parallel` on MySQL/MariaDB reads tables, not a custom `query`: sessions of these \
             servers cannot share one snapshot, and the reader can only line them up for a \
             table it can lock"
                .into(),
        ));
    }
    let mut conn = inner.connect().await?;
    session_settings(inner, request, &mut conn).await?;
    let query_err = |e: mysql_async::Error| inner.query_error(label, &e);
    let column = match &parallel.column {
        Some(c) => c.clone(),
        None => {
            let keys = super::declared_key(&mut conn, label)
                .await
                .map_err(query_err)?;
            match keys.as_slice() {
                [one] => one.clone(),
                _ => {
                    return Err(config_error(
                        "`parallel` needs a `column`: the table has no one-column primary key"
                            .into(),
                    ));
                }
            }
        }
    };
    let q = sql::quote_ident(&column);
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(format!(
            "SELECT CAST(MIN({q}) AS CHAR), CAST(MAX({q}) AS CHAR) FROM {}",
            sql::quote_table(label)
        ))
        .await
        .map_err(query_err)?;
    let (min, max) = match bounds {
        Some((Some(min), Some(max))) => (min, max),
        _ => {
            let _ = conn.disconnect().await;
            return Ok(Plan::Single);
        }
    };
    let parse = |v: &str| {
        v.parse::<i128>().map_err(|_| {
            config_error(format!(
                "`parallel.column` {column} must be an integer column on MySQL/MariaDB \
                 (its minimum is {v:?})"
            ))
        })
    };
    let boundaries = even_boundaries(parse(&min)?, parse(&max)?, parallel.partitions);
    if boundaries.is_empty() {
        let _ = conn.disconnect().await;
        return Ok(Plan::Single);
    }
    conn.query_drop(format!("LOCK TABLES {} READ", sql::quote_table(label)))
        .await
        .map_err(|e| {
            config_error(format!(
                "a parallel read holds `LOCK TABLES … READ` for a moment so every connection \
                 starts from the same state, and that failed: {}; grant LOCK TABLES on the \
                 table or remove `parallel`",
                describe(&e, &inner.secrets)
            ))
        })?;
    Ok(Plan::Ranges {
        coordinator: conn,
        ranges: range_predicates(
            &q,
            &boundaries.iter().map(i128::to_string).collect::<Vec<_>>(),
        ),
    })
}

/// `partitions - 1` distinct boundaries splitting `[min, max]` into ranges of equal width.
fn even_boundaries(min: i128, max: i128, partitions: usize) -> Vec<i128> {
    let n = partitions.max(1) as i128;
    let width = max - min + 1;
    let mut out: Vec<i128> = (1..n).map(|i| min + width * i / n).collect();
    out.retain(|b| *b > min && *b <= max);
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_split_evenly_and_cover_everything() {
        assert_eq!(even_boundaries(1, 100, 4), vec![26, 51, 76]);
        assert_eq!(even_boundaries(5, 5, 4), Vec::<i128>::new());
        assert_eq!(even_boundaries(1, 2, 8), vec![2]);
        assert_eq!(
            even_boundaries(i64::MIN as i128, i64::MAX as i128, 2),
            vec![0]
        );
        let p = range_predicates("`id`", &["10".to_string(), "20".to_string()]);
        assert_eq!(
            p,
            vec![
                Some("(`id` < 10 OR `id` IS NULL)".to_string()),
                Some("`id` >= 10 AND `id` < 20".to_string()),
                Some("`id` >= 20".to_string()),
            ]
        );
    }
}
