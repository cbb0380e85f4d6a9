//! Sending the requests of a REST connection: headers and authentication (bearer, basic,
//! API key, OAuth 2.0 client credentials with a cached token), the rate limit, retries with
//! `Retry-After`, and errors without secrets.
//!
//! The rate limiter and the OAuth 2.0 token are shared by every table of a connection in this
//! process (a run loads several resources of one API at once), keyed by the connection's
//! name, base URL and credentials.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::rest::connection::{
    ApiKeyLocation, ClientAuth, DEFAULT_RETRIES, DEFAULT_TIMEOUT, RestAuth, RestConnection,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use tracing::{info, warn};
use tributary_core::redact::scrub;
use tributary_core::{ErrorClass, SourceError};
use url::Url;

use crate::http::{error_text, quoted_body, retry_after, shown};

/// Largest response body read (one page).
pub(crate) const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Longest wait honoured from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// First backoff after a failed attempt without `Retry-After`; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A successful response, read whole.
pub(crate) struct Fetched {
    /// The status (2xx).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// The requests of one REST connection.
pub(crate) struct Client {
    connection: String,
    http: reqwest::Client,
    base_url: Url,
    headers: HeaderMap,
    auth: Option<RestAuth>,
    retries: u32,
    shared: Arc<Shared>,
    /// Configured secret values, longest first.
    secrets: Vec<String>,
}

/// What the tables of one connection share in this process.
struct Shared {
    limiter: Option<RateLimiter>,
    token: tokio::sync::Mutex<Option<Token>>,
}

/// An OAuth 2.0 access token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    refresh_at: Option<Instant>,
}

impl Token {
    fn fresh(&self) -> bool {
        self.refresh_at.is_none_or(|at| Instant::now() < at)
    }
}

/// At most one request per `interval`.
struct RateLimiter {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    async fn acquire(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        if *next > now {
            tokio::time::sleep_until(*next).await;
        }
        *next = (*next).max(now) + self.interval;
    }
}

/// The shared state of connection `key`, created on first use.
fn shared_state(key: String, rate_limit: Option<f64>) -> Arc<Shared> {
    static ALL: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    all.entry(key)
        .or_insert_with(|| {
            Arc::new(Shared {
                limiter: rate_limit.map(|r| RateLimiter {
                    interval: Duration::from_secs_f64(1.0 / r),
                    next: tokio::sync::Mutex::new(Instant::now()),
                }),
                token: tokio::sync::Mutex::new(None),
            })
        })
        .clone()
}

/// Why one attempt failed.
struct Attempt {
    status: Option<StatusCode>,
    text: String,
    /// What kind of failure, decided here from the status or the HTTP client's error; a retry
    /// is tried when the class is retryable.
    class: ErrorClass,
    wait: Option<Duration>,
}

impl Client {
    /// The client of connection `connection`. Fails on settings that cannot work (a URL that
    /// does not parse, a header value that is not visible ASCII), naming the key.
    pub(crate) fn new(connection: &str, config: &RestConnection) -> Result<Client, SourceError> {
        let config_error = |reason: String| SourceError::Connect {
            connection: connection.to_string(),
            target: tributary_core::redact::display_url(&config.base_url),
            reason,
            class: ErrorClass::Config,
        };
        let base_url = Url::parse(&config.base_url).map_err(|e| {
            config_error(format!(
                "base_url is not a valid URL ({e}); write e.g. `https://api.example.com/v1`"
            ))
        })?;
        let timeout = config
            .timeout
            .unwrap_or(DEFAULT_TIMEOUT)
            .std()
            .max(Duration::from_micros(1));
        let mut headers = crate::http::sensitive_headers(&config.headers)
            .map_err(|e| config_error(format!("headers: {e}")))?;
        if let Some(RestAuth::ApiKey {
            name,
            value,
            location: ApiKeyLocation::Header,
        }) = &config.auth
        {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                config_error(format!("auth.name: `{name}` is not a valid header name"))
            })?;
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                config_error("auth.value is not a valid header value (visible ASCII only)".into())
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let origin = base_url.origin();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // Credentials are in headers: follow redirects only on the API's own server.
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > 10 {
                    attempt.error("more than 10 redirects")
                } else if attempt.url().origin() == origin {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| config_error(format!("cannot set up the HTTP client: {e}")))?;
        let mut secrets: Vec<String> = config.headers.values().cloned().collect();
        if let Some(auth) = &config.auth {
            secrets.extend(auth.secrets().into_iter().map(str::to_string));
            if let RestAuth::Basic { username, password } = auth {
                // What goes over the wire.
                secrets.push(base64(&format!("{username}:{}", password.expose())));
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        config.base_url.hash(&mut hasher);
        if let Some(RestAuth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scopes,
            ..
        }) = &config.auth
        {
            (token_url, client_id, client_secret, scopes).hash(&mut hasher);
        }
        let key = format!(
            "{connection}\n{:x}\n{:?}",
            hasher.finish(),
            config.rate_limit
        );
        Ok(Client {
            connection: connection.to_string(),
            http,
            base_url,
            headers,
            auth: config.auth.clone(),
            retries: config.retries.unwrap_or(DEFAULT_RETRIES),
            shared: shared_state(key, config.rate_limit),
            secrets,
        })
    }

    /// The connection's base URL.
    pub(crate) fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// The connection's name.
    pub(crate) fn connection(&self) -> &str {
        &self.connection
    }

    /// `path` appended to the base URL (`https://h/v1` + `/items` = `https://h/v1/items`).
    pub(crate) fn resolve(&self, path: &str) -> Result<Url, SourceError> {
        let base = self.base_url.as_str();
        let joined = if path.is_empty() {
            base.to_string()
        } else {
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                path.trim_start_matches('/')
            )
        };
        Url::parse(&joined).map_err(|e| SourceError::Config {
            table: path.to_string(),
            reason: format!("`{path}` does not make a valid URL with the base_url ({e})"),
        })
    }

    /// Replace configured secrets (and `extra`) with `***`.
    pub(crate) fn scrub(&self, text: &str, extra: Option<&str>) -> String {
        let mut secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        if let Some(e) = extra {
            secrets.insert(0, e);
        }
        scrub(text, &secrets)
    }

    /// GET `url` with the connection's headers and authentication, within the rate limit,
    /// retrying what may pass on a retry. `during` says what the request is for (errors and
    /// logs).
    pub(crate) async fn get(&self, url: &Url, during: &str) -> Result<Fetched, SourceError> {
        let oauth = matches!(self.auth, Some(RestAuth::Oauth2 { .. }));
        let mut url = url.clone();
        if let Some(RestAuth::ApiKey {
            name,
            value,
            location: ApiKeyLocation::Query,
        }) = &self.auth
        {
            set_query(&mut url, name, value.expose());
        }
        let request = format!("GET {}", shown(&url));
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            let token = if oauth {
                Some(self.token(during).await?)
            } else {
                None
            };
            if let Some(limiter) = &self.shared.limiter {
                limiter.acquire().await;
            }
            let mut builder = self
                .http
                .request(Method::GET, url.clone())
                .headers(self.headers.clone());
            match &self.auth {
                Some(RestAuth::Bearer { token }) => builder = builder.bearer_auth(token.expose()),
                Some(RestAuth::Basic { username, password }) => {
                    builder = builder.basic_auth(username, Some(password.expose()))
                }
                _ => {}
            }
            if let Some(t) = &token {
                builder = builder.bearer_auth(t);
            }
            let failed = match self.attempt(builder, token.as_deref()).await {
                Ok(fetched) => return Ok(fetched),
                Err(f) => f,
            };
            if failed.status == Some(StatusCode::UNAUTHORIZED)
                && !refreshed
                && let Some(stale) = &token
            {
                // The token expired early or was revoked: get a new one, once per request.
                refreshed = true;
                self.forget_token(stale).await;
                info!(connection = %self.connection, request = %request, "The API answered 401; requesting a new OAuth2 token.");
                continue;
            }
            if !failed.class.is_retryable() || attempt >= self.retries {
                return Err(self.failure(during, &request, failed, attempt));
            }
            let wait = failed
                .wait
                .map(|w| w.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(attempt));
            attempt += 1;
            warn!(connection = %self.connection, request = %request, during = %during, error = %failed.text, attempt, retries = self.retries, wait_ms = wait.as_millis() as u64, "Request failed; retrying.");
            tokio::time::sleep(wait).await;
        }
    }

    /// Send one request and read the whole body of a success.
    async fn attempt(
        &self,
        builder: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Result<Fetched, Attempt> {
        let secrets = self.secret_list(token);
        let response = builder.send().await.map_err(|e| Attempt {
            status: None,
            class: send_error_class(&e),
            text: error_text(e, &secrets),
            wait: None,
        })?;
        let status = response.status();
        if !status.is_success() {
            let wait = retry_after(response.headers());
            let body = quoted_body(response, &secrets).await;
            let mut text = format!("returned {status}");
            if !body.is_empty() {
                text.push_str(": ");
                text.push_str(&body);
            }
            return Err(Attempt {
                status: Some(status),
                class: ErrorClass::of_http_status(status.as_u16()),
                text,
                wait,
            });
        }
        let headers = response.headers().clone();
        let body = read_body(response, &secrets).await?;
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }

    fn secret_list<'a>(&'a self, token: Option<&'a str>) -> Vec<&'a str> {
        let mut secrets: Vec<&str> = token.into_iter().collect();
        secrets.extend(self.secrets.iter().map(String::as_str));
        secrets
    }

    fn failure(&self, during: &str, request: &str, f: Attempt, retries_done: u32) -> SourceError {
        let mut reason = f.text;
        if retries_done > 0 {
            reason.push_str(&format!(
                " (after {retries_done} retr{})",
                if retries_done == 1 { "y" } else { "ies" }
            ));
        }
        match f.status.map(|s| s.as_u16()) {
            Some(401 | 403) => reason.push_str(&format!(
                "; check the credentials of connection `{}` (`auth`{})",
                self.connection,
                self.auth
                    .as_ref()
                    .map(|a| format!(": {}", a.kind()))
                    .unwrap_or_else(|| " is not set".into())
            )),
            Some(404) => reason.push_str("; check the connection's base_url and the table's path"),
            _ => {}
        }
        SourceError::Http {
            connection: self.connection.clone(),
            during: during.to_string(),
            request: request.to_string(),
            status: f.status.map(|s| s.as_u16()),
            reason,
            class: f.class,
        }
    }

    /// The current OAuth 2.0 token, requesting one when there is none or it is about to
    /// expire. Concurrent callers wait for one request.
    async fn token(&self, during: &str) -> Result<String, SourceError> {
        let mut cached = self.shared.token.lock().await;
        if let Some(t) = cached.as_ref()
            && t.fresh()
        {
            return Ok(t.value.clone());
        }
        // Boxed: the token request is itself a request with retries.
        let fresh: Token = Box::pin(self.fetch_token(during)).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Drop the cached token if it is still `stale` (another request may have replaced it).
    async fn forget_token(&self, stale: &str) {
        let mut cached = self.shared.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == stale) {
            *cached = None;
        }
    }

    /// POST the client credentials to the token endpoint.
    async fn fetch_token(&self, during: &str) -> Result<Token, SourceError> {
        let Some(RestAuth::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scopes,
            client_auth,
        }) = &self.auth
        else {
            return Err(SourceError::Internal(
                "an OAuth2 token was requested without oauth2 auth".into(),
            ));
        };
        let url = Url::parse(token_url).map_err(|e| SourceError::Connect {
            connection: self.connection.clone(),
            target: tributary_core::redact::display_url(token_url),
            reason: format!("auth.token_url is not a valid URL ({e})"),
            class: ErrorClass::Config,
        })?;
        let request = format!("POST {}", shown(&url));
        let token_during = format!("OAuth2 token request, for {during}");
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        let scope = scopes.join(" ");
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if *client_auth == ClientAuth::Body {
            form.push(("client_id", client_id));
            form.push(("client_secret", client_secret.expose()));
        }
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let mut builder = self.http.post(url.clone()).form(&form);
            if *client_auth == ClientAuth::Basic {
                builder = builder.basic_auth(client_id, Some(client_secret.expose()));
            }
            let failed = match self.attempt(builder, None).await {
                Ok(fetched) => {
                    return self.parse_token(&fetched.body, started, &token_during, &request);
                }
                Err(f) => f,
            };
            if !failed.class.is_retryable() || attempt >= self.retries {
                let mut e = self.failure(&token_during, &request, failed, attempt);
                if let SourceError::Http {
                    status: Some(400 | 401 | 403),
                    reason,
                    class,
                    ..
                } = &mut e
                {
                    // RFC 6749 answers a bad client or grant with 400 (`invalid_client`,
                    // `invalid_grant`): for a token request that is a credential problem.
                    *class = ErrorClass::Auth;
                    reason.push_str(
                        "; check auth.client_id, auth.client_secret, auth.scopes and auth.client_auth",
                    );
                }
                return Err(e);
            }
            let wait = failed
                .wait
                .map(|w| w.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(attempt));
            attempt += 1;
            warn!(connection = %self.connection, request = %request, error = %failed.text, attempt, wait_ms = wait.as_millis() as u64, "Token request failed; retrying.");
            tokio::time::sleep(wait).await;
        }
    }

    fn parse_token(
        &self,
        body: &[u8],
        requested_at: Instant,
        during: &str,
        request: &str,
    ) -> Result<Token, SourceError> {
        let bad = |reason: String| SourceError::BadResponse {
            connection: self.connection.clone(),
            during: during.to_string(),
            request: request.to_string(),
            reason,
        };
        let json: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("the token response is not JSON ({e})")))?;
        let value = json
            .get("access_token")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("the token response has no `access_token`".into()))?
            .to_string();
        let lifetime = json.get("expires_in").and_then(|v| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        });
        // Refresh a little before the end: a tenth of the lifetime, at most a minute.
        let refresh_at = lifetime
            .filter(|s| s.is_finite() && *s >= 0.0)
            .and_then(|secs| {
                let life = Duration::from_secs_f64(secs.min(1e9));
                requested_at.checked_add(life - (life / 10).min(Duration::from_secs(60)))
            });
        info!(connection = %self.connection, expires_in = lifetime.unwrap_or(-1.0), "Got an OAuth2 token.");
        Ok(Token { value, refresh_at })
    }
}

/// Read a successful response's body, at most [`MAX_BODY_BYTES`].
async fn read_body(mut response: reqwest::Response, secrets: &[&str]) -> Result<Vec<u8>, Attempt> {
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map(|l| l.min(MAX_BODY_BYTES as u64) as usize)
            .unwrap_or(64 * 1024),
    );
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_BODY_BYTES {
                    return Err(Attempt {
                        status: None,
                        class: ErrorClass::Config,
                        text: format!(
                            "the response is larger than {} MiB; request smaller pages (pagination)",
                            MAX_BODY_BYTES / 1024 / 1024
                        ),
                        wait: None,
                    });
                }
            }
            Ok(None) => return Ok(body),
            // The connection broke while the body was read.
            Err(e) => {
                return Err(Attempt {
                    status: None,
                    class: ErrorClass::Connection,
                    text: format!("reading the response failed: {}", error_text(e, secrets)),
                    wait: None,
                });
            }
        }
    }
}

/// The class of a request that got no response: a timeout, a request that could not be built
/// (configuration), else a connection problem.
fn send_error_class(e: &reqwest::Error) -> ErrorClass {
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_builder() {
        ErrorClass::Config
    } else {
        ErrorClass::Connection
    }
}

/// The wait before retry `attempt + 1` when the server did not say.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(MAX_BACKOFF)
}

/// Set query parameter `key` to `value`, replacing any value it had.
pub(crate) fn set_query(url: &mut Url, key: &str, value: &str) {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != key)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut q = url.query_pairs_mut();
    q.clear();
    for (k, v) in &pairs {
        q.append_pair(k, v);
    }
    q.append_pair(key, value);
}

/// Standard base64 (for recognising basic credentials in messages).
fn base64(s: &str) -> String {
    STANDARD.encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(""), "");
        assert_eq!(base64("f"), "Zg==");
        assert_eq!(base64("fo"), "Zm8=");
        assert_eq!(base64("foo"), "Zm9v");
        assert_eq!(base64("user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }

    #[test]
    fn set_query_replaces() {
        let mut u = Url::parse("http://h/p?a=1&b=2&a=3").unwrap();
        set_query(&mut u, "a", "x y");
        assert_eq!(u.as_str(), "http://h/p?b=2&a=x+y");
    }
}
