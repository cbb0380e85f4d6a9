//! A files table's own keys (`glob`, `format`, `compression`, `csv`, `excel`): parsed from the
//! table entry's connector keys in step two of reading `ingest/*.yaml`, and checked there.

use serde::{Deserialize, Serialize};
use tributary_core::SourceError;
use tributary_core::config::TableConfig;

/// The keys a files table takes besides the shared ones.
pub const KEYS: [&str; 5] = ["glob", "format", "compression", "csv", "excel"];

/// A files table's own configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilesTable {
    /// Glob relative to the connection's URL (`orders/*.csv`, `**/*.parquet`). Required.
    #[serde(default)]
    pub glob: Option<String>,
    /// `csv`, `ndjson`, `parquet` or `xlsx` (`excel`); default from the file extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// `auto` (default: gzip if the name ends in `.gz`), `gzip` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// CSV dialect.
    #[serde(default)]
    pub csv: Option<CsvOptions>,
    /// Spreadsheet options (sheet, header, rows to skip).
    #[serde(default)]
    pub excel: Option<ExcelOptions>,
}

impl FilesTable {
    /// The files keys of `table` (checked when the project loaded; an error here names the
    /// key anyway).
    pub fn of(table: &TableConfig) -> Result<FilesTable, SourceError> {
        crate::registry::table_options(table)
    }

    /// Problems of a files table, as (key under the table entry, message).
    pub fn problems(table: &TableConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let files = match table.options_as::<FilesTable>() {
            Ok(f) => f,
            Err(problem) => return vec![problem],
        };
        if table.query.is_some() {
            out.push((
                "query".into(),
                "`query` is for database connections; file connections use `glob`".into(),
            ));
        }
        match &files.glob {
            None => out.push((
                "name".into(),
                "tables of a files connection need `glob` (e.g. `orders/*.csv`)".into(),
            )),
            Some(g) => {
                if let Err(e) = globset::Glob::new(g) {
                    out.push(("glob".into(), format!("invalid glob: {e}")));
                }
            }
        }
        if let Some(csv) = &files.csv {
            for (key, value, what) in [
                ("csv.delimiter", &csv.delimiter, "delimiter"),
                ("csv.quote", &csv.quote, "quote"),
            ] {
                if value.chars().count() != 1 || !value.is_ascii() {
                    out.push((
                        key.into(),
                        format!("the {what} must be one ASCII character"),
                    ));
                }
            }
        }
        out
    }
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma- (or otherwise) separated values.
    Csv,
    /// Newline-delimited JSON objects.
    Ndjson,
    /// Apache Parquet.
    Parquet,
    /// Spreadsheets: Excel (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`) and OpenDocument (`.ods`), one
    /// sheet per file (see [`ExcelOptions`]).
    #[serde(alias = "excel")]
    Xlsx,
}

/// Compression of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip when the file name ends in `.gz`, else none.
    #[default]
    Auto,
    /// gzip.
    Gzip,
    /// No compression.
    None,
}

/// CSV dialect.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// Field delimiter, one character. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Quote character, one character. Default `"`.
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Whether the first line holds column names. Default true.
    #[serde(default = "default_true")]
    pub header: bool,
    /// Infer column types from the first rows (default true); false loads every column as text.
    #[serde(default = "default_true")]
    pub infer_types: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: default_delimiter(),
            quote: default_quote(),
            header: true,
            infer_types: true,
        }
    }
}

/// Spreadsheet options (`excel:` on a files table).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExcelOptions {
    /// The sheet to read, by name. Default: the first sheet of each file.
    #[serde(default)]
    pub sheet: Option<String>,
    /// Whether the first row (after `skip_rows`) holds column names. Default true.
    #[serde(default = "default_true")]
    pub header: bool,
    /// Rows to skip at the top of the sheet's used area before the header (titles, notes).
    #[serde(default)]
    pub skip_rows: usize,
    /// Infer column types from the cells (default true); false loads every column as text.
    #[serde(default = "default_true")]
    pub infer_types: bool,
}

impl Default for ExcelOptions {
    fn default() -> Self {
        ExcelOptions {
            sheet: None,
            header: true,
            skip_rows: 0,
            infer_types: true,
        }
    }
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn default_true() -> bool {
    true
}
