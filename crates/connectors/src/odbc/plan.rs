//! From ODBC result-set metadata (plus the catalog's type names, for tables) to Arrow types:
//! which type each column gets, how it is fetched, and whether the server renders it as text.

use arrow_odbc::odbc_api::DataType as OdbcType;
use arrow_odbc::odbc_api::sys::SqlDataType;
use tributary_core::SourceError;
use tributary_core::arrow::datatypes::{DataType, TimeUnit};

/// The SQL dialect of the database behind the driver, from its DBMS name
/// (`SQLGetInfo(SQL_DBMS_NAME)`): what the session is set up with and how values are rendered
/// as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `PostgreSQL`.
    Postgres,
    /// `MySQL`, `MariaDB`.
    MySql,
    /// `Microsoft SQL Server`.
    SqlServer,
    /// `Oracle`.
    Oracle,
    /// Anything else: no session setup, the driver's own text conversions.
    Other,
}

impl Dialect {
    /// The dialect of a DBMS name.
    pub(crate) fn of(dbms_name: &str) -> Dialect {
        let n = dbms_name.to_ascii_lowercase();
        if n.contains("postgres") {
            Dialect::Postgres
        } else if n.contains("mysql") || n.contains("mariadb") {
            Dialect::MySql
        } else if n.contains("sql server") {
            Dialect::SqlServer
        } else if n.contains("oracle") {
            Dialect::Oracle
        } else {
            Dialect::Other
        }
    }

    /// Statements run once per session, before anything is read (autocommit still on): UTC as
    /// the session time zone (so instants come back in UTC), ISO date rendering, and for
    /// MySQL a long write timeout (the server waits while the lake writes).
    pub(crate) fn session_setup(self) -> &'static [&'static str] {
        match self {
            Dialect::Postgres => &[
                "SET TimeZone = 'UTC'",
                "SET DateStyle = 'ISO, YMD'",
                "SET IntervalStyle = 'postgres'",
                "SET extra_float_digits = 3",
            ],
            Dialect::MySql => &[
                "SET time_zone = '+00:00'",
                "SET SESSION net_write_timeout = 3600",
            ],
            Dialect::Oracle => &[
                "ALTER SESSION SET TIME_ZONE = 'UTC'",
                "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY-MM-DD HH24:MI:SS'",
                "ALTER SESSION SET NLS_TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF9'",
                "ALTER SESSION SET NLS_TIMESTAMP_TZ_FORMAT = 'YYYY-MM-DD HH24:MI:SS.FF9 TZH:TZM'",
                "ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,'",
            ],
            Dialect::SqlServer | Dialect::Other => &[],
        }
    }

    /// The statement that makes the read one consistent, read-only snapshot, run as the first
    /// statement of a manual-commit transaction; `None`: read in autocommit mode.
    pub(crate) fn snapshot_statement(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            Dialect::MySql => Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
            Dialect::Oracle => Some("SET TRANSACTION READ ONLY"),
            Dialect::SqlServer | Dialect::Other => None,
        }
    }

    /// A query returning the server's version, for `validate --connections`.
    pub(crate) fn version_query(self) -> Option<&'static str> {
        match self {
            Dialect::Postgres => Some("SELECT version()"),
            Dialect::MySql => Some("SELECT VERSION()"),
            Dialect::SqlServer => Some("SELECT @@VERSION"),
            Dialect::Oracle => Some("SELECT banner FROM v$version WHERE ROWNUM = 1"),
            Dialect::Other => None,
        }
    }

    /// Whether [`Dialect::render_text`] renders on the server.
    pub(crate) fn renders_text(self) -> bool {
        matches!(self, Dialect::Postgres | Dialect::MySql)
    }

    /// The SQL expression that renders column `quoted` (described by `col`) as text on the
    /// server, where the dialect has a faithful one; `None`: the driver converts the value to
    /// text itself.
    ///
    /// PostgreSQL and MySQL render server-side because their drivers' own conversions lose
    /// information: psqlODBC turns `infinity` dates into `0000-00-00` and BC dates into AD
    /// ones, MariaDB's driver declares `DATETIME(6)` too short for its fraction, and both
    /// declare buffers too short for some decimals (`-0.99999` in a `DECIMAL(5,5)`).
    pub(crate) fn render_text(self, quoted: &str, col: &SourceColumn) -> Option<String> {
        match self {
            // (keep in step with `renders_text`)
            Dialect::Postgres => Some(format!("CAST({quoted} AS text)")),
            Dialect::MySql => Some(if col.type_name.as_deref().is_some_and(is_mysql_geometry) {
                format!("ST_AsText({quoted})")
            } else if matches!(
                col.odbc_type,
                OdbcType::Numeric { .. }
                    | OdbcType::Decimal { .. }
                    | OdbcType::Date
                    | OdbcType::Time { .. }
                    | OdbcType::Timestamp { .. }
            ) {
                // `CAST(… AS CHAR)` of these is declared by the digits alone, without room
                // for the sign and point; 80 characters hold any of them.
                format!("CAST({quoted} AS CHAR(80))")
            } else {
                format!("CAST({quoted} AS CHAR)")
            }),
            Dialect::SqlServer | Dialect::Oracle | Dialect::Other => None,
        }
    }
}

fn is_mysql_geometry(type_name: &str) -> bool {
    matches!(
        type_name.to_ascii_lowercase().as_str(),
        "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

/// How one column is fetched and converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// BIT → Boolean.
    Bool,
    /// TINYINT → Int8.
    Int8,
    /// SMALLINT, TINYINT UNSIGNED → Int16.
    Int16,
    /// INTEGER, SMALLINT UNSIGNED → Int32.
    Int32,
    /// BIGINT, INTEGER UNSIGNED → Int64.
    Int64,
    /// BIGINT UNSIGNED: text → Decimal128(20,0).
    UInt64,
    /// REAL → Float32.
    Float32,
    /// FLOAT, DOUBLE → Float64.
    Float64,
    /// DECIMAL/NUMERIC(p,s): text → Decimal128(p,s), exactly.
    Decimal(u8, i8),
    /// DATE: text → Date32.
    Date,
    /// TIMESTAMP: text → Timestamp(µs), with `"UTC"` when the column holds instants.
    Timestamp {
        /// The column holds instants (`timestamptz`, MySQL `TIMESTAMP`, `datetimeoffset`).
        utc: bool,
    },
    /// TIME (and PostgreSQL `timetz`): text normalized to `[-]HH:MM:SS[.ffffff][zone]`.
    Time,
    /// Character data → Utf8, as the driver delivers it.
    Text,
    /// GUID → Utf8, lowercase.
    Uuid,
    /// Binary data → Binary.
    Binary,
}

impl Kind {
    /// The Arrow type of the loaded column.
    pub(crate) fn data_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int8 => DataType::Int8,
            Kind::Int16 => DataType::Int16,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt64 => DataType::Decimal128(20, 0),
            Kind::Float32 => DataType::Float32,
            Kind::Float64 => DataType::Float64,
            Kind::Decimal(p, s) => DataType::Decimal128(p, s),
            Kind::Date => DataType::Date32,
            Kind::Timestamp { utc } => {
                DataType::Timestamp(TimeUnit::Microsecond, utc.then(|| "UTC".into()))
            }
            Kind::Time | Kind::Text | Kind::Uuid => DataType::Utf8,
            Kind::Binary => DataType::Binary,
        }
    }

    /// The Arrow type `arrow-odbc` fetches the column as: the loaded type for integers, floats
    /// and binary data; a small integer for booleans (MariaDB's driver leaves `SQL_C_BIT`
    /// column buffers unset); text for everything converted here.
    pub(crate) fn fetch_type(self) -> DataType {
        match self {
            Kind::Bool => DataType::Int8,
            Kind::Int8
            | Kind::Int16
            | Kind::Int32
            | Kind::Int64
            | Kind::Float32
            | Kind::Float64
            | Kind::Binary => self.data_type(),
            _ => DataType::Utf8,
        }
    }

    /// Whether the value is parsed from text, so the server should render it (where the
    /// dialect can).
    pub(crate) fn parsed_from_text(self) -> bool {
        matches!(
            self,
            Kind::Decimal(..) | Kind::Date | Kind::Timestamp { .. } | Kind::Time
        )
    }
}

/// One column of the result as the driver describes it.
#[derive(Debug, Clone)]
pub(crate) struct SourceColumn {
    /// Column name as the driver reports it.
    pub(crate) name: String,
    /// The ODBC SQL type.
    pub(crate) odbc_type: OdbcType,
    /// `SQL_DESC_UNSIGNED` (true for non-numeric types too).
    pub(crate) unsigned: bool,
    /// The data source's own type name from the catalog (`timestamptz`, `YEAR`), for tables.
    pub(crate) type_name: Option<String>,
}

/// How one column is read.
#[derive(Debug, Clone)]
pub(crate) struct ColumnPlan {
    /// Column name.
    pub(crate) name: String,
    /// The source type, for messages: the catalog's name if known, else the ODBC type.
    pub(crate) source_type: String,
    /// The conversion.
    pub(crate) kind: Kind,
    /// The server renders the column as text (a `cast:` or a kind parsed from text).
    pub(crate) rendered: bool,
}

/// SQL Server's `datetimeoffset` (`SQL_SS_TIMESTAMPOFFSET`).
const SS_TIMESTAMPOFFSET: i16 = -155;
/// SQL Server's `time` (`SQL_SS_TIME2`).
const SS_TIME2: i16 = -154;
/// SQL Server's `xml` (`SQL_SS_XML`).
const SS_XML: i16 = -152;
/// `SQL_GUID`.
const SQL_GUID: i16 = -11;

/// The ODBC type as SQL writes it, for messages: `NUMERIC(28,6)`, `VARCHAR(255)`,
/// `INTEGER UNSIGNED`.
pub(crate) fn odbc_type_name(t: &OdbcType, unsigned: bool) -> String {
    let len = |l: &Option<std::num::NonZeroUsize>| l.map(|n| format!("({n})")).unwrap_or_default();
    let u = if unsigned { " UNSIGNED" } else { "" };
    match t {
        OdbcType::Unknown => "unknown ODBC type".into(),
        OdbcType::Char { length } => format!("CHAR{}", len(length)),
        OdbcType::WChar { length } => format!("WCHAR{}", len(length)),
        OdbcType::Varchar { length } => format!("VARCHAR{}", len(length)),
        OdbcType::WVarchar { length } => format!("WVARCHAR{}", len(length)),
        OdbcType::LongVarchar { length } => format!("LONGVARCHAR{}", len(length)),
        OdbcType::WLongVarchar { length } => format!("WLONGVARCHAR{}", len(length)),
        OdbcType::Numeric { precision, scale } => format!("NUMERIC({precision},{scale})"),
        OdbcType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
        OdbcType::Integer => format!("INTEGER{u}"),
        OdbcType::SmallInt => format!("SMALLINT{u}"),
        OdbcType::TinyInt => format!("TINYINT{u}"),
        OdbcType::BigInt => format!("BIGINT{u}"),
        OdbcType::Float { precision } => format!("FLOAT({precision})"),
        OdbcType::Real => "REAL".into(),
        OdbcType::Double => "DOUBLE".into(),
        OdbcType::Date => "DATE".into(),
        OdbcType::Time { precision } => format!("TIME({precision})"),
        OdbcType::Timestamp { precision } => format!("TIMESTAMP({precision})"),
        OdbcType::Bit => "BIT".into(),
        OdbcType::Binary { length } => format!("BINARY{}", len(length)),
        OdbcType::Varbinary { length } => format!("VARBINARY{}", len(length)),
        OdbcType::LongVarbinary { length } => format!("LONGVARBINARY{}", len(length)),
        OdbcType::Other { data_type, .. } => match data_type.0 {
            SS_TIMESTAMPOFFSET => "datetimeoffset".into(),
            SS_TIME2 => "time".into(),
            SS_XML => "xml".into(),
            SQL_GUID => "GUID".into(),
            101..=113 => format!("INTERVAL (ODBC SQL type {})", data_type.0),
            code => format!("ODBC SQL type {code}"),
        },
    }
}

/// Whether the catalog's type name says the column holds instants rather than wall-clock
/// times.
fn holds_instants(dialect: Dialect, type_name: &str) -> bool {
    let t = type_name.to_ascii_lowercase();
    t == "timestamptz"
        || t == "datetimeoffset"
        || t.contains("with time zone")
        || t.contains("with local time zone")
        || (dialect == Dialect::MySql && t == "timestamp")
}

/// Decide how a column is read. `cast_to_text`: the table's `cast:` names it.
pub(crate) fn plan_column(
    dialect: Dialect,
    table: &str,
    col: &SourceColumn,
    cast_to_text: bool,
) -> Result<ColumnPlan, SourceError> {
    let source_type = col
        .type_name
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| {
            odbc_type_name(&col.odbc_type, col.unsigned && is_integer(&col.odbc_type))
        });
    let unsupported = |reason: String| SourceError::UnsupportedType {
        table: table.to_string(),
        column: col.name.clone(),
        source_type: source_type.clone(),
        reason,
    };
    let plan = |kind: Kind, rendered: bool| ColumnPlan {
        name: col.name.clone(),
        source_type: source_type.clone(),
        kind,
        rendered,
    };
    if cast_to_text {
        return Ok(plan(Kind::Text, dialect.renders_text()));
    }
    let type_name = col.type_name.as_deref().map(str::to_ascii_lowercase);
    let type_name = type_name.as_deref();
    // What the catalog knows better than the result-set metadata.
    match (dialect, type_name) {
        (Dialect::Postgres, Some("money")) => {
            return Err(unsupported(
                "the PostgreSQL ODBC driver delivers money as a floating-point number, which \
                 is not exact"
                    .into(),
            ));
        }
        (Dialect::Postgres, Some("bool" | "boolean")) => return Ok(plan(Kind::Bool, false)),
        (Dialect::Postgres, Some("timetz" | "time with time zone")) => {
            return Ok(plan(Kind::Time, false));
        }
        (Dialect::MySql, Some("year")) => return Ok(plan(Kind::Int16, false)),
        (Dialect::MySql, Some(t)) if is_mysql_geometry(t) => {
            return Err(unsupported(
                "spatial values have no lossless Delta Lake type".into(),
            ));
        }
        _ => {}
    }
    let unsigned = col.unsigned;
    let kind = match &col.odbc_type {
        OdbcType::Bit => Kind::Bool,
        OdbcType::TinyInt if unsigned => Kind::Int16,
        OdbcType::TinyInt => Kind::Int8,
        OdbcType::SmallInt if unsigned => Kind::Int32,
        OdbcType::SmallInt => Kind::Int16,
        OdbcType::Integer if unsigned => Kind::Int64,
        OdbcType::Integer => Kind::Int32,
        OdbcType::BigInt if unsigned => Kind::UInt64,
        OdbcType::BigInt => Kind::Int64,
        OdbcType::Real => Kind::Float32,
        // ODBC's FLOAT is double precision unless the driver says otherwise; Float64 holds
        // every Float32 exactly, so it is the lossless choice either way.
        OdbcType::Float { .. } | OdbcType::Double => Kind::Float64,
        OdbcType::Numeric { precision, scale } | OdbcType::Decimal { precision, scale } => {
            let (p, s) = (*precision, *scale);
            if p == 0 {
                return Err(unsupported(
                    "the driver reports no precision for this decimal".into(),
                ));
            }
            if p > 38 {
                return Err(unsupported(format!(
                    "precision {p} is more than Decimal128's 38 digits"
                )));
            }
            if s < 0 || s as usize > p {
                return Err(unsupported(format!(
                    "scale {s} is outside 0..={p}, which Delta Lake cannot store"
                )));
            }
            // 1 ≤ p ≤ 38 and 0 ≤ s ≤ p: both fit.
            Kind::Decimal(p as u8, s as i8)
        }
        OdbcType::Date => Kind::Date,
        OdbcType::Timestamp { .. } => Kind::Timestamp {
            utc: type_name.is_some_and(|t| holds_instants(dialect, t)),
        },
        OdbcType::Time { .. } => Kind::Time,
        OdbcType::Char { .. }
        | OdbcType::WChar { .. }
        | OdbcType::Varchar { .. }
        | OdbcType::WVarchar { .. }
        | OdbcType::LongVarchar { .. }
        | OdbcType::WLongVarchar { .. } => Kind::Text,
        OdbcType::Binary { .. } | OdbcType::Varbinary { .. } | OdbcType::LongVarbinary { .. } => {
            Kind::Binary
        }
        OdbcType::Other { data_type, .. } => match *data_type {
            SqlDataType(SS_TIMESTAMPOFFSET) => Kind::Timestamp { utc: true },
            SqlDataType(SS_TIME2) => Kind::Time,
            SqlDataType(SS_XML) => Kind::Text,
            SqlDataType(SQL_GUID) => Kind::Uuid,
            SqlDataType(101..=113) => {
                return Err(unsupported("intervals have no Delta Lake type".into()));
            }
            SqlDataType(code) => {
                return Err(unsupported(format!(
                    "ODBC SQL type {code} has no lossless Arrow/Delta mapping"
                )));
            }
        },
        OdbcType::Unknown => {
            return Err(unsupported(
                "the driver does not say what type this column has".into(),
            ));
        }
    };
    let rendered = kind.parsed_from_text() && dialect.renders_text();
    Ok(plan(kind, rendered))
}

fn is_integer(t: &OdbcType) -> bool {
    matches!(
        t,
        OdbcType::TinyInt | OdbcType::SmallInt | OdbcType::Integer | OdbcType::BigInt
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn column(odbc_type: OdbcType, unsigned: bool, type_name: Option<&str>) -> SourceColumn {
        SourceColumn {
            name: "c".into(),
            odbc_type,
            unsigned,
            type_name: type_name.map(str::to_string),
        }
    }

    fn kind(dialect: Dialect, col: SourceColumn) -> Result<Kind, String> {
        plan_column(dialect, "t", &col, false)
            .map(|p| p.kind)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn dialects_come_from_the_dbms_name() {
        assert_eq!(Dialect::of("PostgreSQL"), Dialect::Postgres);
        assert_eq!(Dialect::of("MariaDB"), Dialect::MySql);
        assert_eq!(Dialect::of("MySQL"), Dialect::MySql);
        assert_eq!(Dialect::of("Microsoft SQL Server"), Dialect::SqlServer);
        assert_eq!(Dialect::of("Oracle"), Dialect::Oracle);
        assert_eq!(Dialect::of("SQLite"), Dialect::Other);
    }

    #[test]
    fn unsigned_integers_widen() {
        let d = Dialect::Other;
        assert_eq!(
            kind(d, column(OdbcType::TinyInt, true, None)),
            Ok(Kind::Int16)
        );
        assert_eq!(
            kind(d, column(OdbcType::SmallInt, true, None)),
            Ok(Kind::Int32)
        );
        assert_eq!(
            kind(d, column(OdbcType::Integer, true, None)),
            Ok(Kind::Int64)
        );
        assert_eq!(
            kind(d, column(OdbcType::BigInt, true, None)),
            Ok(Kind::UInt64)
        );
        assert_eq!(
            kind(d, column(OdbcType::BigInt, false, None)),
            Ok(Kind::Int64)
        );
        assert_eq!(Kind::UInt64.data_type(), DataType::Decimal128(20, 0));
    }

    #[test]
    fn decimals_keep_precision_and_scale_or_are_refused() {
        let d = Dialect::Other;
        let dec = |precision, scale| column(OdbcType::Decimal { precision, scale }, false, None);
        assert_eq!(kind(d, dec(38, 10)), Ok(Kind::Decimal(38, 10)));
        assert_eq!(kind(d, dec(5, 5)), Ok(Kind::Decimal(5, 5)));
        let e = kind(d, dec(65, 2)).unwrap_err();
        assert!(
            e.contains("precision 65") && e.contains("cast: { c: text }"),
            "{e}"
        );
        assert!(kind(d, dec(10, 12)).unwrap_err().contains("scale 12"));
    }

    #[test]
    fn time_zones_come_from_the_catalog() {
        let ts = |name| column(OdbcType::Timestamp { precision: 6 }, true, name);
        let utc = Ok(Kind::Timestamp { utc: true });
        let wall = Ok(Kind::Timestamp { utc: false });
        assert_eq!(kind(Dialect::Postgres, ts(Some("timestamptz"))), utc);
        assert_eq!(kind(Dialect::Postgres, ts(Some("timestamp"))), wall);
        assert_eq!(kind(Dialect::Postgres, ts(None)), wall);
        assert_eq!(kind(Dialect::MySql, ts(Some("TIMESTAMP"))), utc);
        assert_eq!(kind(Dialect::MySql, ts(Some("DATETIME"))), wall);
        assert_eq!(
            kind(Dialect::Oracle, ts(Some("TIMESTAMP(6) WITH TIME ZONE"))),
            utc
        );
        let offset = OdbcType::Other {
            data_type: SqlDataType(SS_TIMESTAMPOFFSET),
            column_size: None,
            decimal_digits: 7,
        };
        assert_eq!(kind(Dialect::SqlServer, column(offset, true, None)), utc);
    }

    #[test]
    fn lossy_or_unknown_types_are_refused_unless_cast() {
        let money = column(OdbcType::Float { precision: 10 }, false, Some("money"));
        let e = kind(Dialect::Postgres, money.clone()).unwrap_err();
        assert!(e.contains("column c") && e.contains("money"), "{e}");
        let p = plan_column(Dialect::Postgres, "t", &money, true).unwrap();
        assert_eq!((p.kind, p.rendered), (Kind::Text, true));
        let variant = OdbcType::Other {
            data_type: SqlDataType(-150),
            column_size: None,
            decimal_digits: 0,
        };
        let e = kind(Dialect::SqlServer, column(variant, false, None)).unwrap_err();
        assert!(e.contains("ODBC SQL type -150"), "{e}");
        let p = plan_column(Dialect::SqlServer, "t", &column(variant, false, None), true).unwrap();
        assert_eq!((p.kind, p.rendered), (Kind::Text, false));
        let e = kind(
            Dialect::MySql,
            column(
                OdbcType::LongVarbinary { length: None },
                false,
                Some("GEOMETRY"),
            ),
        )
        .unwrap_err();
        assert!(e.contains("GEOMETRY"), "{e}");
    }

    #[test]
    fn text_parsed_kinds_are_rendered_where_the_dialect_can() {
        let date = column(OdbcType::Date, false, None);
        assert!(
            plan_column(Dialect::Postgres, "t", &date, false)
                .unwrap()
                .rendered
        );
        assert!(
            plan_column(Dialect::MySql, "t", &date, false)
                .unwrap()
                .rendered
        );
        assert!(
            !plan_column(Dialect::SqlServer, "t", &date, false)
                .unwrap()
                .rendered
        );
        let int = column(OdbcType::Integer, false, None);
        assert!(
            !plan_column(Dialect::Postgres, "t", &int, false)
                .unwrap()
                .rendered
        );
        let point = column(
            OdbcType::LongVarbinary { length: None },
            false,
            Some("POINT"),
        );
        assert_eq!(
            Dialect::MySql.render_text("`g`", &point).unwrap(),
            "ST_AsText(`g`)"
        );
        let dec = column(
            OdbcType::Decimal {
                precision: 5,
                scale: 5,
            },
            false,
            None,
        );
        assert_eq!(
            Dialect::MySql.render_text("`d`", &dec).unwrap(),
            "CAST(`d` AS CHAR(80))"
        );
        let text = column(OdbcType::LongVarchar { length: None }, false, None);
        assert_eq!(
            Dialect::MySql.render_text("`t`", &text).unwrap(),
            "CAST(`t` AS CHAR)"
        );
        assert_eq!(Dialect::SqlServer.render_text("\"t\"", &text), None);
    }
}
