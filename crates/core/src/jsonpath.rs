//! JSONPath-style selectors for values inside a JSON document: `$` (the document itself),
//! `$.data.items`, `data.items`, `items[0].id`, `items.0.id`, `$['odd key'].x`.
//!
//! Only plain member and index steps are supported (no wildcards, filters or recursive descent):
//! they are what a REST response's records array, next cursor or next URL needs, and what an
//! `http` task's `{{response.…}}` placeholders use.
//!
//! ```
//! use tributary_core::jsonpath::JsonPath;
//!
//! let doc = serde_json::json!({"data": {"items": [{"id": 7}]}, "next": null});
//! let p = JsonPath::parse("$.data.items[0].id").unwrap();
//! assert_eq!(p.lookup(&doc), Some(&serde_json::json!(7)));
//! assert_eq!(JsonPath::parse("data.items.0.id").unwrap().lookup(&doc), Some(&serde_json::json!(7)));
//! assert!(JsonPath::parse("$").unwrap().is_root());
//! assert!(JsonPath::parse("data..items").is_err());
//! ```

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member. On an array, a member name made of digits selects that index.
    Key(String),
    /// An array index (`[3]`).
    Index(usize),
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
    text: String,
}

impl JsonPath {
    /// Parse a selector. `$` and the empty string select the whole document. The error says
    /// what is wrong and shows the accepted forms.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| {
            format!(
                "`{text}` is not a supported path ({why}); write e.g. `$` (the whole response), \
                 `$.data.items`, `data.items` or `items[0].id`"
            )
        };
        let t = text.trim();
        let mut rest = t.strip_prefix('$').unwrap_or(t);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("unclosed `[`"))?;
                let inner = after[..end].trim();
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match quoted {
                    Some(name) => steps.push(Step::Key(name.to_string())),
                    None => steps.push(Step::Index(
                        inner
                            .parse()
                            .map_err(|_| bad("`[…]` holds an index or a quoted name"))?,
                    )),
                }
                rest = &after[end + 1..];
            } else {
                let body = match rest.strip_prefix('.') {
                    Some(b) => b,
                    None if first && !t.starts_with('$') => rest,
                    None => return Err(bad("steps are separated by `.`")),
                };
                let end = body.find(['.', '[']).unwrap_or(body.len());
                let name = &body[..end];
                if name.is_empty() {
                    return Err(bad("empty step"));
                }
                if name.contains('*') {
                    return Err(bad("wildcards are not supported"));
                }
                steps.push(Step::Key(name.to_string()));
                rest = &body[end..];
            }
            first = false;
        }
        Ok(JsonPath {
            steps,
            text: t.to_string(),
        })
    }

    /// The steps, outermost first.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Whether this selects the whole document (`$`).
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// The value this path selects in `doc`, if there is one.
    pub fn lookup<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(doc, |v, step| match (v, step) {
            (Value::Object(map), Step::Key(k)) => map.get(k),
            (Value::Array(items), Step::Index(i)) => items.get(*i),
            (Value::Array(items), Step::Key(k)) => {
                k.parse::<usize>().ok().and_then(|i| items.get(i))
            }
            _ => None,
        })
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            f.write_str("$")
        } else {
            f.write_str(&self.text)
        }
    }
}

/// The value at a dotted path (`state.result_state`, `items.0.id`, or any [`JsonPath`]);
/// `None` when the path is missing or not a valid selector.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    JsonPath::parse(path).ok()?.lookup(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms() {
        let doc = json!({"a": {"b c": [1, {"d": true}]}, "x": [10, 20]});
        let get = |p: &str| JsonPath::parse(p).unwrap().lookup(&doc).cloned();
        assert_eq!(get("$"), Some(doc.clone()));
        assert_eq!(get(""), Some(doc.clone()));
        assert_eq!(get("x[1]"), Some(json!(20)));
        assert_eq!(get("$.x.0"), Some(json!(10)));
        assert_eq!(get("$.a['b c'][1].d"), Some(json!(true)));
        assert_eq!(get("a[\"b c\"][0]"), Some(json!(1)));
        assert_eq!(get("$.missing"), None);
        assert_eq!(get("x.5"), None);
    }

    #[test]
    fn errors_show_the_accepted_forms() {
        for bad in ["a..b", "$.a[", "$.a[x]", "$a", "a.*", "a."] {
            let e = JsonPath::parse(bad).unwrap_err();
            assert!(e.contains("$.data.items"), "{bad}: {e}");
        }
    }
}
