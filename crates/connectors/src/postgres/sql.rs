//! Building the SELECT: identifiers, literals and table names.

use tributary_core::cursor::{CursorValue, format_decimal};

/// `"name"`, with embedded double quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal that means the same whatever `standard_conforming_strings` is: `'it''s'`,
/// or `E'a\\b'` when the text holds a backslash.
pub(crate) fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// The SQL literal of a cursor value, typed so that it compares with the cursor column.
pub(crate) fn cursor_literal(value: &CursorValue) -> String {
    match value {
        CursorValue::Int(v) => v.to_string(),
        CursorValue::Decimal { unscaled, scale } => {
            let text = format_decimal(unscaled, *scale);
            let digits = unscaled.strip_prefix('-').unwrap_or(unscaled);
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                text
            } else {
                format!("{}::numeric", quote_literal(&text))
            }
        }
        CursorValue::TimestampUtc(_) => {
            format!("{}::timestamptz", quote_literal(&value.to_string()))
        }
        CursorValue::Timestamp(_) => format!("{}::timestamp", quote_literal(&value.to_string())),
        CursorValue::Date(_) => format!("{}::date", quote_literal(&value.to_string())),
        CursorValue::Text(s) => quote_literal(s),
    }
}

/// Split a configured table name (`orders`, `public.orders`, `"My Schema"."Orders"`) into its
/// parts. Unquoted parts are taken exactly as written (no case folding); quoted parts may hold
/// dots and doubled quotes.
pub(crate) fn split_table_name(name: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = name.trim().chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if current.is_empty() && !quoted_part => {
                quoted_part = true;
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            current.push('"');
                        }
                        Some('"') => break,
                        Some(c) => current.push(c),
                        None => return Err(format!("unterminated quote in table name {name:?}")),
                    }
                }
                if current.is_empty() {
                    return Err(format!("empty quoted identifier in table name {name:?}"));
                }
            }
            '.' => {
                if current.is_empty() {
                    return Err(format!("empty part in table name {name:?}"));
                }
                parts.push(std::mem::take(&mut current));
                quoted_part = false;
            }
            c if quoted_part => {
                return Err(format!(
                    "unexpected {c:?} after a quoted identifier in table name {name:?}"
                ));
            }
            c => current.push(c),
        }
    }
    if current.is_empty() {
        return Err(format!("empty part in table name {name:?}"));
    }
    parts.push(current);
    if parts.len() > 3 {
        return Err(format!(
            "table name {name:?} has more than three parts; use table or schema.table"
        ));
    }
    Ok(parts)
}

/// The quoted, qualified form of a configured table name.
pub(crate) fn qualified_table(name: &str) -> Result<String, String> {
    Ok(split_table_name(name)?
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Vec<_>>()
        .join("."))
}

/// A custom query without trailing semicolons and blanks, ready to become a subquery.
pub(crate) fn trim_query(query: &str) -> &str {
    query
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal("a\\'b"), "E'a\\\\''b'");
    }

    #[test]
    fn cursor_literals_are_typed() {
        assert_eq!(cursor_literal(&CursorValue::Int(-5)), "-5");
        assert_eq!(
            cursor_literal(&CursorValue::Decimal {
                unscaled: "-12345".into(),
                scale: 2
            }),
            "-123.45"
        );
        assert_eq!(
            cursor_literal(&CursorValue::Decimal {
                unscaled: "1; drop".into(),
                scale: 0
            }),
            "'1; drop'::numeric"
        );
        assert_eq!(
            cursor_literal(&CursorValue::TimestampUtc(1_000_001)),
            "'1970-01-01 00:00:01.000001+00:00'::timestamptz"
        );
        assert_eq!(
            cursor_literal(&CursorValue::Timestamp(0)),
            "'1970-01-01 00:00:00.000000'::timestamp"
        );
        assert_eq!(
            cursor_literal(&CursorValue::Date(-719_162)),
            "'0001-01-01'::date"
        );
        assert_eq!(cursor_literal(&CursorValue::Text("it's".into())), "'it''s'");
    }

    #[test]
    fn table_names_split_and_quote() {
        assert_eq!(
            qualified_table("public.orders").unwrap(),
            "\"public\".\"orders\""
        );
        assert_eq!(qualified_table("orders").unwrap(), "\"orders\"");
        assert_eq!(
            qualified_table("\"My.Schema\".\"Or\"\"ders\"").unwrap(),
            "\"My.Schema\".\"Or\"\"ders\""
        );
        assert!(split_table_name("a..b").is_err());
        assert!(split_table_name("\"a").is_err());
        assert!(split_table_name("a.b.c.d").is_err());
    }

    #[test]
    fn queries_lose_trailing_semicolons() {
        assert_eq!(trim_query(" SELECT 1 ;\n; "), "SELECT 1");
    }
}
