//! Pages and records: the next page's URL for each pagination style, and the records of a
//! response written as NDJSON lines (in the API's key order, numbers as written).

use std::collections::BTreeMap;
use std::io::Write;

use crate::rest::connection::{NestedMode, Pagination};
use reqwest::header::{HeaderMap, LINK};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tributary_core::jsonpath::{JsonPath, Step};
use url::Url;

use super::client::set_query;

/// Where the next page is.
pub(crate) struct Pager {
    pagination: Pagination,
    cursor_path: Option<JsonPath>,
    next_url_path: Option<JsonPath>,
    /// Offset pagination: the next offset; page pagination: the current page number.
    position: u64,
    last_cursor: Option<String>,
}

impl Pager {
    /// A pager for `pagination` (paths already validated by the configuration).
    pub(crate) fn new(pagination: Pagination) -> Result<Pager, String> {
        let (cursor_path, next_url_path) = match &pagination {
            Pagination::Cursor { cursor_path, .. } => (Some(JsonPath::parse(cursor_path)?), None),
            Pagination::NextUrl { next_url_path } => (None, Some(JsonPath::parse(next_url_path)?)),
            _ => (None, None),
        };
        let position = match &pagination {
            Pagination::Page { start, .. } => *start,
            _ => 0,
        };
        Ok(Pager {
            pagination,
            cursor_path,
            next_url_path,
            position,
            last_cursor: None,
        })
    }

    /// The first page's URL: `url` with the pagination's parameters.
    pub(crate) fn first(&self, mut url: Url) -> Url {
        match &self.pagination {
            Pagination::Offset {
                limit_param,
                offset_param,
                limit,
            } => {
                set_query(&mut url, offset_param, "0");
                set_query(&mut url, limit_param, &limit.to_string());
            }
            Pagination::Page {
                page_param,
                size_param,
                size,
                start,
            } => {
                set_query(&mut url, page_param, &start.to_string());
                if let Some(size) = size {
                    set_query(&mut url, size_param, &size.to_string());
                }
            }
            _ => {}
        }
        url
    }

    /// Whether the page body is needed as a JSON value (cursor and next-URL pagination).
    pub(crate) fn needs_body(&self) -> bool {
        self.cursor_path.is_some() || self.next_url_path.is_some()
    }

    /// The next page's URL after page `current` (which had `records` records), or `None` when
    /// it was the last. `body` is the parsed page when [`Pager::needs_body`]. The error says
    /// why the response cannot be paginated.
    pub(crate) fn next(
        &mut self,
        current: &Url,
        headers: &HeaderMap,
        body: Option<&serde_json::Value>,
        records: usize,
    ) -> Result<Option<Url>, String> {
        if records == 0 {
            return Ok(None);
        }
        let records = records as u64;
        match &self.pagination {
            Pagination::None => Ok(None),
            Pagination::Offset {
                limit_param,
                offset_param,
                limit,
            } => {
                if records < *limit {
                    return Ok(None);
                }
                self.position += records;
                let mut next = current.clone();
                set_query(&mut next, offset_param, &self.position.to_string());
                set_query(&mut next, limit_param, &limit.to_string());
                Ok(Some(next))
            }
            Pagination::Page {
                page_param, size, ..
            } => {
                if size.is_some_and(|s| records < s) {
                    return Ok(None);
                }
                self.position += 1;
                let mut next = current.clone();
                set_query(&mut next, page_param, &self.position.to_string());
                Ok(Some(next))
            }
            Pagination::Cursor {
                cursor_param,
                cursor_path,
            } => {
                let path = self.cursor_path.as_ref().ok_or("no cursor path")?;
                let Some(value) = body.and_then(|b| path.lookup(b)).and_then(scalar_text) else {
                    return Ok(None);
                };
                if self.last_cursor.as_deref() == Some(value.as_str()) {
                    return Err(format!(
                        "the response's `{cursor_path}` is the same cursor as on the previous page; \
                         stopping so as not to request the same page forever"
                    ));
                }
                let mut next = current.clone();
                set_query(&mut next, cursor_param, &value);
                self.last_cursor = Some(value);
                Ok(Some(next))
            }
            Pagination::NextUrl { next_url_path } => {
                let path = self.next_url_path.as_ref().ok_or("no next URL path")?;
                let Some(value) = body.and_then(|b| path.lookup(b)).and_then(scalar_text) else {
                    return Ok(None);
                };
                let next = current
                    .join(&value)
                    .map_err(|e| format!("the response's `{next_url_path}` is not a URL ({e})"))?;
                same_page_guard(current, next).map(Some)
            }
            Pagination::LinkHeader => match next_link(headers) {
                None => Ok(None),
                Some(link) => {
                    let next = current
                        .join(&link)
                        .map_err(|e| format!("the Link header's next URL is not a URL ({e})"))?;
                    same_page_guard(current, next).map(Some)
                }
            },
        }
    }
}

fn same_page_guard(current: &Url, next: Url) -> Result<Url, String> {
    if &next == current {
        Err("the next page's URL is the current page's; stopping so as not to request the same page forever".into())
    } else {
        Ok(next)
    }
}

/// A cursor or URL value: strings as they are, numbers as written; null, empty strings and
/// other values are no value.
fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `rel="next"` URL of a `Link` header (RFC 8288): `<https://…?page=2>; rel="next"`.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else { break };
            let target = &after[..close];
            let params_end = after[close + 1..]
                .find('<')
                .map(|i| close + 1 + i)
                .unwrap_or(after.len());
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_end_matches(|c: char| c == ',' || c.is_whitespace())
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

/// How records are written.
pub(crate) struct RecordShape<'a> {
    /// Where the records array is.
    pub records: &'a JsonPath,
    /// Nested objects/arrays as structs or JSON text.
    pub nested: NestedMode,
    /// Fields cast to text (`cast: { field: text }`): objects and arrays become JSON text.
    pub cast: &'a BTreeMap<String, tributary_core::config::ColumnCast>,
}

/// Write the records of one response `body` as NDJSON lines to `out`; the number written.
/// The error says what is wrong with the response.
pub(crate) fn write_records(
    body: &[u8],
    shape: &RecordShape<'_>,
    out: &mut dyn Write,
) -> Result<usize, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("the response is not UTF-8 ({e})"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let selected = Select(shape.records.steps())
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| format!("the response is not JSON ({e})"))?;
    let Some(selected) = selected else {
        return Err(format!(
            "the response has no `{}` (records){}",
            shape.records,
            arrays_hint(text)
        ));
    };
    let raw = selected.get().trim_start();
    if raw.starts_with("null") {
        return Ok(0);
    }
    if !raw.starts_with('[') {
        let kind = if raw.starts_with('{') {
            "an object"
        } else {
            "not an array"
        };
        return Err(format!(
            "`records: {}` selects {kind}, not the array of records{}",
            shape.records,
            if shape.records.is_root() {
                arrays_hint(text)
            } else {
                String::new()
            }
        ));
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw)
        .map_err(|e| format!("the records array is not valid JSON ({e})"))?;
    let transform = shape.nested == NestedMode::Json || !shape.cast.is_empty();
    let io = |e: std::io::Error| format!("writing the records to a temporary file failed: {e}");
    for (i, item) in items.iter().enumerate() {
        let t = item.get().trim_start();
        if !t.starts_with('{') {
            return Err(format!(
                "record {} of the page is not a JSON object: {}",
                i + 1,
                crate::util::truncate_value(&minify(t))
            ));
        }
        if transform {
            write_transformed(item, shape, out).map_err(|e| e.to_string())?;
        } else {
            out.write_all(minify(t).as_bytes()).map_err(io)?;
        }
        out.write_all(b"\n").map_err(io)?;
    }
    Ok(items.len())
}

/// ` (arrays at the top of the response: data, links)`, to help write `records:`.
fn arrays_hint(text: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return String::new();
    };
    let arrays: Vec<&str> = map
        .iter()
        .filter(|(_, v)| v.is_array())
        .map(|(k, _)| k.as_str())
        .collect();
    if arrays.is_empty() {
        let keys: Vec<&str> = map.keys().map(String::as_str).take(20).collect();
        format!("; its top-level keys are: {}", keys.join(", "))
    } else {
        format!(
            "; set `records:` to the array holding them, e.g. `$.{}` (arrays at the top of the response: {})",
            arrays[0],
            arrays.join(", ")
        )
    }
}

/// A record with its object and array fields as JSON text where configured.
fn write_transformed(
    item: &RawValue,
    shape: &RecordShape<'_>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let fields: Vec<(String, &RawValue)> = serde_json::from_str::<OrderedFields>(item.get())
        .map_err(|e| format!("a record is not a JSON object ({e})"))?
        .0;
    let mut line = String::with_capacity(item.get().len() + 16);
    line.push('{');
    for (n, (key, value)) in fields.iter().enumerate() {
        if n > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(key).map_err(|e| e.to_string())?);
        line.push(':');
        let v = value.get().trim();
        let as_text = (shape.nested == NestedMode::Json || shape.cast.contains_key(key))
            && (v.starts_with('{') || v.starts_with('['));
        if as_text {
            line.push_str(&serde_json::to_string(&minify(v)).map_err(|e| e.to_string())?);
        } else {
            line.push_str(&minify(v));
        }
    }
    line.push('}');
    out.write_all(line.as_bytes())
        .map_err(|e| format!("writing the records to a temporary file failed: {e}"))
}

/// Valid JSON without the whitespace between tokens (strings untouched), so a record fits on
/// one line.
pub(crate) fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// An object's members in document order, values unparsed.
struct OrderedFields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for OrderedFields<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedFields<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: &'de RawValue = map.next_value()?;
                    out.push((k, v));
                }
                Ok(OrderedFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Finds the value at a path while parsing, without building the document.
struct Select<'s>(&'s [Step]);

impl<'de> DeserializeSeed<'de> for Select<'_> {
    type Value = Option<&'de RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        match self.0.split_first() {
            None => <&'de RawValue as serde::Deserialize>::deserialize(d).map(Some),
            Some((step, rest)) => d.deserialize_any(SelectVisitor { step, rest }),
        }
    }
}

struct SelectVisitor<'s> {
    step: &'s Step,
    rest: &'s [Step],
}

impl<'de> Visitor<'de> for SelectVisitor<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if found.is_none() && matches!(self.step, Step::Key(k) if *k == key) {
                found = map.next_value_seed(Select(self.rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = match self.step {
            Step::Index(i) => Some(*i),
            Step::Key(k) => k.parse::<usize>().ok(),
        };
        let mut found = None;
        let mut i = 0usize;
        loop {
            if Some(i) == wanted {
                match seq.next_element_seed(Select(self.rest))? {
                    Some(v) => found = v,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn lines(body: &str, records: &str, nested: NestedMode) -> Result<Vec<String>, String> {
        let path = JsonPath::parse(records).unwrap();
        let cast = BTreeMap::new();
        let shape = RecordShape {
            records: &path,
            nested,
            cast: &cast,
        };
        let mut out = Vec::new();
        let n = write_records(body.as_bytes(), &shape, &mut out)?;
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), n);
        Ok(lines)
    }

    #[test]
    fn records_keep_key_order_and_numbers_on_one_line() {
        let body = "{\"meta\": {\"n\": 2}, \"data\": {\"items\": [\n  {\"z\": 1.50, \"a\": \"x y\\n\"},\n  {\"z\": 2, \"a\": null, \"n\": {\"q\": [1, 2]}}\n]}}";
        let got = lines(body, "$.data.items", NestedMode::Structs).unwrap();
        assert_eq!(
            got,
            vec![
                r#"{"z":1.50,"a":"x y\n"}"#,
                r#"{"z":2,"a":null,"n":{"q":[1,2]}}"#
            ]
        );
        let got = lines(body, "data.items", NestedMode::Json).unwrap();
        assert_eq!(got[1], r#"{"z":2,"a":null,"n":"{\"q\":[1,2]}"}"#);
        assert_eq!(
            lines("[{\"a\":1}]", "$", NestedMode::Structs)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            lines("{\"data\": null}", "data", NestedMode::Structs)
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn records_errors_help() {
        let e = lines("{\"items\": [], \"meta\": {}}", "$", NestedMode::Structs).unwrap_err();
        assert!(e.contains("`$.items`"), "{e}");
        let e = lines("{\"items\": []}", "data", NestedMode::Structs).unwrap_err();
        assert!(e.contains("no `data`") && e.contains("$.items"), "{e}");
        let e = lines("[1]", "$", NestedMode::Structs).unwrap_err();
        assert!(
            e.contains("record 1 of the page is not a JSON object"),
            "{e}"
        );
        let e = lines("<html>", "$", NestedMode::Structs).unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn link_header() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<http://h/i?_page=1>; rel="first", <http://h/i?_page=2&a=1,2>; rel="next", <http://h/i?_page=9>; rel=last"#,
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("http://h/i?_page=2&a=1,2"));
        h.insert(
            LINK,
            HeaderValue::from_static(r#"<http://h/i?_page=9>; rel="last""#),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn offset_and_page_stop_on_short_pages() {
        let h = HeaderMap::new();
        let mut p = Pager::new(Pagination::Offset {
            limit_param: "limit".into(),
            offset_param: "offset".into(),
            limit: 2,
        })
        .unwrap();
        let first = p.first(Url::parse("http://h/i?x=1").unwrap());
        assert_eq!(first.as_str(), "http://h/i?x=1&offset=0&limit=2");
        let second = p.next(&first, &h, None, 2).unwrap().unwrap();
        assert_eq!(second.as_str(), "http://h/i?x=1&offset=2&limit=2");
        assert_eq!(p.next(&second, &h, None, 1).unwrap(), None);

        let mut p = Pager::new(Pagination::Page {
            page_param: "p".into(),
            size_param: "n".into(),
            size: None,
            start: 0,
        })
        .unwrap();
        let first = p.first(Url::parse("http://h/i").unwrap());
        assert_eq!(first.as_str(), "http://h/i?p=0");
        let second = p.next(&first, &h, None, 7).unwrap().unwrap();
        assert_eq!(second.as_str(), "http://h/i?p=1");
        assert_eq!(p.next(&second, &h, None, 0).unwrap(), None);
    }

    #[test]
    fn cursor_and_next_url() {
        let h = HeaderMap::new();
        let mut p = Pager::new(Pagination::Cursor {
            cursor_path: "$.meta.next".into(),
            cursor_param: "after".into(),
        })
        .unwrap();
        let u = Url::parse("http://h/i").unwrap();
        let body = serde_json::json!({"meta": {"next": "c2"}});
        let n = p.next(&u, &h, Some(&body), 3).unwrap().unwrap();
        assert_eq!(n.as_str(), "http://h/i?after=c2");
        let e = p.next(&n, &h, Some(&body), 3).unwrap_err();
        assert!(e.contains("same cursor"), "{e}");
        let done = serde_json::json!({"meta": {"next": ""}});
        assert_eq!(p.next(&n, &h, Some(&done), 3).unwrap(), None);

        let mut p = Pager::new(Pagination::NextUrl {
            next_url_path: "links.next".into(),
        })
        .unwrap();
        let body = serde_json::json!({"links": {"next": "/i?page=2"}});
        let n = p.next(&u, &h, Some(&body), 1).unwrap().unwrap();
        assert_eq!(n.as_str(), "http://h/i?page=2");
        let e = p.next(&n, &h, Some(&body), 1).unwrap_err();
        assert!(e.contains("current page"), "{e}");
    }
}
