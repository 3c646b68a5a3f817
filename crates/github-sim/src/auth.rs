//! Token authentication: `Authorization: Bearer <token>` (or `token <token>`). GitHub
//! Apps' JWTs and installation tokens are told apart in `crate::apps`.

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credential of `Authorization: Bearer <credential>` (or `token <credential>`).
pub(crate) fn credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credential) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    Some(credential.trim())
}

/// Index of the configured token the request presents, if any.
pub(crate) fn identify(headers: &HeaderMap, tokens: &[SecretString]) -> Option<usize> {
    let credential = credential(headers)?;
    tokens
        .iter()
        .position(|t| constant_time_eq(t.expose_secret().as_bytes(), credential.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accepts_bearer_and_token_schemes_only() {
        let tokens = vec![SecretString::from("a"), SecretString::from("b")];
        assert_eq!(identify(&with("Bearer b"), &tokens), Some(1));
        assert_eq!(identify(&with("token a"), &tokens), Some(0));
        assert_eq!(identify(&with("Basic a"), &tokens), None);
        assert_eq!(identify(&with("Bearer c"), &tokens), None);
        assert_eq!(identify(&HeaderMap::new(), &tokens), None);
    }
}
