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
    // Keys are matched without regard to case (`PWD=`, `Pwd=`, `password=`); a value in
    // braces (`PWD={a;b}}c}`, ODBC style) is hidden up to its closing brace.
    for key in ["password=", "pwd="] {
        let mut search_from = 0;
        while let Some(pos) = out[search_from..].to_ascii_lowercase().find(key) {
            let start = search_from + pos + key.len();
            let end = if out[start..].starts_with('{') {
                braced_value_end(&out, start)
            } else {
                out[start..]
                    .find(['&', ';', ' '])
                    .map(|e| start + e)
                    .unwrap_or(out.len())
            };
            out.replace_range(start..end, "***");
            search_from = start + 3;
        }
    }
    out
}

/// The end (exclusive byte offset) of an ODBC value in braces starting at `start` (which holds
/// `{`): after the closing `}`; `}}` inside the braces is an escaped `}`. Unterminated: the end of
/// the text.
fn braced_value_end(text: &str, start: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'}' {
            if bytes.get(i + 1) == Some(&b'}') {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// The `Key=value` pairs of an ODBC connection string, in order, keys as written, values
/// without their braces (`{ODBC Driver 18 for SQL Server}` → `ODBC Driver 18 for SQL Server`,
/// `}}` → `}`). Empty segments are skipped.
pub fn odbc_pairs(connection_string: &str) -> Vec<(String, String)> {
    odbc_segments(connection_string)
        .into_iter()
        .map(|(key, _, value)| (key, value))
        .collect()
}

/// `(key, raw value as written, value)` of each pair; `None` for a segment without `=`.
type Segment = (String, Option<String>, String);

fn odbc_segments(connection_string: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let text = connection_string;
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let Some(eq) = rest.find(['=', ';']) else {
            if !rest.trim().is_empty() {
                out.push((rest.trim().to_string(), None, String::new()));
            }
            break;
        };
        if rest.as_bytes()[eq] == b';' {
            if !rest[..eq].trim().is_empty() {
                out.push((rest[..eq].trim().to_string(), None, String::new()));
            }
            pos += eq + 1;
            continue;
        }
        let key = rest[..eq].trim().to_string();
        let value_start = pos + eq + 1;
        let lead = text[value_start..].len() - text[value_start..].trim_start().len();
        let open = value_start + lead;
        let (raw_end, value) = if text[open..].starts_with('{') {
            let end = braced_value_end(text, open);
            let close = if end > open + 1 && text[..end].ends_with('}') {
                end - 1
            } else {
                end
            };
            (end, text[open + 1..close].replace("}}", "}"))
        } else {
            let end = text[value_start..]
                .find(';')
                .map(|e| value_start + e)
                .unwrap_or(text.len());
            (end, text[value_start..end].trim().to_string())
        };
        out.push((
            key,
            Some(text[value_start..raw_end].trim().to_string()),
            value,
        ));
        // On to after the next `;` (anything between a closing brace and it is ignored).
        pos = text[raw_end..]
            .find(';')
            .map(|e| raw_end + e + 1)
            .unwrap_or(text.len());
    }
    out
}

/// Whether an ODBC connection-string key holds a secret (`PWD`, `Password`, `SecretKey`,
/// `AccessToken`, …).
pub fn odbc_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["pwd", "pass", "secret", "token", "key", "credential"]
        .iter()
        .any(|w| k.contains(w))
}

/// The values of an ODBC connection string's secret keys ([`odbc_secret_key`]), as written and
/// without braces, for [`scrub`]bing driver messages.
pub fn odbc_secret_values(connection_string: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (key, raw, value) in odbc_segments(connection_string) {
        if odbc_secret_key(&key) {
            for v in [raw.unwrap_or_default(), value] {
                if !v.is_empty() && !out.contains(&v) {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// An ODBC connection string as shown in messages: every pair kept, the values of secret keys
/// replaced by `***` (`Driver={PostgreSQL Unicode};Server=db;UID=app;PWD=***;`).
pub fn redact_odbc(connection_string: &str) -> String {
    let mut out = String::new();
    for (key, raw, _) in odbc_segments(connection_string) {
        out.push_str(&key);
        match raw {
            Some(_) if odbc_secret_key(&key) => out.push_str("=***"),
            Some(raw) => {
                out.push('=');
                out.push_str(&raw);
            }
            None => {}
        }
        out.push(';');
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

/// A key that names a secret (`password`, `azure_storage_account_key`, `X-Api-Key`,
/// `Authorization`, `sas_token`, …).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
        "sas",
        "signature",
        "cookie",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The secrets inside one configured string: the password of a URL (`scheme://user:pass@host`,
/// raw and percent-decoded), values of secret-looking query parameters, and `password=` /
/// `pwd=` pairs of connection strings.
pub fn secrets_in(text: &str, out: &mut Vec<String>) {
    if let Some((_, rest)) = text.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_string());
            let decoded = percent_decode(password);
            if decoded != password {
                out.push(decoded);
            }
        }
    }
    let query = text.split_once('?').map(|(_, q)| q).unwrap_or("");
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && is_secret_key(k)
        {
            out.push(v.to_string());
            out.push(percent_decode(v));
        }
    }
    for part in text.split([';', ' ', '&']) {
        if let Some((k, v)) = part.split_once('=')
            && matches!(k.trim().to_ascii_lowercase().as_str(), "password" | "pwd")
        {
            out.push(v.trim().to_string());
        }
    }
}

/// `%XX` sequences decoded (lossy), for passwords written percent-encoded in URLs.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(b) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secrets among configured keys (a connection's, an object store's options): text values
/// under secret-looking keys ([`is_secret_key`]) at any depth (and the credential after the
/// scheme of `Bearer abc`), and the secrets inside every text value ([`secrets_in`]).
pub fn secrets_in_yaml(key: &str, value: &serde_yaml_ng::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml_ng::Value::String(text) => {
            if is_secret_key(key) {
                out.push(text.clone());
                // `Bearer abc`: the credential alone too.
                if let Some((_, credential)) = text.trim().split_once(' ') {
                    out.push(credential.trim().to_string());
                }
            }
            secrets_in(text, out);
        }
        serde_yaml_ng::Value::Mapping(map) => {
            for (k, v) in map {
                secrets_in_yaml(k.as_str().unwrap_or(key), v, out);
            }
        }
        serde_yaml_ng::Value::Sequence(items) => {
            for v in items {
                secrets_in_yaml(key, v, out);
            }
        }
        serde_yaml_ng::Value::Tagged(tagged) => secrets_in_yaml(key, &tagged.value, out),
        _ => {}
    }
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
    fn password_keys_match_any_case_and_braced_values() {
        let r = redact_url("Driver={Oracle 21 ODBC driver};Dbq=//db:1521/ERP;Uid=app;Pwd=s3cret;");
        assert!(!r.contains("s3cret"), "{r}");
        let r = redact_url("DRIVER=x;PWD={se;cr}}et};UID=u");
        assert_eq!(r, "DRIVER=x;PWD=***;UID=u");
    }

    #[test]
    fn odbc_connection_strings_parse_and_redact() {
        let cs = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433; Database=erp;UID=app;PWD={p;w}}d};Encrypt=yes;";
        assert_eq!(
            odbc_pairs(cs),
            [
                ("Driver", "ODBC Driver 18 for SQL Server"),
                ("Server", "tcp:db,1433"),
                ("Database", "erp"),
                ("UID", "app"),
                ("PWD", "p;w}d"),
                ("Encrypt", "yes"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let shown = redact_odbc(cs);
        assert_eq!(
            shown,
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;Database=erp;UID=app;PWD=***;Encrypt=yes;"
        );
        assert_eq!(odbc_secret_values(cs), ["{p;w}}d}", "p;w}d"]);
        assert_eq!(
            redact_odbc("DSN=erp;Pwd=x1;SecretKey=k2"),
            "DSN=erp;Pwd=***;SecretKey=***;"
        );
        assert_eq!(odbc_secret_values("dsn=erp;password=abc"), ["abc"]);
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

    #[test]
    fn secrets_are_found_in_urls_and_strings() {
        let mut out = Vec::new();
        secrets_in(
            "postgres://app:pa%40ss@db:5432/erp?sslmode=require",
            &mut out,
        );
        secrets_in("https://h/x?api_key=k-123&page=2", &mut out);
        secrets_in("Driver=X;UID=app;PWD=s3cr3t;Server=db", &mut out);
        secrets_in("./landing", &mut out);
        assert_eq!(out, vec!["pa%40ss", "pa@ss", "k-123", "k-123", "s3cr3t"]);
        assert!(is_secret_key("azure_storage_account_key") && is_secret_key("Authorization"));
        assert!(!is_secret_key("azure_storage_use_emulator") && !is_secret_key("Accept"));
    }

    #[test]
    fn secrets_are_found_in_configured_keys_at_any_depth() {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(
            "url: postgres://u:pw1@db/erp\nheaders: { Authorization: Bearer tok-9, Accept: json }\nauth: { type: basic, username: ann, password: pw2 }\nport: 5432\n",
        )
        .unwrap();
        let mut out = Vec::new();
        secrets_in_yaml("", &yaml, &mut out);
        assert_eq!(out, vec!["pw1", "Bearer tok-9", "tok-9", "pw2"]);
    }
}
