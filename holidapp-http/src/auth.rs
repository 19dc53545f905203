//! Access control: bearer tokens, checked in one layer before any handler runs.
//!
//! [`Auth`] holds up to two tokens. With a **write token** (`HOLIDAPP_API_TOKEN` in the binary),
//! every request whose method may change state (anything but `GET`, `HEAD` and `OPTIONS`) needs
//! `Authorization: Bearer <write token>`. With a **read token** as well (`HOLIDAPP_READ_TOKEN`),
//! the reads need either token, except the probes (`/healthz`, `/readyz`) and the dashboard's
//! page and assets (`/ui`), which ask for the token themselves. Without tokens every route is
//! open, as the course's service was.
//!
//! A refused request answers 401 in the common error shape (code `unauthorized`) with a
//! `WWW-Authenticate: Bearer` header. Tokens are kept as SHA-256 digests and a presented token
//! is compared by digest in constant time ([`subtle`]), so neither the comparison's time nor
//! the token's length tells a client how close its guess came.
//!
//! The token travels only in a header, never in a cookie: a page of another site can make a
//! browser send cookies along, never this header (it needs a CORS preflight, which this API
//! does not grant). For the same reason `POST /data` takes a `text/plain` body, the one body
//! type another site's page can send without a preflight, only from a request that carried a
//! valid token ([`Authorized`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The fewest characters a token may have.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The most characters a token may have.
pub const MAX_TOKEN_CHARS: usize = 1024;

/// Why a configured token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a token must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} printable ASCII characters without \
     spaces (e.g. `openssl rand -hex 32`)"
)]
pub struct InvalidToken;

/// A secret a client presents as `Authorization: Bearer <token>`, kept only as its digest.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl Token {
    /// A token of `secret`: 16 to 1,024 printable ASCII characters, no spaces (what an HTTP
    /// header carries unchanged).
    pub fn new(secret: &str) -> Result<Token, InvalidToken> {
        let printable = secret.bytes().all(|b| b.is_ascii_graphic());
        if !printable || !(MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&secret.len()) {
            return Err(InvalidToken);
        }
        Ok(Token {
            digest: digest(secret.as_bytes()),
        })
    }

    /// Whether `presented` is this token, in time that does not depend on how much of it
    /// matches.
    fn matches(&self, presented: &[u8]) -> bool {
        bool::from(self.digest.ct_eq(&digest(presented)))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Which tokens the API asks for; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    write: Option<Arc<Token>>,
    read: Option<Arc<Token>>,
}

/// What a request proved: put in its extensions by the auth layer when it carried a valid
/// token, so a handler can tell (only routers with a write token have the layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authorized {
    /// It carried the write token, not only the read token.
    pub write: bool,
}

/// Paths whose reads stay open under a read token: the probes and the dashboard, which asks
/// for the token itself.
fn open_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/ui") || path.starts_with("/ui/")
}

/// Whether requests of `method` only read.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Auth {
    /// No token: every route is open.
    pub fn open() -> Self {
        Auth::default()
    }

    /// Requests that may change state need `token`.
    pub fn with_write_token(mut self, token: Token) -> Self {
        self.write = Some(Arc::new(token));
        self
    }

    /// Reads need `token` or the write token too (except the probes and the dashboard's page).
    /// It has no effect without a write token: the binary refuses that configuration.
    pub fn with_read_token(mut self, token: Token) -> Self {
        self.read = Some(Arc::new(token));
        self
    }

    /// Whether requests that may change state need a token.
    pub fn writes_need_token(&self) -> bool {
        self.write.is_some()
    }

    /// Whether reads (other than probes and the dashboard's page) need a token.
    pub fn reads_need_token(&self) -> bool {
        self.write.is_some() && self.read.is_some()
    }

    /// Decides on one request: what it proved, or the 401 to answer.
    fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Authorized, ApiError> {
        let Some(write) = &self.write else {
            return Ok(Authorized { write: false });
        };
        let presented = bearer(headers);
        if presented.is_some_and(|t| write.matches(t)) {
            return Ok(Authorized { write: true });
        }
        let read_ok = presented.is_some_and(|t| self.read.as_ref().is_some_and(|r| r.matches(t)));
        if is_read(method) && (read_ok || self.read.is_none() || open_path(path)) {
            return Ok(Authorized { write: false });
        }
        Err(ApiError::Unauthorized(match presented {
            None => "this route needs a token: send Authorization: Bearer <token>",
            Some(_) if read_ok => "the read token cannot change anything: send the write token",
            Some(_) => "the token is not valid",
        }))
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case), if any.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value[7..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// The auth layer's function: answers 401 for a request the tokens refuse, and marks the ones
/// that carried a valid token with [`Authorized`].
pub(crate) async fn guard(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    match auth.check(request.method(), request.uri().path(), request.headers()) {
        Ok(authorized) => {
            if authorized.write || auth.reads_need_token() {
                request.extensions_mut().insert(authorized);
            }
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    const WRITE: &str = "write-token-0123456789";
    const READ: &str = "read-token-0123456789";

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn allowed(auth: &Auth, method: Method, path: &str, authorization: Option<&str>) -> bool {
        auth.check(&method, path, &headers(authorization)).is_ok()
    }

    #[test]
    fn tokens_must_be_long_printable_and_without_spaces() {
        assert!(Token::new("0123456789abcdef").is_ok());
        assert_eq!(Token::new("short").unwrap_err(), InvalidToken);
        assert!(Token::new("0123456789 abcdef").is_err());
        assert!(Token::new("0123456789abcdéf").is_err());
        assert!(Token::new(&"x".repeat(MAX_TOKEN_CHARS + 1)).is_err());
        assert_eq!(format!("{:?}", Token::new(WRITE).unwrap()), "Token(..)");
    }

    #[test]
    fn without_tokens_everything_is_open() {
        let auth = Auth::open();
        assert!(allowed(&auth, Method::POST, "/jobs", None));
        assert!(allowed(
            &auth,
            Method::DELETE,
            "/data",
            Some("Bearer nonsense")
        ));
        assert!(!auth.writes_need_token());
    }

    #[test]
    fn a_write_token_closes_writes_only() {
        let auth = Auth::open().with_write_token(Token::new(WRITE).unwrap());
        for method in [Method::POST, Method::DELETE, Method::PUT, Method::PATCH] {
            assert!(!allowed(&auth, method.clone(), "/jobs", None), "{method}");
            assert!(!allowed(
                &auth,
                method.clone(),
                "/jobs",
                Some("Bearer wrong-token-0123456789")
            ));
            assert!(allowed(
                &auth,
                method.clone(),
                "/jobs",
                Some(&format!("Bearer {WRITE}"))
            ));
            assert!(allowed(
                &auth,
                method,
                "/jobs",
                Some(&format!("bEaReR   {WRITE} "))
            ));
        }
        assert!(!allowed(
            &auth,
            Method::POST,
            "/jobs",
            Some(&format!("Basic {WRITE}"))
        ));
        assert!(!allowed(
            &auth,
            Method::POST,
            "/jobs",
            Some(&format!("Bearer {WRITE}x"))
        ));
        assert!(!allowed(&auth, Method::POST, "/jobs", Some("Bearer")));
        assert!(allowed(&auth, Method::GET, "/jobs", None));
        assert!(allowed(&auth, Method::HEAD, "/metrics", None));
    }

    #[test]
    fn a_read_token_closes_reads_but_the_probes_and_the_dashboard() {
        let auth = Auth::open()
            .with_write_token(Token::new(WRITE).unwrap())
            .with_read_token(Token::new(READ).unwrap());
        let read = format!("Bearer {READ}");
        let write = format!("Bearer {WRITE}");
        assert!(!allowed(&auth, Method::GET, "/jobs", None));
        assert!(allowed(&auth, Method::GET, "/jobs", Some(&read)));
        assert!(allowed(&auth, Method::GET, "/jobs", Some(&write)));
        assert!(!allowed(&auth, Method::POST, "/jobs", Some(&read)));
        for open in ["/healthz", "/readyz", "/ui", "/ui/app.js"] {
            assert!(allowed(&auth, Method::GET, open, None), "{open}");
        }
        assert!(!allowed(&auth, Method::GET, "/uix", None));
        assert!(!allowed(&auth, Method::POST, "/ui", None));
        let refused = auth
            .check(&Method::POST, "/jobs", &headers(Some(&read)))
            .unwrap_err();
        assert!(refused.to_string().contains("read token"), "{refused}");
    }
}
