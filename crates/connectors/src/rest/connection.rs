//! Configuration of REST API sources: the `type: rest` connection in `tributary.yaml` and the
//! REST-only table options of `ingest/*.yaml` (`path`, `params`, `records`, `pagination`,
//! `cursor_param`, `nested`).
//!
//! Secrets (tokens, passwords, API keys, client secrets) come from `${env:…}`; they are never
//! printed: [`RestAuth`]'s `Debug` masks them, and the connector removes them from every
//! message it produces.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use tributary_core::jsonpath::JsonPath;
use tributary_core::values::{Duration, Secret};

/// A `type: rest` connection.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestConnection {
    /// The API's base URL (`https://api.example.com/v1`); table `path`s are relative to it.
    pub base_url: String,
    /// Headers sent with every request (e.g. `Accept`, a tenant id). Values may use
    /// `${env:…}`; they are never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How requests authenticate: `bearer`, `basic`, `api_key` or `oauth2` (client
    /// credentials). None by default.
    #[serde(default)]
    pub auth: Option<RestAuth>,
    /// At most this many requests per second to this API, over all of its tables (token
    /// requests excluded). Unlimited by default.
    #[serde(default)]
    pub rate_limit: Option<f64>,
    /// Timeout of each request (`30s`, `2m`). Default `30s`.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Retries of a request that failed with 429, 408, 5xx or a connection error or timeout,
    /// after waiting `Retry-After` (when the response has one) or an exponential backoff
    /// (0.5 s, 1 s, 2 s, … up to 30 s). Default 3.
    #[serde(default)]
    pub retries: Option<u32>,
    /// The path (relative to `base_url`) that `tributary validate --connections` requests to
    /// check the URL and credentials; default the base URL itself.
    #[serde(default)]
    pub check_path: Option<String>,
}

impl fmt::Debug for RestConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestConnection")
            .field(
                "base_url",
                &tributary_core::redact::display_url(&self.base_url),
            )
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .field("rate_limit", &self.rate_limit)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("check_path", &self.check_path)
            .finish()
    }
}

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default retries per request.
pub const DEFAULT_RETRIES: u32 = 3;

/// How REST requests authenticate.
#[derive(Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RestAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token; use `${env:…}`.
        token: Secret,
    },
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password; use `${env:…}`.
        password: Secret,
    },
    /// An API key in a header or a query parameter.
    ApiKey {
        /// The header or query parameter name (`X-API-Key`, `api_key`).
        name: String,
        /// The key; use `${env:…}`.
        value: Secret,
        /// `header` (default) or `query`.
        #[serde(rename = "in", default)]
        location: ApiKeyLocation,
    },
    /// OAuth 2.0 client credentials: a token from `token_url`, cached, refreshed before it
    /// expires and once more when the API answers 401.
    Oauth2 {
        /// The token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret; use `${env:…}`.
        client_secret: Secret,
        /// Scopes requested (sent space-separated as `scope`).
        #[serde(default)]
        scopes: Vec<String>,
        /// How the client authenticates to the token endpoint: `basic` (default: HTTP basic
        /// with id and secret) or `body` (`client_id` and `client_secret` form fields).
        #[serde(default)]
        client_auth: ClientAuth,
    },
}

impl RestAuth {
    /// The configured secret values (for scrubbing messages).
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            RestAuth::Bearer { token } => vec![token.expose()],
            RestAuth::Basic { password, .. } => vec![password.expose()],
            RestAuth::ApiKey { value, .. } => vec![value.expose()],
            RestAuth::Oauth2 { client_secret, .. } => vec![client_secret.expose()],
        }
    }

    /// The name as written (`bearer`, `basic`, `api_key`, `oauth2`).
    pub fn kind(&self) -> &'static str {
        match self {
            RestAuth::Bearer { .. } => "bearer",
            RestAuth::Basic { .. } => "basic",
            RestAuth::ApiKey { .. } => "api_key",
            RestAuth::Oauth2 { .. } => "oauth2",
        }
    }
}

impl fmt::Debug for RestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestAuth::Bearer { .. } => f.write_str("Bearer { token: *** }"),
            RestAuth::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: *** }}")
            }
            RestAuth::ApiKey { name, location, .. } => write!(
                f,
                "ApiKey {{ name: {name:?}, value: ***, in: {location:?} }}"
            ),
            RestAuth::Oauth2 {
                token_url,
                client_id,
                scopes,
                client_auth,
                ..
            } => write!(
                f,
                "Oauth2 {{ token_url: {:?}, client_id: {client_id:?}, client_secret: ***, scopes: {scopes:?}, client_auth: {client_auth:?} }}",
                tributary_core::redact::display_url(token_url)
            ),
        }
    }
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyLocation {
    /// A request header.
    #[default]
    Header,
    /// A query parameter.
    Query,
}

/// How an OAuth 2.0 client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP basic authentication with client id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// How a resource's pages are requested, and when the last page has been read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request.
    None,
    /// `?<offset_param>=0&<limit_param>=<limit>`, then offset `limit`, `2*limit`, …; stops at a
    /// page with fewer than `limit` records.
    Offset {
        /// Default `limit`.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Default `offset`.
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// Records per page. Default 100.
        #[serde(default = "default_page_size")]
        limit: u64,
    },
    /// `?<page_param>=<start>&<size_param>=<size>`, then the next page numbers; stops at an
    /// empty page, or one with fewer than `size` records when `size` is set.
    Page {
        /// Default `page`.
        #[serde(default = "default_page_param")]
        page_param: String,
        /// The page-size parameter, sent when `size` is set. Default `per_page`.
        #[serde(default = "default_size_param")]
        size_param: String,
        /// Records per page; unset sends no size and stops at the first empty page.
        #[serde(default)]
        size: Option<u64>,
        /// Number of the first page. Default 1.
        #[serde(default = "default_start")]
        start: u64,
    },
    /// The next page's cursor is in the response body at `cursor_path`, and is sent back as
    /// `?<cursor_param>=<value>`; stops when it is missing, null or empty.
    Cursor {
        /// Where the next cursor is in the response (`$.meta.next_cursor`).
        cursor_path: String,
        /// The query parameter that carries it.
        cursor_param: String,
    },
    /// The next page's URL (absolute, or relative to the current one) is in the response body
    /// at `next_url_path`; stops when it is missing, null or empty.
    NextUrl {
        /// Where the next URL is in the response (`$.links.next`).
        next_url_path: String,
    },
    /// The next page's URL is the `Link` response header's `rel="next"` (RFC 8288, as
    /// GitHub and json-server send it); stops when there is none.
    LinkHeader,
}

fn default_limit_param() -> String {
    "limit".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_size_param() -> String {
    "per_page".into()
}
fn default_page_size() -> u64 {
    100
}
fn default_start() -> u64 {
    1
}

impl Pagination {
    /// The name as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Pagination::None => "none",
            Pagination::Offset { .. } => "offset",
            Pagination::Page { .. } => "page",
            Pagination::Cursor { .. } => "cursor",
            Pagination::NextUrl { .. } => "next_url",
            Pagination::LinkHeader => "link_header",
        }
    }

    /// Problems with the values, as (key under `pagination`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match self {
            Pagination::Offset { limit, .. } if *limit == 0 => {
                out.push(("limit".into(), "the page size must be at least 1".into()))
            }
            Pagination::Page { size: Some(0), .. } => {
                out.push(("size".into(), "the page size must be at least 1".into()))
            }
            Pagination::Cursor { cursor_path, .. } => {
                if let Err(e) = JsonPath::parse(cursor_path) {
                    out.push(("cursor_path".into(), e));
                }
            }
            Pagination::NextUrl { next_url_path } => {
                if let Err(e) = JsonPath::parse(next_url_path) {
                    out.push(("next_url_path".into(), e));
                }
            }
            _ => {}
        }
        out
    }
}

/// How nested JSON (objects and arrays inside a record) is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NestedMode {
    /// Objects become struct columns, arrays list columns (default).
    #[default]
    Structs,
    /// Top-level fields holding an object or array become text columns with the JSON as
    /// written by the API.
    Json,
}

/// Query parameters as written: any scalar YAML value (`limit: 100`, `active: true`) is
/// sent as its text.
pub fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Scalar::S(s) => s,
                Scalar::I(i) => i.to_string(),
                Scalar::U(u) => u.to_string(),
                Scalar::F(f) => f.to_string(),
                Scalar::B(b) => b.to_string(),
            };
            (k, text)
        })
        .collect())
}

impl RestConnection {
    /// Problems with the values, as (key under the connection, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let known = |v: &str| !v.contains("${");
        if known(&self.base_url) {
            match url::Url::parse(&self.base_url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                Ok(u) => out.push((
                    "base_url".into(),
                    format!("the scheme must be http or https, not `{}`", u.scheme()),
                )),
                Err(e) => out.push((
                    "base_url".into(),
                    format!("not a valid URL ({e}); write e.g. `https://api.example.com/v1`"),
                )),
            }
        }
        for name in self.headers.keys() {
            if !is_token(name) {
                out.push((
                    format!("headers.{name}"),
                    format!("`{name}` is not a valid header name"),
                ));
            }
        }
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r > 0.0)
        {
            out.push((
                "rate_limit".into(),
                "rate_limit is requests per second and must be more than 0 (e.g. 5 or 0.5)".into(),
            ));
        }
        if self.timeout.is_some_and(|t| t.micros() == 0) {
            out.push(("timeout".into(), "the timeout must be more than 0".into()));
        }
        match &self.auth {
            Some(RestAuth::ApiKey { name, location, .. })
                if *location == ApiKeyLocation::Header && !is_token(name) =>
            {
                out.push((
                    "auth.name".into(),
                    format!("`{name}` is not a valid header name"),
                ))
            }
            Some(RestAuth::Oauth2 { token_url, .. }) if known(token_url) => {
                match url::Url::parse(token_url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => out.push((
                        "auth.token_url".into(),
                        "not a valid http(s) URL".to_string(),
                    )),
                }
            }
            _ => {}
        }
        out
    }
}

/// An HTTP token (header names): visible ASCII without separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_secrets() {
        let auth: RestAuth = serde_yaml_ng::from_str(
            "{type: oauth2, token_url: 'http://h/t', client_id: c, client_secret: s3cr3t-value}",
        )
        .unwrap();
        let shown = format!("{auth:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        let auth: RestAuth =
            serde_yaml_ng::from_str("{type: api_key, name: key, value: k3y-value, in: query}")
                .unwrap();
        assert!(!format!("{auth:?}").contains("k3y-value"));
    }

    #[test]
    fn pagination_forms() {
        let p: Pagination = serde_yaml_ng::from_str("{type: offset, limit: 50}").unwrap();
        assert_eq!(
            p,
            Pagination::Offset {
                limit_param: "limit".into(),
                offset_param: "offset".into(),
                limit: 50
            }
        );
        let p: Pagination = serde_yaml_ng::from_str("{type: link_header}").unwrap();
        assert_eq!(p, Pagination::LinkHeader);
        let p: Pagination = serde_yaml_ng::from_str("{type: none}").unwrap();
        assert_eq!(p, Pagination::None);
        let e =
            serde_yaml_ng::from_str::<Pagination>("{type: cursor, cursor_path: a}").unwrap_err();
        assert!(e.to_string().contains("cursor_param"), "{e}");
        let p: Pagination =
            serde_yaml_ng::from_str("{type: next_url, next_url_path: 'a..b'}").unwrap();
        assert_eq!(p.problems()[0].0, "next_url_path");
    }
}
