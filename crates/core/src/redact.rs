//! Keeping secrets out of messages.
//!
//! Connection URLs may carry a password (`postgres://app:s3cret@db/erp`). Everything that prints a
//! URL — errors, logs, the `validate` report — goes through [`redact_url`] first.

/// Replace the password (and any `password=` query or key-value parameter) of a connection string
/// with `***`. Strings that are not URLs are scanned for `password=` pairs only.
pub fn redact_url(raw: &str) -> String {
    let mut out = match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            // set_password only fails for cannot-be-a-base URLs, which have no password.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => raw.to_string(),
    };
    for key in ["password=", "pwd=", "PWD=", "Password=", "PASSWORD="] {
        let mut search_from = 0;
        while let Some(pos) = out[search_from..].find(key) {
            let start = search_from + pos + key.len();
            let end = out[start..]
                .find(['&', ';', ' '])
                .map(|e| start + e)
                .unwrap_or(out.len());
            out.replace_range(start..end, "***");
            search_from = start + 3;
        }
    }
    out
}

/// A URL as shown in logs and errors: scheme, host, port and path only. User information,
/// the query string (which may carry an API key) and the fragment are left out. Text that is
/// not a URL is cut at its first `?` and has its `password=` pairs hidden.
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(url) => display_parsed_url(&url),
        Err(_) => redact_url(raw.split(['?', '#']).next().unwrap_or_default()),
    }
}

/// [`display_url`] of a parsed URL.
pub fn display_parsed_url(url: &url::Url) -> String {
    let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path());
    out
}

/// Remove every occurrence of the given secret values from a message. Used on errors that come
/// back from drivers, which sometimes echo the connection string they were given.
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        if secret.len() >= 3 {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_hidden() {
        let r = redact_url("postgres://app:s3cret@db.example:5432/erp");
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("app:***@db.example"), "{r}");
    }

    #[test]
    fn key_value_password_is_hidden() {
        let r = redact_url("Driver=X;Server=db;UID=app;PWD=s3cret;Database=erp");
        assert_eq!(r, "Driver=X;Server=db;UID=app;PWD=***;Database=erp");
        let r = redact_url("host=db user=app password=s3cret dbname=erp");
        assert_eq!(r, "host=db user=app password=*** dbname=erp");
    }

    #[test]
    fn displayed_urls_have_no_credentials_or_query() {
        assert_eq!(
            display_url("https://user:pw@example.com:8443/a/b?token=s3cret#f"),
            "https://example.com:8443/a/b"
        );
        assert_eq!(display_url("not a url?key=v"), "not a url");
    }

    #[test]
    fn scrub_removes_secret_values() {
        assert_eq!(
            scrub("bad token abc123 here", &["abc123"]),
            "bad token *** here"
        );
    }
}
