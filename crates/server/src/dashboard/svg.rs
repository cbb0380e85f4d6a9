//! Inline SVG drawings: the run timeline (Gantt), line charts of a task across runs, the
//! lineage graph, and the grid of expectation results. Colours are presentation attributes (no
//! inline styles, which the Content-Security-Policy forbids); tooltips are `<title>` elements.
//!
//! These are the only markup the pages take as it is (the templates mark it safe), so every
//! value from data that a drawing embeds (names, ids, errors, links) goes through [`esc`]
//! (text and attribute values alike: `&`, `<`, `>`, `"` and `'` are replaced): no data can
//! open a tag or leave an attribute.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};

use super::data::{DagView, ExpectationSeries, run_link};
use super::format::{count, duration};

/// Text escaped for XML (content and quoted attributes).
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = 0;
        for (i, c) in self.0.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[last..i])?;
            f.write_str(rep)?;
            last = i + c.len_utf8();
        }
        f.write_str(&self.0[last..])
    }
}

/// Shorthand: `esc(s)` displays `s` escaped.
fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

/// Fill colour of a status.
pub(crate) fn color(status: &str) -> &'static str {
    match status {
        "succeeded" | "passed" => "#2e7d32",
        "failed" => "#c62828",
        "running" => "#1565c0",
        "pending" => "#9e9e9e",
        "skipped" => "#b0bec5",
        "cancelled" => "#6d4c41",
        "abandoned" => "#ef6c00",
        "source" => "#37474f",
        _ => "#eceff1",
    }
}

/// Text colour readable on [`color`].
fn text_color(status: &str) -> &'static str {
    match status {
        "skipped" | "never" | "" => "#263238",
        _ => "#ffffff",
    }
}

/// `s` cut to `max` characters, with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One bar of the timeline: an attempt of a task.
pub(crate) struct Bar {
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) status: String,
    pub(crate) title: String,
}

/// One row of the timeline: a task.
pub(crate) struct GanttRow {
    pub(crate) label: String,
    pub(crate) link: String,
    pub(crate) bars: Vec<Bar>,
}

const GANTT_WIDTH: f64 = 960.0;
const GANTT_LABEL: f64 = 230.0;
const GANTT_ROW: f64 = 24.0;
const GANTT_TOP: f64 = 26.0;

/// The timeline of a run from `t0` to `t1`: a row per task, a bar per attempt.
pub(crate) fn gantt(rows: &[GanttRow], t0: DateTime<Utc>, t1: DateTime<Utc>) -> String {
    let span = ((t1 - t0).num_microseconds().unwrap_or(0).max(1)) as f64 / 1e6;
    let plot = GANTT_WIDTH - GANTT_LABEL - 16.0;
    let height = GANTT_TOP + GANTT_ROW * rows.len().max(1) as f64 + 8.0;
    let x_of = |t: DateTime<Utc>| {
        let s = (t - t0).num_microseconds().unwrap_or(0) as f64 / 1e6;
        GANTT_LABEL + (s / span).clamp(0.0, 1.0) * plot
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"gantt\" role=\"img\" aria-label=\"Task timeline\" viewBox=\"0 0 {GANTT_WIDTH} {height}\" width=\"{GANTT_WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for i in 0..=5 {
        let x = GANTT_LABEL + plot * i as f64 / 5.0;
        let label = duration(span * i as f64 / 5.0);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{height}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{x:.1}\" y=\"14\" font-size=\"11\" text-anchor=\"middle\" fill=\"#546e7a\">+{}</text>",
            GANTT_TOP - 6.0,
            esc(&label)
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let y = GANTT_TOP + GANTT_ROW * i as f64;
        let _ = write!(
            out,
            "<a href=\"{}\"><text x=\"4\" y=\"{:.1}\" font-size=\"12\" fill=\"#1a237e\">{}<title>{}</title></text></a>",
            esc(&row.link),
            y + 16.0,
            esc(&cut(&row.label, 32)),
            esc(&row.label)
        );
        for b in &row.bars {
            let x0 = x_of(b.start);
            let w = (x_of(b.end) - x0).max(2.0);
            let _ = write!(
                out,
                "<rect class=\"bar\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"3\" fill=\"{}\"><title>{}</title></rect>",
                y + 4.0,
                GANTT_ROW - 8.0,
                color(&b.status),
                esc(&b.title)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One point of a line chart: a task's record in a run.
pub(crate) struct Point {
    pub(crate) run_id: String,
    pub(crate) when: String,
    pub(crate) value: Option<f64>,
    pub(crate) status: String,
}

const CHART_W: f64 = 460.0;
const CHART_H: f64 = 170.0;
const CHART_LEFT: f64 = 70.0;
const CHART_BOTTOM: f64 = 26.0;
const CHART_TOP: f64 = 24.0;

/// A line chart of `points` (oldest first) titled `title`; `fmt` writes a value.
pub(crate) fn line_chart(title: &str, points: &[Point], fmt: &dyn Fn(f64) -> String) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" width=\"{CHART_W}\" height=\"{CHART_H}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"4\" y=\"15\" font-size=\"12\" font-weight=\"bold\" fill=\"#263238\">{}</text>",
        esc(title),
        esc(title)
    );
    let values: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
    if values.is_empty() {
        out.push_str(
            "<text x=\"70\" y=\"90\" font-size=\"12\" fill=\"#78909c\">no data yet</text></svg>",
        );
        return out;
    }
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let plot_w = CHART_W - CHART_LEFT - 12.0;
    let plot_h = CHART_H - CHART_TOP - CHART_BOTTOM;
    let n = points.len();
    let x_of = |i: usize| {
        if n <= 1 {
            CHART_LEFT + plot_w / 2.0
        } else {
            CHART_LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y_of = |v: f64| CHART_TOP + plot_h * (1.0 - v / top);
    // Axes and the y labels (0, half, top).
    let _ = write!(
        out,
        "<line x1=\"{CHART_LEFT}\" y1=\"{CHART_TOP}\" x2=\"{CHART_LEFT}\" y2=\"{:.1}\" stroke=\"#90a4ae\"/>\
         <line x1=\"{CHART_LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#90a4ae\"/>",
        CHART_TOP + plot_h,
        CHART_TOP + plot_h,
        CHART_LEFT + plot_w,
        CHART_TOP + plot_h
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = top * frac;
        let y = y_of(v);
        let _ = write!(
            out,
            "<line x1=\"{CHART_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eceff1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#546e7a\">{}</text>",
            CHART_LEFT + plot_w,
            CHART_LEFT - 4.0,
            y + 3.0,
            esc(&fmt(v))
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            out,
            "<text x=\"{CHART_LEFT}\" y=\"{:.1}\" font-size=\"10\" fill=\"#546e7a\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#546e7a\">{}</text>",
            CHART_H - 8.0,
            esc(&first.when),
            CHART_LEFT + plot_w,
            CHART_H - 8.0,
            esc(&last.when)
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some(format!("{:.1},{:.1}", x_of(i), y_of(p.value?))))
        .collect();
    let _ = write!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#3949ab\" stroke-width=\"1.5\"/>",
        line.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let Some(v) = p.value else { continue };
        let _ = write!(
            out,
            "<a href=\"{}\"><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{}\"><title>{} · {} · {} · {}</title></circle></a>",
            esc(&run_link(&p.run_id)),
            x_of(i),
            y_of(v),
            color(&p.status),
            esc(&p.run_id),
            esc(&p.when),
            esc(&p.status),
            esc(&fmt(v))
        );
    }
    out.push_str("</svg>");
    out
}

const NODE_W: f64 = 200.0;
const NODE_H: f64 = 34.0;
const COL_GAP: f64 = 70.0;
const ROW_GAP: f64 = 14.0;
const MARGIN: f64 = 10.0;

/// The lineage: sources on the left, then each task in the column of its depth (bronze, then
/// silver, then gold, for a medallion project), edges as curves, nodes coloured by their last
/// status and linked to their pages.
pub(crate) fn lineage(view: &DagView) -> String {
    // Node id → what its box shows.
    struct Placed {
        label: String,
        status: String,
        link: Option<String>,
        title: String,
    }
    let mut placed: BTreeMap<String, Placed> = BTreeMap::new();
    let mut columns: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for s in &view.sources {
        placed.insert(
            s.id.clone(),
            Placed {
                label: format!("source {}", s.connection),
                status: "source".into(),
                link: None,
                title: format!("connection {}", s.connection),
            },
        );
        columns.entry(0).or_default().push(s.id.clone());
    }
    for n in &view.nodes {
        let status = n
            .last
            .as_ref()
            .map(|l| l.status.as_str().to_string())
            .unwrap_or_else(|| "never".into());
        let mut title = format!("{} ({}) · last: {status}", n.id, n.kind);
        if let Some(l) = &n.last {
            let _ = write!(title, " in run {}", l.run_id);
            if let Some(c) = &l.error_class {
                let _ = write!(title, " ({c})");
            }
        }
        if let Some(d) = &n.description {
            let _ = write!(title, " · {d}");
        }
        placed.insert(
            n.id.clone(),
            Placed {
                label: n.id.clone(),
                status,
                link: Some(n.link.clone()),
                title,
            },
        );
        columns.entry(n.depth).or_default().push(n.id.clone());
    }
    let rows = columns.values().map(Vec::len).max().unwrap_or(1).max(1);
    let cols = columns.keys().max().map(|c| c + 1).unwrap_or(1);
    let width = MARGIN * 2.0 + cols as f64 * NODE_W + (cols.saturating_sub(1)) as f64 * COL_GAP;
    let height = MARGIN * 2.0 + rows as f64 * NODE_H + (rows - 1) as f64 * ROW_GAP;
    let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (col, ids) in &columns {
        for (row, id) in ids.iter().enumerate() {
            pos.insert(
                id.as_str(),
                (
                    MARGIN + *col as f64 * (NODE_W + COL_GAP),
                    MARGIN + row as f64 * (NODE_H + ROW_GAP),
                ),
            );
        }
    }
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"lineage\" role=\"img\" aria-label=\"Lineage\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for e in &view.edges {
        let (Some(a), Some(b)) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) else {
            continue;
        };
        let (x1, y1) = (a.0 + NODE_W, a.1 + NODE_H / 2.0);
        let (x2, y2) = (b.0, b.1 + NODE_H / 2.0);
        let mid = (x1 + x2) / 2.0;
        let _ = write!(
            out,
            "<path class=\"edge\" d=\"M{x1:.1},{y1:.1} C{mid:.1},{y1:.1} {mid:.1},{y2:.1} {x2:.1},{y2:.1}\" fill=\"none\" stroke=\"#90a4ae\" stroke-width=\"1.5\"><title>{} → {}</title></path>",
            esc(&e.from),
            esc(&e.to)
        );
    }
    for (id, p) in &placed {
        let Some((x, y)) = pos.get(id.as_str()) else {
            continue;
        };
        let node = format!(
            "<g class=\"node\" data-id=\"{}\" data-status=\"{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\" fill=\"{}\" stroke=\"#455a64\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" fill=\"{}\">{}</text><title>{}</title></g>",
            esc(id),
            esc(&p.status),
            color(&p.status),
            x + 8.0,
            y + NODE_H / 2.0 + 4.0,
            text_color(&p.status),
            esc(&cut(&p.label, 28)),
            esc(&p.title)
        );
        match &p.link {
            Some(href) => {
                let _ = write!(out, "<a href=\"{}\">{node}</a>", esc(href));
            }
            None => out.push_str(&node),
        }
    }
    out.push_str("</svg>");
    out
}

const CELL: f64 = 16.0;
const GRID_LABEL: f64 = 280.0;

/// Expectation results over time: a row per expectation, a cell per run (oldest left), green
/// when it passed, red when it failed; each cell links to its run.
pub(crate) fn expectation_grid(series: &[ExpectationSeries]) -> String {
    let cols = series.iter().map(|s| s.results.len()).max().unwrap_or(0);
    let width = GRID_LABEL + cols.max(1) as f64 * CELL + 8.0;
    let height = series.len().max(1) as f64 * (CELL + 4.0) + 4.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"grid\" role=\"img\" aria-label=\"Expectation results\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (row, s) in series.iter().enumerate() {
        let y = 2.0 + row as f64 * (CELL + 4.0);
        let _ = write!(
            out,
            "<text x=\"2\" y=\"{:.1}\" font-size=\"12\" fill=\"#263238\">{}<title>{}</title></text>",
            y + 12.0,
            esc(&cut(&s.expectation, 38)),
            esc(&format!("{} [{}] {}", s.expectation, s.on_fail, s.rule))
        );
        for (i, r) in s.results.iter().enumerate() {
            let status = if r.passed { "passed" } else { "failed" };
            let _ = write!(
                out,
                "<a href=\"{}\"><rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{}\" height=\"{CELL}\" rx=\"2\" fill=\"{}\"><title>{} · {} · {} of {} rows failed</title></rect></a>",
                esc(&run_link(&r.run_id)),
                GRID_LABEL + i as f64 * CELL,
                CELL - 2.0,
                color(status),
                esc(&r.run_id),
                status,
                count(r.failed_rows),
                count(r.checked_rows)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn charts_escape_their_text() {
        let points = vec![
            Point {
                run_id: "r<1>".into(),
                when: "t1".into(),
                value: Some(1.0),
                status: "succeeded".into(),
            },
            Point {
                run_id: "r2".into(),
                when: "t2".into(),
                value: None,
                status: "failed".into(),
            },
        ];
        let svg = line_chart("<b>rows</b>", &points, &|v| format!("{v}"));
        assert!(svg.contains("&lt;b&gt;rows"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("/runs/r%3C1%3E"));
        assert_eq!(svg.matches("<circle").count(), 1);
        let empty = line_chart("x", &[], &|v| format!("{v}"));
        assert!(empty.contains("no data yet"));
    }

    #[test]
    fn drawings_escape_their_text() {
        use crate::dashboard::data::lake::ExpectationPoint;
        use crate::dashboard::data::{DagNode, Edge, SourceNode};
        const EVIL: &str = "<script>\"x\" & 'y'</script>";
        const ESCAPED: &str = "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;";
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let gantt = gantt(
            &[GanttRow {
                label: EVIL.into(),
                link: format!("/tasks/{EVIL}"),
                bars: vec![Bar {
                    start: t0,
                    end: t0 + chrono::Duration::seconds(2),
                    status: EVIL.into(),
                    title: EVIL.into(),
                }],
            }],
            t0,
            t0 + chrono::Duration::seconds(4),
        );
        let view = DagView {
            sources: vec![SourceNode {
                id: format!("source:{EVIL}"),
                connection: EVIL.into(),
            }],
            nodes: vec![DagNode {
                id: EVIL.into(),
                kind: "command",
                layer: None,
                writes: None,
                connection: Some(EVIL.into()),
                deps: vec![],
                description: Some(EVIL.into()),
                depth: 1,
                last: None,
                link: format!("/tasks/{EVIL}"),
            }],
            edges: vec![Edge {
                from: format!("source:{EVIL}"),
                to: EVIL.into(),
            }],
            error: None,
        };
        let grid = expectation_grid(&[ExpectationSeries {
            expectation: EVIL.into(),
            rule: EVIL.into(),
            on_fail: "warn".into(),
            checks: 1,
            failures: 1,
            failed_rows: 1,
            results: vec![ExpectationPoint {
                run_id: EVIL.into(),
                recorded_at: t0,
                passed: false,
                checked_rows: 2,
                failed_rows: 1,
            }],
        }]);
        for svg in [gantt, lineage(&view), grid] {
            assert!(svg.contains(ESCAPED), "{svg}");
            assert!(!svg.contains("<script"), "{svg}");
            assert!(!svg.contains("'y'"), "{svg}");
        }
    }

    #[test]
    fn long_labels_are_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
