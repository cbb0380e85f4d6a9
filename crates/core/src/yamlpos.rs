//! Line numbers for configuration keys.
//!
//! serde tells us *which* key is wrong (`tables[2].cursor`); this module tells the user *where*
//! it is, by walking the YAML event stream (yaml-rust2 keeps a line for every event) and recording
//! the line of every key and sequence item.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Map from a dotted key path (`tables[2].cursor`) to its 1-based line.
#[derive(Debug, Default)]
pub struct Positions {
    lines: HashMap<String, usize>,
}

impl Positions {
    /// Parse `text` and record positions. Invalid YAML yields an empty map (the serde parser
    /// reports the syntax error with its own position).
    pub fn of(text: &str) -> Positions {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut walker, false).is_err() {
            return Positions::default();
        }
        Positions {
            lines: walker.lines,
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.lines.get(&p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Walker {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Walker {
    /// The path of the value about to start, recording its line; advances the parent's state.
    fn enter_value(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            // `None` for a complex (non-scalar) key: not tracked.
            Some(Frame::Map { key, path }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                self.lines.entry(p.clone()).or_insert(line);
                Some(p)
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { key, path }) = self.stack.last_mut()
                    && key.is_none()
                {
                    self.lines.entry(join(path, &value)).or_insert(line);
                    *key = Some(value);
                    return;
                }
                self.enter_value(line);
            }
            Event::Alias(_) => {
                self.enter_value(line);
            }
            Event::MappingStart(..) => {
                let path = self.enter_value(line).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.enter_value(line).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_items() {
        let text =
            "connection: erp\ntables:\n  - name: a\n    mode: full\n  - name: b\n    cursor: x\n";
        let p = Positions::of(text);
        assert_eq!(p.line("connection"), Some(1));
        assert_eq!(p.line("tables"), Some(2));
        assert_eq!(p.line("tables[0].mode"), Some(4));
        assert_eq!(p.line("tables[1].cursor"), Some(6));
        // unknown child falls back to its parent
        assert_eq!(p.line("tables[1].nope"), Some(5));
    }

    #[test]
    fn flow_style_is_tracked_too() {
        let text = "connections:\n  erp: { type: postgres, url: x }\n";
        let p = Positions::of(text);
        assert_eq!(p.line("connections.erp.url"), Some(2));
    }
}
