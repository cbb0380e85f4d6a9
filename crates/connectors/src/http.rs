//! HTTP pieces shared by the REST connector and the orchestrator's `http` task: how URLs and
//! errors are shown without secrets, `Retry-After`, and quoting a failed response's body.

use std::time::Duration;

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use tributary_core::redact::scrub;

pub use tributary_core::redact::display_parsed_url as shown;

/// Characters of a failed response's body quoted in an error.
pub const QUOTED_BODY_CHARS: usize = 300;

/// Configured headers as a [`HeaderMap`] whose values are marked sensitive (never printed by
/// the HTTP stack). The error names the header (never its value) and what is wrong.
pub fn sensitive_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("`{k}` is not a valid header name"))?;
        let mut value = HeaderValue::from_str(v).map_err(|_| {
            format!("the value of `{k}` is not a valid header value (only visible ASCII)")
        })?;
        value.set_sensitive(true);
        out.insert(name, value);
    }
    Ok(out)
}

/// `Retry-After`: seconds, or an HTTP date (a date in the past is no wait).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A request error as text, with its causes (`error sending request: connection refused`),
/// without the URL (whose query may hold a key) and with `secrets` replaced by `***`.
pub fn error_text(e: reqwest::Error, secrets: &[&str]) -> String {
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.contains(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    scrub(&reason, secrets)
}

/// The start of a response body ([`QUOTED_BODY_CHARS`] characters at most), with `secrets`
/// replaced by `***`, for an error message. Empty when the body is empty or unreadable.
pub async fn quoted_body(mut response: reqwest::Response, secrets: &[&str]) -> String {
    let longest_secret = secrets.iter().map(|s| s.len()).max().unwrap_or(0);
    // Enough bytes for the quoted characters plus a secret that starts among them.
    let limit = QUOTED_BODY_CHARS * 4 + longest_secret;
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    quote_bytes(&bytes, bytes.len() >= limit, secrets)
}

/// [`quoted_body`] of bytes already read; `cut` says there was more.
pub fn quote_bytes(bytes: &[u8], cut: bool, secrets: &[&str]) -> String {
    let text = scrub(&String::from_utf8_lossy(bytes), secrets);
    let mut quoted: String = text.trim().chars().take(QUOTED_BODY_CHARS).collect();
    if text.trim().chars().count() > QUOTED_BODY_CHARS || cut {
        quoted.push('…');
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&h).unwrap_or_default();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn quoting_scrubs_and_cuts() {
        let body = format!("token abc123 {}", "x".repeat(400));
        let q = quote_bytes(body.as_bytes(), false, &["abc123"]);
        assert!(q.starts_with("token *** x"), "{q}");
        assert!(q.ends_with('…'));
        assert_eq!(q.chars().count(), QUOTED_BODY_CHARS + 1);
    }
}
