//! HTML building blocks: escaping, the page layout, number and time formats.
//!
//! Every value that comes from data (names, errors, table values) goes through [`esc`] (text
//! and attribute values alike: `&`, `<`, `>`, `"` and `'` are replaced), so no data can open a
//! tag or leave an attribute.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};

/// Text escaped for HTML and XML (content and quoted attributes).
pub(crate) struct Esc<'a>(pub(crate) &'a str);

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
pub(crate) fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

/// Which entry of the navigation is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Runs,
    Lineage,
    Tables,
    Quality,
    Trends,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Runs, "/runs", "Runs"),
    (Nav::Lineage, "/lineage", "Lineage"),
    (Nav::Tables, "/tables", "Tables"),
    (Nav::Quality, "/quality", "Data quality"),
    (Nav::Trends, "/trends", "Trends"),
];

/// A whole page: header with the navigation, `body`, and the CSRF token for the script.
/// `refresh`: the page reloads itself every few seconds (a run in progress).
pub(crate) fn layout(
    project: &str,
    title: &str,
    nav: Nav,
    csrf: &str,
    body: &str,
    refresh: bool,
) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf-token\" content=\"{}\">\
         <title>{} · {} · Tributary</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/assets/app.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body{}><header><a class=\"brand\" href=\"/runs\">Tributary</a>\
         <span class=\"project\">{}</span><nav>",
        esc(csrf),
        esc(title),
        esc(project),
        if refresh { " data-refresh=\"5\"" } else { "" },
        esc(project),
    );
    for (n, href, label) in NAV {
        let _ = write!(
            out,
            "<a href=\"{href}\"{}>{label}</a>",
            if n == nav {
                " class=\"current\" aria-current=\"page\""
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "</nav><a class=\"api\" href=\"/api/openapi.json\">API</a> <a class=\"api\" href=\"/metrics\">Metrics</a></header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

/// The page a browser gets without the token.
pub(crate) fn sign_in_page() -> String {
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · Tributary</title>\
     <link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
     <body><main><h1>Sign in</h1><p>This dashboard needs the token of <code>serve.token</code> in \
     <code>tributary.yaml</code>. Open any page once with <code>?token=TOKEN</code> added to its \
     address (for example <code>/runs?token=TOKEN</code>): the browser then keeps a session cookie \
     and the token leaves the address bar.</p></main></body></html>\n"
        .to_string()
}

/// An error page body.
pub(crate) fn error_body(status: u16, message: &str) -> String {
    format!(
        "<p class=\"error-box\"><strong>{status}</strong> {}</p><p><a href=\"/runs\">Back to the runs</a></p>",
        esc(message)
    )
}

/// `2025-01-02 03:04:05Z`, or `–`.
pub(crate) fn time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
        None => "–".into(),
    }
}

/// `850 ms`, `12.3 s`, `4 m 05 s`, `2 h 03 m`, `3 d 04 h`.
pub(crate) fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    if secs < 1.0 {
        return format!("{} ms", (secs * 1000.0).round() as u64);
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{} m {:02} s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} h {:02} m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} d {:02} h", s / 86_400, (s % 86_400) / 3600)
    }
}

/// `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `count`, or `–`.
pub(crate) fn opt_count(n: Option<u64>) -> String {
    n.map(count).unwrap_or_else(|| "–".into())
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A status as a coloured badge.
pub(crate) fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge st-{}\">{}</span>",
        css_ident(status),
        esc(status)
    )
}

/// `s` reduced to `[a-z0-9_-]`, for class names.
pub(crate) fn css_ident(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// `<a href="…">text</a>`, both escaped.
pub(crate) fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", esc(href), esc(text))
}

/// A button that POSTs `body` (JSON) to `url` through the page's script, then opens the run it
/// started.
pub(crate) fn post_button(id: &str, url: &str, body: &str, label: &str) -> String {
    format!(
        "<button type=\"button\" id=\"{}\" data-post=\"{}\" data-body=\"{}\">{}</button>",
        esc(id),
        esc(url),
        esc(body),
        esc(label)
    )
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
        assert_eq!(
            link("/a?b=\"c\"", "<b>"),
            "<a href=\"/a?b=&quot;c&quot;\">&lt;b&gt;</a>"
        );
    }

    #[test]
    fn formats() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(0.25), "250 ms");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(245.0), "4 m 05 s");
        assert_eq!(duration(7380.0), "2 h 03 m");
        assert_eq!(css_ident("schedule:x<y"), "schedulexy");
    }
}
