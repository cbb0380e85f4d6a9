//! Printing: aligned text tables for people; CSV and JSON for machines.

use std::io::Write;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use crate::args::QueryFormat;

/// Render rows as an aligned text table. Numbers right-aligned when `right[i]`.
pub fn text_table(header: &[&str], rows: &[Vec<String>], right: &[bool]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<&str>| -> String {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&" ".repeat(pad));
                line.push_str(c);
            } else {
                line.push_str(c);
                if i + 1 < cells.len() {
                    line.push_str(&" ".repeat(pad));
                }
            }
        }
        line
    };
    let mut out = fmt_row(header.to_vec());
    out.push('\n');
    let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    out.push_str(&"-".repeat(total));
    out.push('\n');
    for r in rows {
        out.push_str(&fmt_row(r.iter().map(|s| s.as_str()).collect()));
        out.push('\n');
    }
    out
}

/// Human-readable byte count.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Thousands separators: 1234567 → 1,234,567.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Stream query results to stdout. Table format gathers at most `max_table_rows` rows (and says
/// so when there were more); CSV and JSON stream every row.
pub async fn print_query_results(
    mut stream: SendableRecordBatchStream,
    format: QueryFormat,
    max_table_rows: usize,
) -> anyhow::Result<u64> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut rows = 0u64;
    match format {
        QueryFormat::Table => {
            let mut kept: Vec<RecordBatch> = Vec::new();
            let mut kept_rows = 0usize;
            let schema = stream.schema();
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows() as u64;
                if kept_rows < max_table_rows {
                    let take = (max_table_rows - kept_rows).min(b.num_rows());
                    kept.push(b.slice(0, take));
                    kept_rows += take;
                }
            }
            if kept.is_empty() {
                kept.push(RecordBatch::new_empty(schema));
            }
            let text = deltalake::arrow::util::pretty::pretty_format_batches(&kept)?;
            writeln!(out, "{text}")?;
            if rows as usize > kept_rows {
                writeln!(
                    out,
                    "({} rows, first {kept_rows} shown; use --format csv or json for all)",
                    thousands(rows)
                )?;
            } else {
                writeln!(
                    out,
                    "({} row{})",
                    thousands(rows),
                    if rows == 1 { "" } else { "s" }
                )?;
            }
        }
        QueryFormat::Csv => {
            let mut w = deltalake::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b)?;
            }
        }
        QueryFormat::Json => {
            let mut w = deltalake::arrow::json::ArrayWriter::new(&mut out);
            while let Some(b) = stream.next().await {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b)?;
            }
            w.finish()?;
            drop(w);
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        let t = text_table(
            &["a", "bb"],
            &[vec!["xyz".into(), "1".into()]],
            &[false, true],
        );
        assert_eq!(t, "a    bb\n-------\nxyz   1\n");
    }
}
