//! Building the `SELECT` a read sends: identifier quoting, cursor literals, casts.

use mysql_async::Value;
use tributary_core::CursorValue;
use tributary_core::cursor::format_decimal;

/// Quote one identifier with backticks, doubling any backtick inside.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Quote a table name: `db.table` or `table`, each part quoted.
pub(crate) fn quote_table(name: &str) -> String {
    match name.split_once('.') {
        Some((db, table)) => format!("{}.{}", quote_ident(db), quote_ident(table)),
        None => quote_ident(name),
    }
}

/// A custom query without trailing semicolons and blanks, ready to be wrapped in a subquery.
pub(crate) fn trim_query(query: &str) -> &str {
    query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

/// The right-hand side of `WHERE col >= …` for a cursor value. Text goes as a bound parameter
/// (no escaping to get wrong, whatever the server's `sql_mode`); everything else as a literal.
pub(crate) fn cursor_operand(value: &CursorValue) -> Result<(String, Option<Value>), String> {
    let micros_text = |v: i64| {
        chrono::DateTime::from_timestamp_micros(v)
            .map(|t| format!("'{}'", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f")))
            .ok_or_else(|| format!("cursor timestamp {v} µs is out of range"))
    };
    Ok(match value {
        CursorValue::Int(v) => (v.to_string(), None),
        CursorValue::Decimal { unscaled, scale } => {
            let ok = unscaled
                .strip_prefix('-')
                .unwrap_or(unscaled)
                .bytes()
                .all(|b| b.is_ascii_digit())
                && !unscaled.is_empty();
            if !ok {
                return Err(format!("cursor decimal {unscaled:?} is not a number"));
            }
            (format_decimal(unscaled, *scale), None)
        }
        // The session time zone is UTC, so a TIMESTAMP column compares as this instant.
        CursorValue::TimestampUtc(v) | CursorValue::Timestamp(v) => (micros_text(*v)?, None),
        CursorValue::Date(_) => (format!("'{value}'"), None),
        CursorValue::Text(s) => ("?".to_string(), Some(Value::Bytes(s.as_bytes().to_vec()))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_table("shop.orders"), "`shop`.`orders`");
        assert_eq!(quote_table("orders"), "`orders`");
        assert_eq!(trim_query(" SELECT 1 ;\n"), "SELECT 1");
    }

    #[test]
    fn cursor_literals() {
        assert_eq!(cursor_operand(&CursorValue::Int(-5)).unwrap().0, "-5");
        let d = CursorValue::Decimal {
            unscaled: "-12345".into(),
            scale: 2,
        };
        assert_eq!(cursor_operand(&d).unwrap().0, "-123.45");
        let bad = CursorValue::Decimal {
            unscaled: "1; DROP".into(),
            scale: 0,
        };
        assert!(cursor_operand(&bad).is_err());
        assert_eq!(
            cursor_operand(&CursorValue::TimestampUtc(1_000_001))
                .unwrap()
                .0,
            "'1970-01-01 00:00:01.000001'"
        );
        assert_eq!(
            cursor_operand(&CursorValue::Date(-1)).unwrap().0,
            "'1969-12-31'"
        );
        let (sql, param) = cursor_operand(&CursorValue::Text("a'b".into())).unwrap();
        assert_eq!(sql, "?");
        assert_eq!(param, Some(Value::Bytes(b"a'b".to_vec())));
    }
}
