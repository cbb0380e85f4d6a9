//! The checks every request passes before reaching a route: host (loopback binds), token,
//! origin and content type of state-changing requests.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;
use tracing::debug;

use crate::AppState;
use crate::api::error;

/// The only route answered without the token.
const OPEN_PATHS: [&str; 1] = ["/health"];

/// What the guard checks against.
pub(crate) struct Security {
    token: Option<String>,
    /// Bound to a loopback address: requests must name a loopback host.
    loopback: bool,
}

impl Security {
    pub(crate) fn new(local_addr: SocketAddr, token: Option<String>) -> Security {
        Security {
            token: token.filter(|t| !t.trim().is_empty()),
            loopback: local_addr.ip().is_loopback(),
        }
    }

    /// `message` without the token in it (for messages that come from elsewhere).
    pub(crate) fn scrub(&self, message: &str) -> String {
        match &self.token {
            Some(t) => tributary_core::redact::scrub(message, &[t.as_str()]),
            None => message.to_string(),
        }
    }

    /// The token in `Authorization: Bearer …` is the configured one (constant-time compare;
    /// only the length can show).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
        else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
    }
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

/// The middleware: refuse what fails a check, pass the rest on.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
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
    if !OPEN_PATHS.contains(&path.as_str()) && !security.authorized(headers) {
        debug!(method = %method, path = %path, "Request refused: missing or wrong token.");
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong token; send `Authorization: Bearer TOKEN` with the serve.token of tributary.yaml",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"tributary\""),
        );
        return response;
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
}
