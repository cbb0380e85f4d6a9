//! A REST table's own keys (`path`, `params`, `records`, `pagination`, `cursor_param`,
//! `nested`): parsed from the table entry's connector keys in step two of reading
//! `ingest/*.yaml`, and checked there.

use std::collections::BTreeMap;

use crate::rest::connection::{NestedMode, Pagination};
use serde::Deserialize;
use tributary_core::SourceError;
use tributary_core::config::{LoadMode, TableConfig};

/// The keys a REST table takes besides the shared ones.
pub const KEYS: [&str; 6] = [
    "path",
    "params",
    "records",
    "pagination",
    "cursor_param",
    "nested",
];

/// A REST table (a resource of the API) and how to read it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestTable {
    /// The resource's path, relative to the connection's `base_url` (`/invoices`,
    /// `v2/customers`). Required.
    #[serde(default)]
    pub path: Option<String>,
    /// Query parameters sent with the first request (and kept on the next pages of offset,
    /// page and cursor pagination).
    #[serde(default, deserialize_with = "crate::rest::connection::scalar_map")]
    pub params: BTreeMap<String, String>,
    /// Where the records array is in each response: `$` (default: the response is the
    /// array), `$.data.items`, `data.items`.
    #[serde(default)]
    pub records: Option<String>,
    /// How pages are requested: `{type: offset | page | cursor | next_url | link_header |
    /// none}` with its options. Default `none` (one request).
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// Incremental only: the query parameter that receives the watermark (minus `lookback`)
    /// so the API returns only records at or after it, e.g. `updated_since` or json-server's
    /// `updated_at_gte`. Without it every record is requested and the older ones are dropped
    /// after reading.
    #[serde(default)]
    pub cursor_param: Option<String>,
    /// `structs` (default: objects become struct columns, arrays list columns) or `json`
    /// (top-level objects and arrays become text columns holding their JSON).
    #[serde(default)]
    pub nested: Option<NestedMode>,
}

impl RestTable {
    /// The REST keys of `table`.
    pub fn of(table: &TableConfig) -> Result<RestTable, SourceError> {
        crate::registry::table_options(table)
    }

    /// Problems of a REST table, as (key under the table entry, message).
    pub fn problems(t: &TableConfig) -> Vec<(String, String)> {
        let r = match t.options_as::<RestTable>() {
            Ok(r) => r,
            Err(problem) => return vec![problem],
        };
        let mut out = Vec::new();
        match &r.path {
            None => out.push((
                "name".into(),
                "tables of a rest connection need `path`: the resource's path relative to the connection's base_url (e.g. `/invoices`)".into(),
            )),
            Some(p) if p.contains('?') => out.push((
                "path".into(),
                "put query parameters in `params`, not in `path`".into(),
            )),
            Some(_) => {}
        }
        if t.query.is_some() {
            out.push((
                "query".into(),
                "`query` is for database connections; rest tables use `path` and `params`".into(),
            ));
        }
        if let Some(records) = &r.records
            && let Err(e) = tributary_core::jsonpath::JsonPath::parse(records)
        {
            out.push(("records".into(), e));
        }
        if let Some(p) = &r.pagination {
            for (key, message) in p.problems() {
                out.push((format!("pagination.{key}"), message));
            }
        }
        if r.cursor_param.is_some() && t.mode != LoadMode::Incremental {
            out.push((
                "cursor_param".into(),
                "`cursor_param` only applies to `mode: incremental`".into(),
            ));
        }
        if let (Some(cp), Some(Pagination::Cursor { cursor_param, .. })) =
            (&r.cursor_param, &r.pagination)
            && cp == cursor_param
        {
            out.push((
                "cursor_param".into(),
                format!(
                    "`{cp}` is also the pagination's cursor_param; use two different parameters"
                ),
            ));
        }
        out
    }
}
