//! HS256 JWTs: `sub`, `username`, `roles`, `iat`, `exp`, `jti`, `iss` (+ `iatms` for
//! sub-second revocation cut-offs).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

/// The claims.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// User id as a string.
    pub sub: String,
    /// Username at issue time.
    pub username: String,
    /// Roles at issue time (informational; the database is authoritative).
    pub roles: Vec<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Issued at, unix milliseconds.
    #[serde(default)]
    pub iatms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Past `exp`.
    Expired,
    /// Bad signature, algorithm, issuer, shape or missing claims.
    Invalid,
}

/// Signing and verification keys.
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Keys from a secret, requiring `issuer`.
    pub fn new(secret: &[u8], issuer: &str) -> Self {
        // Only HS256 is accepted: `alg: none` and other algorithms fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        validation.leeway = 0;
        JwtKeys {
            enc: EncodingKey::from_secret(secret),
            dec: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs claims.
    pub fn sign(&self, claims: &Claims) -> String {
        // HS256 encoding of a plain struct cannot fail.
        encode(&Header::new(Algorithm::HS256), claims, &self.enc).unwrap_or_default()
    }

    /// Verifies signature, algorithm, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        decode::<Claims>(token, &self.dec, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::protocol::unix_now;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "1".into(),
            username: "u".into(),
            roles: vec!["member".into()],
            iat: unix_now(),
            exp,
            jti: "j".into(),
            iss: "switchboard".into(),
            iatms: 0,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let k = JwtKeys::new(b"secret", "switchboard");
        let t = k.sign(&claims(unix_now() + 60));
        assert_eq!(k.verify(&t).unwrap().sub, "1");
        let expired = k.sign(&claims(unix_now() - 5));
        assert_eq!(k.verify(&expired), Err(TokenError::Expired));
        let other = JwtKeys::new(b"other", "switchboard");
        assert_eq!(other.verify(&t), Err(TokenError::Invalid));
        let wrong_iss = JwtKeys::new(b"secret", "elsewhere");
        assert_eq!(wrong_iss.verify(&t), Err(TokenError::Invalid));
        assert_eq!(k.verify("garbage"), Err(TokenError::Invalid));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(serde_json::to_vec(&claims(unix_now() + 60)).unwrap());
        let k = JwtKeys::new(b"secret", "switchboard");
        assert_eq!(
            k.verify(&format!("{header}.{body}.")),
            Err(TokenError::Invalid)
        );
    }
}
