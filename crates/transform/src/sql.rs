//! Small SQL text helpers: quoting, literals, and mapping engine errors back to model files.

use deltalake::arrow::datatypes::DataType;
use serde_json::Value as Json;

/// A double-quoted SQL identifier (case kept, quotes doubled).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `layer.name` as `"layer"."name"`.
pub fn quote_table(id: &str) -> String {
    match id.split_once('.') {
        Some((layer, name)) => format!("{}.{}", quote_ident(layer), quote_ident(name)),
        None => quote_ident(id),
    }
}

/// A JSON value as a SQL literal.
pub fn sql_literal(v: &Json) -> String {
    match v {
        Json::Null => "NULL".into(),
        Json::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// The SQL type a `CAST` to an Arrow type is written with (text for types without one here).
pub(crate) fn sql_type(t: &DataType) -> String {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 | DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Boolean => "BOOLEAN".into(),
        _ => "VARCHAR".into(),
    }
}

/// `(line, column)` from a SQL parser message ("… at Line: 3, Column: 8").
pub fn error_position(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(',')?;
    let col_at = rest.find("Column: ")?;
    let col: String = rest[col_at + "Column: ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((line.trim().parse().ok()?, col.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("silver.Orders"), "\"silver\".\"Orders\"");
        assert_eq!(sql_literal(&Json::String("O'Brien".into())), "'O''Brien'");
        assert_eq!(sql_literal(&serde_json::json!(1.5)), "1.5");
    }

    #[test]
    fn positions() {
        assert_eq!(
            error_position(
                "sql parser error: Expected: end of statement, found: FROMM at Line: 3, Column: 8"
            ),
            Some((3, 8))
        );
        assert_eq!(error_position("no position"), None);
    }
}
