//! The checks every request passes before reaching a route: host (loopback binds), token (a
//! bearer header, or the session cookie a browser gets from `?token=`), origin, content type and
//! CSRF token of state-changing requests; and the security headers of every response.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::debug;

use crate::AppState;
use crate::api::error;

/// The only route answered without the token.
const OPEN_PATHS: [&str; 1] = ["/health"];

/// The session cookie set by `?token=`.
pub(crate) const SESSION_COOKIE: &str = "tributary_session";

/// The header carrying the CSRF token of cookie-authenticated state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-tributary-csrf";

/// The Content-Security-Policy of every response: nothing from elsewhere, no inline script or
/// style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How a request proved it may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No token is configured (loopback only): everything is open.
    Open,
    /// `Authorization: Bearer TOKEN`.
    Bearer,
    /// The session cookie (a browser): state changes need the CSRF token too.
    Cookie,
    /// Neither.
    Refused,
}

/// What the guard checks against.
pub(crate) struct Security {
    token: Option<String>,
    /// Bound to a loopback address: requests must name a loopback host.
    loopback: bool,
    /// The session cookie's value: random, for this server process.
    session: String,
    /// The CSRF token pages embed: random, for this server process.
    csrf: String,
}

/// 244 random bits as 64 hex digits (two v4 UUIDs: the OS's random source).
fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Security {
    pub(crate) fn new(local_addr: SocketAddr, token: Option<String>) -> Security {
        Security {
            token: token.filter(|t| !t.trim().is_empty()),
            loopback: local_addr.ip().is_loopback(),
            session: random_secret(),
            csrf: random_secret(),
        }
    }

    /// The CSRF token pages embed for their state-changing requests.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a token is configured (then the pages are behind it).
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `message` without the token in it (for messages that come from elsewhere).
    pub(crate) fn scrub(&self, message: &str) -> String {
        match &self.token {
            Some(t) => tributary_core::redact::scrub(message, &[t.as_str()]),
            None => message.to_string(),
        }
    }

    /// The request may be answered (bearer token or session cookie, or no token configured).
    #[cfg(test)]
    fn authorized(&self, headers: &HeaderMap) -> bool {
        self.auth(headers) != Auth::Refused
    }

    /// `given` is the token (constant time; only the length can show).
    fn is_token(&self, given: &str) -> bool {
        match &self.token {
            None => true,
            Some(expected) => bool::from(given.as_bytes().ct_eq(expected.as_bytes())),
        }
    }

    /// How the request authenticates: the bearer header first, then the session cookie.
    fn auth(&self, headers: &HeaderMap) -> Auth {
        if self.token.is_none() {
            return Auth::Open;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        if let Some(given) = bearer {
            return if self.is_token(given) {
                Auth::Bearer
            } else {
                Auth::Refused
            };
        }
        let cookie_ok = cookie_values(headers, SESSION_COOKIE)
            .any(|v| bool::from(v.as_bytes().ct_eq(self.session.as_bytes())));
        if cookie_ok {
            Auth::Cookie
        } else {
            Auth::Refused
        }
    }

    /// The CSRF header carries this server's CSRF token.
    fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| bool::from(v.trim().as_bytes().ct_eq(self.csrf.as_bytes())))
    }
}

/// The values of cookie `name` in every `Cookie` header.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

/// Decode one `application/x-www-form-urlencoded` component.
fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// A `?token=` in the query: the token given, and the query without it.
fn token_in_query(query: Option<&str>) -> Option<(String, String)> {
    let query = query?;
    let mut token = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("token", v)) => token = Some(form_decode(v)),
            _ if pair == "token" => token = Some(String::new()),
            _ => rest.push(pair),
        }
    }
    token.map(|t| (t, rest.join("&")))
}

/// The client prefers HTML (a browser navigating).
fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// 401: JSON for programs; for a browser, a page saying how to sign in.
fn unauthorized(headers: &HeaderMap) -> Response {
    let mut response = if wants_html(headers) {
        (
            StatusCode::UNAUTHORIZED,
            axum::response::Html(crate::dashboard::templates::SIGN_IN),
        )
            .into_response()
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token; send `Authorization: Bearer TOKEN` with the serve.token of tributary.yaml (browsers: open the page once with ?token=TOKEN)",
        )
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"tributary\""),
    );
    response
}

/// The headers every response carries.
fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

/// `host[:port]` → host (without brackets for IPv6).
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

/// The `Origin` header, if any, is this server as the browser reached it (`Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// The middleware: refuse what fails a check, pass the rest on; add the security headers.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    secure_headers(check(state, req, next).await)
}

async fn check(state: AppState, req: Request, next: Next) -> Response {
    let security = &state.security;
    let headers = req.headers();
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    if security.loopback
        && let Some(host) = headers.get(header::HOST)
        && !host
            .to_str()
            .map(|h| is_loopback_host(host_name(h)))
            .unwrap_or(false)
    {
        debug!(method = %method, path = %path, "Request refused: not a loopback Host.");
        return error(
            StatusCode::FORBIDDEN,
            "this server listens on a loopback address; reach it as localhost or 127.0.0.1",
        );
    }
    // A browser signing in: `?token=` becomes the session cookie, and the token leaves the
    // address bar (and history) through a redirect.
    if matches!(method, Method::GET | Method::HEAD)
        && let Some((given, rest)) = token_in_query(req.uri().query())
    {
        if !security.is_token(&given) {
            debug!(method = %method, path = %path, "Sign-in refused: wrong token.");
            return unauthorized(headers);
        }
        let location = if rest.is_empty() {
            path.clone()
        } else {
            format!("{path}?{rest}")
        };
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = header::HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        if security.has_token()
            && let Ok(v) = header::HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                security.session
            ))
        {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        debug!(path = %path, "Signed in with ?token=: session cookie set.");
        return response;
    }
    let auth = security.auth(headers);
    if !OPEN_PATHS.contains(&path.as_str()) && auth == Auth::Refused {
        debug!(method = %method, path = %path, "Request refused: missing or wrong token.");
        return unauthorized(headers);
    }
    if changes_state(&method) {
        if !same_origin(headers) {
            debug!(method = %method, path = %path, "Request refused: foreign Origin.");
            return error(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: the Origin header is not this server",
            );
        }
        if !is_json(headers) {
            debug!(method = %method, path = %path, "Request refused: not JSON.");
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request body as JSON with `Content-Type: application/json`",
            );
        }
        if auth == Auth::Cookie && !security.csrf_ok(headers) {
            debug!(method = %method, path = %path, "Request refused: no CSRF token.");
            return error(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (X-Tributary-CSRF); reload the page and try again",
            );
        }
    }
    let response = next.run(req).await;
    debug!(method = %method, path = %path, status = response.status().as_u16(), "Request answered.");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert!(is_loopback_host("localhost") && is_loopback_host("127.0.0.2"));
        assert!(is_loopback_host("::1"));
        assert!(!is_loopback_host("evil.example") && !is_loopback_host("10.0.0.1"));
    }

    #[test]
    fn bearer_token() {
        let s = Security::new(SocketAddr::from(([127, 0, 0, 1], 1)), Some("abc".into()));
        let mut h = HeaderMap::new();
        assert!(!s.authorized(&h));
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert!(s.authorized(&h));
        h.insert(header::AUTHORIZATION, "Bearer abd".parse().unwrap());
        assert!(!s.authorized(&h));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(!s.authorized(&h));
        let open = Security::new(SocketAddr::from(([127, 0, 0, 1], 1)), Some(" ".into()));
        assert!(open.authorized(&HeaderMap::new()));
    }

    #[test]
    fn session_cookie_and_csrf() {
        let s = Security::new(SocketAddr::from(([127, 0, 0, 1], 1)), Some("abc".into()));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; tributary_session=nope".parse().unwrap(),
        );
        assert_eq!(s.auth(&h), Auth::Refused);
        let good = format!("a=b; tributary_session={}", s.session);
        h.insert(header::COOKIE, good.parse().unwrap());
        assert_eq!(s.auth(&h), Auth::Cookie);
        // A wrong bearer token is refused even with a good cookie.
        h.insert(header::AUTHORIZATION, "Bearer abd".parse().unwrap());
        assert_eq!(s.auth(&h), Auth::Refused);
        assert!(!s.csrf_ok(&h));
        h.insert(CSRF_HEADER, s.csrf().parse().unwrap());
        assert!(s.csrf_ok(&h));
        assert_ne!(s.csrf(), s.session);
        assert_eq!(s.csrf().len(), 64);
    }

    #[test]
    fn token_query() {
        assert_eq!(token_in_query(None), None);
        assert_eq!(token_in_query(Some("limit=5")), None);
        assert_eq!(
            token_in_query(Some("token=a%2Bb+c&limit=5")),
            Some(("a+b c".to_string(), "limit=5".to_string()))
        );
        assert_eq!(
            token_in_query(Some("token=x")),
            Some(("x".to_string(), String::new()))
        );
    }
}
