//! Token authentication: HS256 JSON Web Tokens, verified by the host so
//! that plugins get the claims and never the secret.

use hyper::header::{AUTHORIZATION, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Seconds of clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 5;

/// Checks tokens against one secret.
pub(crate) struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier { .. }") // never print the key
    }
}

/// What the host concluded about a connection's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// No token was presented (and none was required).
    Anonymous,
    /// A valid token; its claims as a JSON object.
    Verified(String),
    /// The connection must be refused (close 1008) for this reason.
    Refused(String),
}

impl TokenVerifier {
    pub(crate) fn new(secret: &str) -> TokenVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` and `nbf` are honoured when present, not demanded: issuers of
        // long-lived service tokens leave `exp` out.
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        TokenVerifier { key: DecodingKey::from_secret(secret.as_bytes()), validation }
    }

    /// The claims of a valid token, or why it is not valid.
    pub(crate) fn verify(&self, token: &str) -> Result<String, String> {
        match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &self.key, &self.validation) {
            Ok(data) => Ok(serde_json::Value::Object(data.claims).to_string()),
            Err(error) => Err(match error.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_owned(),
                ErrorKind::ImmatureSignature => "token not valid yet".to_owned(),
                ErrorKind::InvalidSignature => "invalid token signature".to_owned(),
                ErrorKind::InvalidAlgorithm => "token algorithm must be HS256".to_owned(),
                _ => "malformed token".to_owned(),
            }),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value. The
/// scheme is case-insensitive (RFC 9110 §11.1); the one parser for tokens
/// and for the publish API's key.
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Decide who a connection is: a token in the `token` query parameter or
/// an `Authorization: Bearer` header is verified; a connection without one
/// is anonymous unless `required`; a bad token is always refused.
pub(crate) fn identify(
    verifier: Option<&TokenVerifier>,
    query: &[(String, String)],
    headers: &HeaderMap,
    required: bool,
) -> Identity {
    let from_header = headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer_token);
    let from_query = query.iter().find(|(key, _)| key == "token").map(|(_, value)| value.as_str());
    let token = from_header.or(from_query).map(str::trim).filter(|token| !token.is_empty());
    match (token, verifier) {
        (Some(token), Some(verifier)) => match verifier.verify(token) {
            Ok(claims) => Identity::Verified(claims),
            Err(reason) => Identity::Refused(reason),
        },
        // A token the server has no secret to check is not trusted.
        (Some(_), None) if required => Identity::Refused("authentication is not configured".into()),
        (Some(_), None) | (None, _) if !required => Identity::Anonymous,
        _ => Identity::Refused("missing token".into()),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    fn token(secret: &str, claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    #[test]
    fn valid_tokens_yield_their_claims() {
        let verifier = TokenVerifier::new("s3cret");
        let good = token("s3cret", json!({"sub": "ann", "exp": now() + 60}));
        let claims: serde_json::Value = serde_json::from_str(&verifier.verify(&good).unwrap()).unwrap();
        assert_eq!(claims["sub"], "ann");
        assert!(verifier.verify(&token("s3cret", json!({"sub": "no-exp"}))).is_ok());
    }

    #[test]
    fn bad_tokens_say_why() {
        let verifier = TokenVerifier::new("s3cret");
        assert_eq!(verifier.verify(&token("other", json!({"sub": "x"}))), Err("invalid token signature".into()));
        assert_eq!(verifier.verify(&token("s3cret", json!({"exp": now() - 60}))), Err("token expired".into()));
        assert_eq!(verifier.verify(&token("s3cret", json!({"nbf": now() + 600}))), Err("token not valid yet".into()));
        assert_eq!(verifier.verify("not.a.token"), Err("malformed token".into()));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "] {
            assert_eq!(bearer_token(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer ", "abc", "Bearerabc"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }

    #[test]
    fn identity_follows_the_rules() {
        let verifier = TokenVerifier::new("k");
        let headers = HeaderMap::new();
        let query = |token: &str| vec![("token".to_owned(), token.to_owned())];
        assert_eq!(identify(Some(&verifier), &[], &headers, false), Identity::Anonymous);
        assert_eq!(identify(Some(&verifier), &[], &headers, true), Identity::Refused("missing token".into()));
        assert!(matches!(identify(Some(&verifier), &query("junk"), &headers, false), Identity::Refused(_)));
        let good = token("k", json!({"sub": "x"}));
        assert!(matches!(identify(Some(&verifier), &query(&good), &headers, true), Identity::Verified(_)));
        let mut bearer = HeaderMap::new();
        bearer.insert(AUTHORIZATION, format!("Bearer {good}").parse().unwrap());
        assert!(matches!(identify(Some(&verifier), &[], &bearer, true), Identity::Verified(_)));
    }
}
