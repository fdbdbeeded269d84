//! JWT authentication of WebSocket upgrades and admin calls.
//!
//! Owns token extraction (header, query, subprotocol), verification with algorithms pinned by
//! config, and minting for `switchyard token`. It must never trust the token's own `alg`
//! header, and never let a connection past the upgrade without a verified identity (or the
//! explicit `auth.anonymous` opt-in).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

use crate::config::{AuthConfig, DEV_SECRET};

/// The subprotocol a browser offers beside its token: `new WebSocket(url, ["switchyard", jwt])`.
pub const SUBPROTOCOL: &str = "switchyard";

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct Identity {
    /// User id from the configured claim; `""` for a guest.
    pub user: Arc<str>,
    /// Tags from the token's `tags` claim.
    pub tags: Vec<String>,
    /// The verified claims, as JSON text (what the `claims` host function hands out).
    pub claims: Arc<str>,
    /// `"admin": true` in the claims: may call the HTTP API.
    pub admin: bool,
    /// The token's `exp` (Unix seconds); `None` for a guest, or a token without one
    /// (`auth.require_exp = false`), which then never expires on a live connection.
    pub exp: Option<u64>,
}

impl Identity {
    pub fn guest() -> Self {
        Self { user: Arc::from(""), tags: Vec::new(), claims: Arc::from("{}"), admin: false, exp: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("token has no string claim \"{0}\"")]
    NoUser(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("reading key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("bad key: {0}")]
    Key(#[from] jsonwebtoken::errors::Error),
    #[error("unknown or unsupported algorithm {0:?} (use HS256, HS384, HS512, RS256, ES256, ...)")]
    Algorithm(String),
    #[error("algorithm {0:?} needs {1}")]
    KeyMismatch(String, &'static str),
    #[error("minting needs auth.secret or auth.private_key_file for {0:?}")]
    NoSigningKey(String),
}

/// Verifies tokens with the configured key; mints tokens for development.
pub struct Authenticator {
    decoding: DecodingKey,
    validation: Validation,
    signing: Option<(EncodingKey, Algorithm)>,
    user_claim: String,
    pub anonymous: bool,
}

fn read_key(path: &std::path::Path) -> Result<Vec<u8>, AuthSetupError> {
    std::fs::read(path).map_err(|source| AuthSetupError::KeyFile { path: path.display().to_string(), source })
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig) -> Result<Self, AuthSetupError> {
        let default_alg = if cfg.public_key_file.is_some() { "RS256" } else { "HS256" };
        let names: Vec<String> =
            if cfg.algorithms.is_empty() { vec![default_alg.to_string()] } else { cfg.algorithms.clone() };
        let mut algorithms = Vec::with_capacity(names.len());
        for n in &names {
            algorithms.push(n.parse::<Algorithm>().map_err(|_| AuthSetupError::Algorithm(n.clone()))?);
        }
        let hmac = |a: &Algorithm| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
        // One key family per server: mixing HMAC and public-key algorithms is exactly the
        // RS256 -> HS256 confusion attack, so refuse it at startup.
        let (decoding, signing) = if let Some(pk) = &cfg.public_key_file {
            if let Some(a) = algorithms.iter().find(|a| hmac(a)) {
                return Err(AuthSetupError::KeyMismatch(format!("{a:?}"), "auth.secret, not a public key"));
            }
            let pem = read_key(pk)?;
            let decoding = if algorithms.iter().any(|a| matches!(a, Algorithm::ES256 | Algorithm::ES384)) {
                DecodingKey::from_ec_pem(&pem)?
            } else if algorithms.iter().any(|a| matches!(a, Algorithm::EdDSA)) {
                DecodingKey::from_ed_pem(&pem)?
            } else {
                DecodingKey::from_rsa_pem(&pem)?
            };
            let signing = match &cfg.private_key_file {
                Some(path) => {
                    let pem = read_key(path)?;
                    let alg = algorithms[0];
                    let key = match alg {
                        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem)?,
                        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem)?,
                        _ => EncodingKey::from_rsa_pem(&pem)?,
                    };
                    Some((key, alg))
                }
                None => None,
            };
            (decoding, signing)
        } else {
            if let Some(a) = algorithms.iter().find(|a| !hmac(a)) {
                return Err(AuthSetupError::KeyMismatch(format!("{a:?}"), "auth.public_key_file"));
            }
            let secret = cfg.secret.as_deref().unwrap_or(DEV_SECRET).as_bytes();
            (DecodingKey::from_secret(secret), Some((EncodingKey::from_secret(secret), algorithms[0])))
        };
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = cfg.leeway_secs;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if cfg.require_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        match &cfg.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &cfg.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self { decoding, validation, signing, user_claim: cfg.user_claim.clone(), anonymous: cfg.anonymous })
    }

    /// Verifies a token: signature with a pinned algorithm, `exp`/`nbf` with leeway,
    /// `iss`/`aud` when configured.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)?;
        let claims = data.claims;
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => Arc::<str>::from(s.as_str()),
            Some(Value::Number(n)) => Arc::<str>::from(n.to_string()),
            _ => return Err(AuthError::NoUser(self.user_claim.clone())),
        };
        let tags = match claims.get("tags") {
            Some(Value::Array(a)) => a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        };
        let admin = claims.get("admin").and_then(Value::as_bool).unwrap_or(false);
        // jsonwebtoken accepted it, so a present `exp` is a number; fractions are cut.
        let exp = claims.get("exp").and_then(|e| e.as_u64().or_else(|| e.as_f64().map(|f| f.max(0.0) as u64)));
        let claims = Arc::from(Value::Object(claims).to_string());
        Ok(Identity { user, tags, claims, admin, exp })
    }

    /// Mints a token for `sub` (development and tests).
    pub fn mint(&self, sub: &str, ttl_secs: u64, tags: &[String], admin: bool) -> Result<String, AuthSetupError> {
        let (key, alg) = self
            .signing
            .as_ref()
            .ok_or_else(|| AuthSetupError::NoSigningKey(format!("{:?}", self.validation.algorithms[0])))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut claims = Map::new();
        claims.insert(self.user_claim.clone(), Value::from(sub));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + ttl_secs));
        if !tags.is_empty() {
            claims.insert("tags".into(), Value::from(tags.to_vec()));
        }
        if admin {
            claims.insert("admin".into(), Value::from(true));
        }
        if let Some(iss) = self.validation.iss.as_ref().and_then(|s| s.iter().next()) {
            claims.insert("iss".into(), Value::from(iss.as_str()));
        }
        if let Some(aud) = self.validation.aud.as_ref().and_then(|s| s.iter().next()) {
            claims.insert("aud".into(), Value::from(aud.as_str()));
        }
        Ok(jsonwebtoken::encode(&Header::new(*alg), &claims, key)?)
    }
}

/// Where a token was found; a subprotocol token requires the server to answer with
/// [`SUBPROTOCOL`] so the browser accepts the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Subprotocol,
}

/// The credential of an `Authorization` value: what follows `Bearer ` (any case), else the
/// whole value, trimmed. The one parser for the WebSocket upgrade and the HTTP API alike.
pub fn bearer(s: &str) -> &str {
    let s = s.trim();
    match s.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => s[7..].trim(),
        // "Bearer" with nothing after it carries no credential.
        _ if s.eq_ignore_ascii_case("bearer") => "",
        _ => s,
    }
}

/// Finds the token: `Authorization: Bearer`, then `?token=` / `?authorization=` (hotgo), then
/// a JWT-shaped entry of `Sec-WebSocket-Protocol`.
pub fn extract_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<(String, TokenSource)> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let t = bearer(v);
        if !t.is_empty() {
            return Some((t.to_string(), TokenSource::Header));
        }
    }
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k == "token" || k == "authorization" {
                let t = bearer(&v);
                if !t.is_empty() {
                    return Some((t.to_string(), TokenSource::Query));
                }
            }
        }
    }
    if let Some(v) = headers.get(axum::http::header::SEC_WEBSOCKET_PROTOCOL).and_then(|v| v.to_str().ok()) {
        for p in v.split(',').map(str::trim) {
            let p = p.strip_prefix("bearer.").unwrap_or(p);
            if p.split('.').count() == 3 && p.len() > 16 {
                return Some((p.to_string(), TokenSource::Subprotocol));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue, header};

    use super::*;

    /// Shaped like a JWT: three dot-separated parts, longer than 16 bytes.
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
    const JWT2: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiIn0.c2ln";

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    fn got(t: &str, s: TokenSource) -> Option<(String, TokenSource)> {
        Some((t.to_string(), s))
    }

    #[test]
    fn bearer_strips_the_scheme_in_any_case_and_trims() {
        assert_eq!(bearer("Bearer abc"), "abc");
        assert_eq!(bearer("bearer abc"), "abc");
        assert_eq!(bearer("BEARER abc"), "abc");
        assert_eq!(bearer("  Bearer   abc  "), "abc");
        assert_eq!(bearer("abc"), "abc", "a bare credential is taken whole");
        assert_eq!(bearer(" abc "), "abc");
        assert_eq!(bearer("Bearerabc"), "Bearerabc", "the scheme needs its space");
        assert_eq!(bearer("Basic abc"), "Basic abc", "another scheme is not stripped");
        assert_eq!(bearer(""), "");
        assert_eq!(bearer("Bearer 数字"), "数字", "non-ASCII after the scheme");
        assert_eq!(bearer("数字数字"), "数字数字", "no panic slicing inside a character");
    }

    #[test]
    fn the_authorization_header_is_read_in_any_case_with_or_without_bearer() {
        let bearer_header = headers(&[(header::AUTHORIZATION, &format!("Bearer {JWT}"))]);
        assert_eq!(extract_token(&bearer_header, None), got(JWT, TokenSource::Header));
        let lower = headers(&[(header::AUTHORIZATION, &format!("bearer {JWT}"))]);
        assert_eq!(extract_token(&lower, None), got(JWT, TokenSource::Header));
        let bare = headers(&[(header::AUTHORIZATION, JWT)]);
        assert_eq!(extract_token(&bare, None), got(JWT, TokenSource::Header));
        // Header names are case-insensitive on the wire; HeaderMap keys are lower case.
        let name = HeaderName::from_bytes(b"AUTHORIZATION").unwrap();
        assert_eq!(extract_token(&headers(&[(name, JWT)]), None), got(JWT, TokenSource::Header));
    }

    #[test]
    fn the_query_is_read_as_token_and_as_hotgo_authorization() {
        let none = HeaderMap::new();
        assert_eq!(extract_token(&none, Some(&format!("token={JWT}"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&none, Some(&format!("authorization={JWT}"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&none, Some(&format!("authorization=Bearer%20{JWT}"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&none, Some(&format!("room=1&token={JWT}&x"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&none, Some("token=a%2Eb")), got("a.b", TokenSource::Query), "URL-decoded");
        assert_eq!(extract_token(&none, Some(&format!("Token={JWT}"))), None, "query keys are exact");
        assert_eq!(extract_token(&none, Some(&format!("tokens={JWT}"))), None);
        assert_eq!(extract_token(&none, Some("")), None);
        assert_eq!(
            extract_token(&none, Some(&format!("token={JWT}&authorization={JWT2}"))),
            got(JWT, TokenSource::Query),
            "the first one given"
        );
    }

    #[test]
    fn a_subprotocol_entry_shaped_like_a_jwt_is_the_token() {
        let protocols = |v: &str| headers(&[(header::SEC_WEBSOCKET_PROTOCOL, v)]);
        let browser = protocols(&format!("switchyard, {JWT}"));
        assert_eq!(extract_token(&browser, None), got(JWT, TokenSource::Subprotocol));
        assert_eq!(extract_token(&protocols(&format!("switchyard,{JWT}")), None), got(JWT, TokenSource::Subprotocol));
        assert_eq!(extract_token(&protocols(&format!("bearer.{JWT}")), None), got(JWT, TokenSource::Subprotocol));
        assert_eq!(
            extract_token(&protocols(&format!("switchyard, bearer.{JWT}")), None),
            got(JWT, TokenSource::Subprotocol),
            "the bearer. prefix"
        );
        assert_eq!(extract_token(&protocols("switchyard"), None), None, "no token beside switchyard");
        assert_eq!(extract_token(&protocols("switchyard, chat.v1"), None), None, "a protocol name is not a token");
        assert_eq!(extract_token(&protocols("switchyard, a.b.c"), None), None, "too short for a JWT");
        assert_eq!(
            extract_token(&protocols(&format!("chat.v1, {JWT}, {JWT2}")), None),
            got(JWT, TokenSource::Subprotocol)
        );
    }

    #[test]
    fn empty_values_are_no_token_and_the_next_source_is_tried() {
        let none = HeaderMap::new();
        assert_eq!(extract_token(&none, None), None);
        assert_eq!(extract_token(&none, Some("token=")), None);
        assert_eq!(extract_token(&none, Some("token=&authorization=")), None);
        assert_eq!(extract_token(&none, Some(&format!("token=&authorization={JWT}"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&none, Some(&format!("token=%20%20&token={JWT}"))), got(JWT, TokenSource::Query));
        let empty_header = headers(&[(header::AUTHORIZATION, "")]);
        assert_eq!(extract_token(&empty_header, Some(&format!("token={JWT}"))), got(JWT, TokenSource::Query));
        let blank_header = headers(&[(header::AUTHORIZATION, "   ")]);
        assert_eq!(extract_token(&blank_header, Some(&format!("token={JWT}"))), got(JWT, TokenSource::Query));
        let empty_protocols = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, "")]);
        assert_eq!(extract_token(&empty_protocols, None), None);
        // A header value that is not visible ASCII is unreadable, not a token.
        let mut opaque = HeaderMap::new();
        opaque.insert(header::AUTHORIZATION, HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap());
        assert_eq!(extract_token(&opaque, Some(&format!("token={JWT}"))), got(JWT, TokenSource::Query));
    }

    #[test]
    fn the_header_wins_over_the_query_which_wins_over_the_subprotocol() {
        let all = headers(&[
            (header::AUTHORIZATION, &format!("Bearer {JWT}")),
            (header::SEC_WEBSOCKET_PROTOCOL, &format!("switchyard, {JWT2}")),
        ]);
        assert_eq!(extract_token(&all, Some(&format!("token={JWT2}"))), got(JWT, TokenSource::Header));
        let no_header = headers(&[(header::SEC_WEBSOCKET_PROTOCOL, &format!("switchyard, {JWT2}"))]);
        assert_eq!(extract_token(&no_header, Some(&format!("token={JWT}"))), got(JWT, TokenSource::Query));
        assert_eq!(extract_token(&no_header, Some("room=1")), got(JWT2, TokenSource::Subprotocol));
    }
}
