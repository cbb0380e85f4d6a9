//! Schema changes: what differs between a table's schema and an incoming one, and whether the
//! `on_schema_change` policy accepts it.
//!
//! ```
//! use deltalake::arrow::datatypes::{DataType, Field, Schema};
//! use tributary_lake::schema::{diff_schemas, SchemaChangePolicy};
//!
//! let table = Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("legacy_code", DataType::Utf8, true),
//! ]);
//! let source = Schema::new(vec![
//!     Field::new("id", DataType::Int64, false),
//!     Field::new("discount", DataType::Decimal128(10, 2), true),
//! ]);
//! let diff = diff_schemas(&table, &source);
//! assert_eq!(diff.refused(SchemaChangePolicy::Evolve).len(), 1); // the removed column
//! assert!(diff.check("silver.orders", SchemaChangePolicy::Allow, "models/silver/orders.sql").is_ok());
//! let err = diff
//!     .check("silver.orders", SchemaChangePolicy::Evolve, "models/silver/orders.sql")
//!     .unwrap_err()
//!     .to_string();
//! assert!(err.contains("- legacy_code"), "{err}");
//! ```

use std::fmt;

use deltalake::arrow::datatypes::{DataType, Schema, TimeUnit};

use crate::LakeError;

pub use tributary_core::config::SchemaChangePolicy;

/// How one column changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The column is new.
    Added,
    /// The column is gone from the incoming schema.
    Removed,
    /// The new type holds every value of the old one.
    Widened,
    /// The new type does not hold every value of the old one (narrowing), or the types are
    /// unrelated (incompatible); [`ColumnChange::label`] says which.
    Narrowed,
}

/// One column that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnChange {
    /// The column name.
    pub column: String,
    /// Its type in the table (`None`: added).
    pub old: Option<DataType>,
    /// Its type in the incoming schema (`None`: removed).
    pub new: Option<DataType>,
    /// What changed.
    pub kind: ChangeKind,
}

impl ColumnChange {
    /// `added`, `removed`, `widening`, `narrowing` or `incompatible`.
    pub fn label(&self) -> &'static str {
        match (self.kind, &self.old, &self.new) {
            (ChangeKind::Added, _, _) => "added",
            (ChangeKind::Removed, _, _) => "removed",
            (ChangeKind::Widened, _, _) => "widening",
            (ChangeKind::Narrowed, Some(old), Some(new))
                if is_widening(new, old) || (is_numeric(old) && is_numeric(new)) =>
            {
                "narrowing"
            }
            (ChangeKind::Narrowed, _, _) => "incompatible",
        }
    }
}

impl fmt::Display for ColumnChange {
    /// One line without padding: `+ discount decimal(10,2)`, `~ quantity bigint -> int (narrowing)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old = self.old.as_ref().map(type_name).unwrap_or_default();
        let new = self.new.as_ref().map(type_name).unwrap_or_default();
        match self.kind {
            ChangeKind::Added => write!(f, "+ {} {new}", self.column),
            ChangeKind::Removed => write!(f, "- {} {old}", self.column),
            ChangeKind::Widened | ChangeKind::Narrowed => {
                write!(f, "~ {} {old} -> {new} ({})", self.column, self.label())
            }
        }
    }
}

/// The differences between a table's schema and an incoming one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Changed and removed columns in the table's column order, then added columns in the
    /// incoming order.
    pub changes: Vec<ColumnChange>,
}

/// Compare a table's schema (`current`) with an `incoming` one, by column name.
///
/// Nullability, column order and cosmetic type differences (names of list item fields,
/// spellings of the same time zone) are ignored.
pub fn diff_schemas(current: &Schema, incoming: &Schema) -> SchemaDiff {
    let mut changes = Vec::new();
    for f in current.fields() {
        match incoming.field_with_name(f.name()) {
            Ok(n) => {
                let (old, new) = (f.data_type(), n.data_type());
                if same_type(old, new) {
                    continue;
                }
                changes.push(ColumnChange {
                    column: f.name().clone(),
                    old: Some(old.clone()),
                    new: Some(new.clone()),
                    kind: if is_widening(old, new) {
                        ChangeKind::Widened
                    } else {
                        ChangeKind::Narrowed
                    },
                });
            }
            Err(_) => changes.push(ColumnChange {
                column: f.name().clone(),
                old: Some(f.data_type().clone()),
                new: None,
                kind: ChangeKind::Removed,
            }),
        }
    }
    for f in incoming.fields() {
        if current.field_with_name(f.name()).is_err() {
            changes.push(ColumnChange {
                column: f.name().clone(),
                old: None,
                new: Some(f.data_type().clone()),
                kind: ChangeKind::Added,
            });
        }
    }
    SchemaDiff { changes }
}

impl SchemaDiff {
    /// No column differs.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Which changes the policy refuses (empty = allowed).
    pub fn refused(&self, policy: SchemaChangePolicy) -> Vec<&ColumnChange> {
        self.changes
            .iter()
            .filter(|c| match policy {
                SchemaChangePolicy::Allow => false,
                SchemaChangePolicy::Fail => true,
                SchemaChangePolicy::Evolve => {
                    matches!(c.kind, ChangeKind::Removed | ChangeKind::Narrowed)
                }
            })
            .collect()
    }

    /// A readable, aligned diff, one line per change:
    ///
    /// ```text
    ///   ~ quantity     bigint -> int  (narrowing)
    ///   - legacy_code  text      (removed)
    ///   + discount     (new)     decimal(10,2)
    /// ```
    pub fn render(&self) -> String {
        self.render_marking(&[])
    }

    /// [`render`](Self::render), with `  <- refused` after the lines of `refused` changes.
    fn render_marking(&self, refused: &[&ColumnChange]) -> String {
        let name_width = self
            .changes
            .iter()
            .map(|c| c.column.chars().count())
            .max()
            .unwrap_or(0);
        let olds: Vec<String> = self
            .changes
            .iter()
            .map(|c| match &c.old {
                Some(t) => type_name(t),
                None => "(new)".to_string(),
            })
            .collect();
        let old_width = olds.iter().map(|o| o.chars().count()).max().unwrap_or(0);
        let mut lines = Vec::with_capacity(self.changes.len());
        for (c, old) in self.changes.iter().zip(&olds) {
            let (sign, arrow, rest) = match c.kind {
                ChangeKind::Added => ("+", "  ", c.new.as_ref().map(type_name).unwrap_or_default()),
                ChangeKind::Removed => ("-", "  ", "(removed)".to_string()),
                ChangeKind::Widened | ChangeKind::Narrowed => (
                    "~",
                    "->",
                    format!(
                        "{}  ({})",
                        c.new.as_ref().map(type_name).unwrap_or_default(),
                        c.label()
                    ),
                ),
            };
            let mark = if refused.iter().any(|r| std::ptr::eq(*r, c)) {
                "  <- refused"
            } else {
                ""
            };
            lines.push(format!(
                "  {sign} {name:<name_width$}  {old:<old_width$} {arrow} {rest}{mark}",
                name = c.column,
            ));
        }
        lines.join("\n")
    }

    /// One line for logs: `+ discount decimal(10,2); ~ quantity bigint -> int (narrowing)`.
    pub fn summary(&self) -> String {
        self.changes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `Err(LakeError::SchemaChange)` when `policy` refuses a change. The error lists the whole
    /// diff (marking the refused lines when only some are) and says how to proceed: set
    /// `on_schema_change: allow` in `config_hint` (where the table is configured, e.g.
    /// `ingest/erp.yaml (table orders)`), or rebuild the table with `--full-refresh`.
    pub fn check(
        &self,
        table: &str,
        policy: SchemaChangePolicy,
        config_hint: &str,
    ) -> Result<(), LakeError> {
        let refused = self.refused(policy);
        if refused.is_empty() {
            return Ok(());
        }
        let marked: &[&ColumnChange] = if refused.len() < self.changes.len() {
            &refused
        } else {
            &[]
        };
        let rule = match policy {
            SchemaChangePolicy::Fail => "on_schema_change: fail refuses any schema change",
            _ => {
                "on_schema_change: evolve (the default) adds new columns and accepts widening \
                 type changes, but refuses removed columns and narrowing or incompatible type \
                 changes"
            }
        };
        Err(LakeError::SchemaChange {
            table: table.to_string(),
            diff: self.render_marking(marked),
            hint: format!(
                "{rule}. To accept the change, set `on_schema_change: allow` in {config_hint}; \
                 or run `tributary run --full-refresh --select {table}` to rebuild the table \
                 with the new schema."
            ),
        })
    }
}

/// Types equal, ignoring nullability, the names of list item fields and the spelling of time
/// zones (every zone denotes the same instants).
pub(crate) fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| p.name() == q.name() && same_type(p.data_type(), q.data_type()))
        }
        (DataType::Timestamp(u1, t1), DataType::Timestamp(u2, t2)) => {
            u1 == u2 && t1.is_some() == t2.is_some()
        }
        _ => a == b,
    }
}

/// Bits and signedness of an integer type.
fn int_info(t: &DataType) -> Option<(u32, bool)> {
    use DataType::*;
    Some(match t {
        Int8 => (8, true),
        Int16 => (16, true),
        Int32 => (32, true),
        Int64 => (64, true),
        UInt8 => (8, false),
        UInt16 => (16, false),
        UInt32 => (32, false),
        UInt64 => (64, false),
        _ => return None,
    })
}

/// Decimal digits needed for every value of an integer type.
fn int_digits(bits: u32, signed: bool) -> i16 {
    match (bits, signed) {
        (8, _) => 3,
        (16, _) => 5,
        (32, _) => 10,
        (64, true) => 19,
        _ => 20,
    }
}

fn decimal_info(t: &DataType) -> Option<(i16, i16)> {
    match t {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => Some((i16::from(*p), i16::from(*s))),
        _ => None,
    }
}

/// Integers, floats and decimals.
pub(crate) fn is_numeric(t: &DataType) -> bool {
    int_info(t).is_some()
        || decimal_info(t).is_some()
        || matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

/// Whether every value of `old` is a value of `new`.
pub fn is_widening(old: &DataType, new: &DataType) -> bool {
    use DataType::*;
    if same_type(old, new) {
        return true;
    }
    if let (Some((ob, os)), Some((nb, ns))) = (int_info(old), int_info(new)) {
        return match (os, ns) {
            (true, true) | (false, false) => nb >= ob,
            (false, true) => nb > ob,
            (true, false) => false,
        };
    }
    if let (Some((bits, signed)), Some((p, s))) = (int_info(old), decimal_info(new)) {
        return p - s >= int_digits(bits, signed);
    }
    if let (Some((p, s)), Some((p2, s2))) = (decimal_info(old), decimal_info(new)) {
        // The precision, not the storage width, bounds the values.
        return s2 >= s && p2 - s2 >= p - s;
    }
    match (old, new) {
        (Float16, Float32 | Float64) | (Float32, Float64) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        (Int8 | Int16 | UInt8 | UInt16, Float32) => true,
        (Utf8, LargeUtf8 | Utf8View) | (Utf8View, LargeUtf8) => true,
        (Binary, LargeBinary | BinaryView) | (BinaryView, LargeBinary) => true,
        (Date32, Date64 | Timestamp(_, None)) => true,
        (List(a), List(b) | LargeList(b)) | (LargeList(a), LargeList(b)) => {
            is_widening(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| x.name() == y.name() && is_widening(x.data_type(), y.data_type()))
        }
        _ => false,
    }
}

/// A SQL-ish name for a type: `bigint`, `decimal(10,2)`, `timestamp(us, UTC)`, `array<text>`.
pub fn type_name(t: &DataType) -> String {
    use DataType::*;
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    match t {
        Null => "null".into(),
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 => "smallint".into(),
        Int32 => "int".into(),
        Int64 => "bigint".into(),
        UInt8 => "tinyint unsigned".into(),
        UInt16 => "smallint unsigned".into(),
        UInt32 => "int unsigned".into(),
        UInt64 => "bigint unsigned".into(),
        Float16 => "half".into(),
        Float32 => "float".into(),
        Float64 => "double".into(),
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) => format!("decimal({p},{s})"),
        Decimal256(p, s) => format!("decimal256({p},{s})"),
        Utf8 => "text".into(),
        LargeUtf8 => "large text".into(),
        Utf8View => "text view".into(),
        Binary => "binary".into(),
        LargeBinary => "large binary".into(),
        BinaryView => "binary view".into(),
        FixedSizeBinary(n) => format!("binary({n})"),
        Date32 => "date".into(),
        Date64 => "date64".into(),
        Time32(u) | Time64(u) => format!("time({})", unit(u)),
        Timestamp(u, None) => format!("timestamp({})", unit(u)),
        Timestamp(u, Some(tz)) => format!("timestamp({}, {tz})", unit(u)),
        Duration(u) => format!("interval({})", unit(u)),
        List(f) => format!("array<{}>", type_name(f.data_type())),
        LargeList(f) => format!("large array<{}>", type_name(f.data_type())),
        FixedSizeList(f, n) => format!("array<{}>[{n}]", type_name(f.data_type())),
        Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                type_name(kv[0].data_type()),
                type_name(kv[1].data_type())
            ),
            other => format!("map<{}>", type_name(other)),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::Field;
    use std::sync::Arc;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    fn kinds(d: &SchemaDiff) -> Vec<(&str, ChangeKind)> {
        d.changes
            .iter()
            .map(|c| (c.column.as_str(), c.kind))
            .collect()
    }

    #[test]
    fn diff_lists_table_columns_in_order_then_added() {
        let current = schema(&[
            ("id", DataType::Int64),
            ("quantity", DataType::Int64),
            ("legacy_code", DataType::Utf8),
            ("price", DataType::Decimal128(10, 2)),
        ]);
        let incoming = schema(&[
            ("zeta", DataType::Boolean),
            ("price", DataType::Decimal128(12, 2)),
            ("quantity", DataType::Int32),
            ("id", DataType::Int64),
            ("discount", DataType::Decimal128(10, 2)),
        ]);
        let d = diff_schemas(&current, &incoming);
        assert_eq!(
            kinds(&d),
            vec![
                ("quantity", ChangeKind::Narrowed),
                ("legacy_code", ChangeKind::Removed),
                ("price", ChangeKind::Widened),
                ("zeta", ChangeKind::Added),
                ("discount", ChangeKind::Added),
            ]
        );
        assert_eq!(d.changes[0].old, Some(DataType::Int64));
        assert_eq!(d.changes[0].new, Some(DataType::Int32));
        assert_eq!(d.changes[1].new, None);
        assert_eq!(d.changes[3].old, None);
        assert!(diff_schemas(&current, &current).is_empty());
    }

    #[test]
    fn cosmetic_differences_and_nullability_are_ignored() {
        let current = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                true,
            ),
        ]);
        let incoming = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))),
                true,
            ),
        ]);
        assert!(diff_schemas(&current, &incoming).is_empty());
        // A zone on a naive timestamp is a real change.
        let naive = schema(&[
            ("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
            (
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            ),
        ]);
        let d = diff_schemas(&naive, &incoming);
        assert_eq!(kinds(&d), vec![("ts", ChangeKind::Narrowed)]);
        assert_eq!(d.changes[0].label(), "incompatible");
    }

    #[test]
    fn widening_rules() {
        use DataType::*;
        let wide = [
            (Int8, Int16),
            (Int16, Int32),
            (Int32, Int64),
            (Int8, Int64),
            (UInt16, Int32),
            (UInt32, UInt64),
            (Float32, Float64),
            (Int32, Float64),
            (Int16, Float32),
            (Int32, Decimal128(10, 0)),
            (Int64, Decimal128(21, 2)),
            (Decimal128(10, 2), Decimal128(12, 2)),
            (Decimal128(10, 2), Decimal128(11, 3)),
            (Decimal128(38, 2), Decimal256(40, 2)),
            (Decimal256(10, 2), Decimal128(12, 2)),
            (Utf8, LargeUtf8),
            (Binary, LargeBinary),
            (Date32, Timestamp(TimeUnit::Microsecond, None)),
        ];
        for (old, new) in wide {
            assert!(is_widening(&old, &new), "{old} -> {new} widens");
        }
        let narrow = [
            (Int64, Int32),
            (Int64, Float64),
            (Int32, Float32),
            (Int32, UInt64),
            (UInt32, Int32),
            (Float64, Float32),
            (Float64, Int64),
            (Int32, Decimal128(9, 0)),
            (Decimal128(12, 2), Decimal128(10, 2)),
            (Decimal128(10, 2), Decimal128(10, 3)),
            (Decimal128(10, 2), Decimal128(12, 1)),
            (Utf8, Int64),
            (LargeUtf8, Utf8),
            (Timestamp(TimeUnit::Microsecond, None), Date32),
            (
                Timestamp(TimeUnit::Microsecond, None),
                Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ),
        ];
        for (old, new) in narrow {
            assert!(!is_widening(&old, &new), "{old} -> {new} does not widen");
        }
    }

    #[test]
    fn labels_tell_narrowing_from_incompatible() {
        let current = schema(&[
            ("a", DataType::Int64),
            ("b", DataType::Float64),
            ("c", DataType::Decimal128(12, 2)),
            ("d", DataType::Int32),
        ]);
        let incoming = schema(&[
            ("a", DataType::Int32),
            ("b", DataType::Int64),
            ("c", DataType::Utf8),
            ("d", DataType::Int64),
        ]);
        let labels: Vec<&str> = diff_schemas(&current, &incoming)
            .changes
            .iter()
            .map(|c| c.label())
            .collect();
        assert_eq!(
            labels,
            vec!["narrowing", "narrowing", "incompatible", "widening"]
        );
    }

    #[test]
    fn refused_by_policy() {
        let current = schema(&[
            ("id", DataType::Int32),
            ("q", DataType::Int64),
            ("old", DataType::Utf8),
        ]);
        let incoming = schema(&[
            ("id", DataType::Int64),
            ("q", DataType::Int32),
            ("new", DataType::Utf8),
        ]);
        let d = diff_schemas(&current, &incoming);
        let names = |v: Vec<&ColumnChange>| v.iter().map(|c| c.column.clone()).collect::<Vec<_>>();
        assert!(d.refused(SchemaChangePolicy::Allow).is_empty());
        assert_eq!(
            names(d.refused(SchemaChangePolicy::Evolve)),
            vec!["q", "old"]
        );
        assert_eq!(
            names(d.refused(SchemaChangePolicy::Fail)),
            vec!["id", "q", "old", "new"]
        );
        // Only additions and widening: evolve accepts, fail refuses.
        let grown = schema(&[
            ("id", DataType::Int64),
            ("q", DataType::Int64),
            ("old", DataType::Utf8),
            ("new", DataType::Utf8),
        ]);
        let d = diff_schemas(&current, &grown);
        assert!(d.refused(SchemaChangePolicy::Evolve).is_empty());
        assert_eq!(d.refused(SchemaChangePolicy::Fail).len(), 2);
    }

    #[test]
    fn render_is_aligned() {
        let current = schema(&[
            ("quantity", DataType::Int64),
            ("legacy_code", DataType::Utf8),
            ("price", DataType::Decimal128(10, 2)),
        ]);
        let incoming = schema(&[
            ("quantity", DataType::Int32),
            ("price", DataType::Decimal128(12, 2)),
            ("discount", DataType::Decimal128(10, 2)),
        ]);
        let d = diff_schemas(&current, &incoming);
        assert_eq!(
            d.render(),
            [
                "  ~ quantity     bigint        -> int  (narrowing)",
                "  - legacy_code  text             (removed)",
                "  ~ price        decimal(10,2) -> decimal(12,2)  (widening)",
                "  + discount     (new)            decimal(10,2)",
            ]
            .join("\n")
        );
        assert_eq!(
            d.summary(),
            "~ quantity bigint -> int (narrowing); - legacy_code text; ~ price decimal(10,2) -> decimal(12,2) (widening); + discount decimal(10,2)"
        );
        assert_eq!(SchemaDiff::default().render(), "");
    }

    #[test]
    fn check_error_lists_the_diff_and_how_to_proceed() {
        let current = schema(&[("id", DataType::Int64), ("legacy_code", DataType::Utf8)]);
        let incoming = schema(&[("id", DataType::Int64), ("discount", DataType::Float64)]);
        let d = diff_schemas(&current, &incoming);
        assert!(
            d.check("bronze.erp_orders", SchemaChangePolicy::Allow, "x")
                .is_ok()
        );
        let err = d
            .check(
                "bronze.erp_orders",
                SchemaChangePolicy::Evolve,
                "ingest/erp.yaml (table orders)",
            )
            .unwrap_err();
        let LakeError::SchemaChange { table, diff, hint } = &err else {
            panic!("expected SchemaChange, got {err}")
        };
        assert_eq!(table, "bronze.erp_orders");
        assert_eq!(
            diff,
            "  - legacy_code  text     (removed)  <- refused\n  + discount     (new)    double"
        );
        assert!(hint.contains("`on_schema_change: allow` in ingest/erp.yaml (table orders)"));
        assert!(hint.contains("tributary run --full-refresh --select bronze.erp_orders"));
        let msg = err.to_string();
        assert!(msg.starts_with("table bronze.erp_orders: "), "{msg}");
        assert!(
            msg.contains(diff.as_str()) && msg.contains(hint.as_str()),
            "{msg}"
        );
        // `fail` refuses the addition too; with every line refused, none is marked.
        let LakeError::SchemaChange { diff, hint, .. } = d
            .check("bronze.erp_orders", SchemaChangePolicy::Fail, "here")
            .unwrap_err()
        else {
            panic!("expected SchemaChange")
        };
        assert!(!diff.contains("refused"), "{diff}");
        assert!(
            hint.starts_with("on_schema_change: fail refuses any schema change"),
            "{hint}"
        );
    }

    #[test]
    fn type_names_are_sql_like() {
        use DataType::*;
        assert_eq!(type_name(&Int64), "bigint");
        assert_eq!(type_name(&Int32), "int");
        assert_eq!(type_name(&Decimal128(10, 2)), "decimal(10,2)");
        assert_eq!(
            type_name(&Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
            "timestamp(us, UTC)"
        );
        assert_eq!(
            type_name(&List(Arc::new(Field::new("item", Utf8, true)))),
            "array<text>"
        );
    }
}
