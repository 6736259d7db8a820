//! Session tokens: JWT HS256 with the algorithm pinned and `exp`, `nbf`,
//! `iss`, `aud` validated. Each token has a `jti` so it can be revoked.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

pub const ISSUER: &str = "gemba";
pub const AUDIENCE: &str = "gemba-api";
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub jti: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// A validated token's identity.
#[derive(Clone, Debug)]
pub struct TokenInfo {
    pub user_id: i64,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
}

impl TokenInfo {
    /// Whether the token is still good at `now`: what [`TokenKeys::verify`]
    /// checks of its expiry, with the same leeway.
    pub fn live_at(&self, now: DateTime<Utc>) -> bool {
        now.timestamp()
            <= self
                .expires_at
                .timestamp()
                .saturating_add(LEEWAY_SECONDS as i64)
    }
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// Shortest accepted signing secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

impl TokenKeys {
    /// # Errors
    /// When the secret is shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> anyhow::Result<Self> {
        if secret.len() < MIN_SECRET_LEN {
            anyhow::bail!("the JWT secret must be at least {MIN_SECRET_LEN} bytes long");
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Issues a token for `user_id` valid for `ttl`.
    ///
    /// # Errors
    /// Only if signing fails, which it does not for HS256.
    pub fn issue(&self, user_id: i64, ttl: std::time::Duration) -> ApiResult<(String, TokenInfo)> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
        let expires_at = now + ttl;
        let jti = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            sub: user_id.to_string(),
            jti: jti.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((
            token,
            TokenInfo {
                user_id,
                jti,
                expires_at,
            },
        ))
    }

    /// Verifies signature, algorithm and claims.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for an expired, not yet valid, tampered or malformed token.
    pub fn verify(&self, token: &str) -> ApiResult<TokenInfo> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::InvalidToken("token expired"),
                ErrorKind::ImmatureSignature => ApiError::InvalidToken("token not yet valid"),
                _ => ApiError::InvalidToken("invalid token"),
            }
        })?;
        let user_id = data
            .claims
            .sub
            .parse::<i64>()
            .map_err(|_| ApiError::InvalidToken("invalid token"))?;
        let expires_at = DateTime::from_timestamp(data.claims.exp, 0)
            .ok_or(ApiError::InvalidToken("invalid token"))?;
        Ok(TokenInfo {
            user_id,
            jti: data.claims.jti,
            expires_at,
        })
    }

    #[cfg(test)]
    fn sign(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn short_secret_is_refused() {
        assert!(TokenKeys::new(b"too short").is_err());
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let (t, info) = k.issue(42, std::time::Duration::from_secs(60)).unwrap();
        let back = k.verify(&t).unwrap();
        assert_eq!(back.user_id, 42);
        assert_eq!(back.jti, info.jti);
    }

    #[test]
    fn rejects_expired_tampered_foreign_and_none_alg() {
        let k = keys();
        let now = Utc::now().timestamp();
        let mut claims = Claims {
            sub: "1".into(),
            jti: "x".into(),
            iat: now - 100,
            nbf: now - 100,
            exp: now - 60,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        assert!(k.verify(&k.sign(&claims)).is_err(), "expired");
        claims.exp = now + 60;
        claims.aud = "other".into();
        assert!(k.verify(&k.sign(&claims)).is_err(), "wrong audience");
        claims.aud = AUDIENCE.into();
        claims.iss = "other".into();
        assert!(k.verify(&k.sign(&claims)).is_err(), "wrong issuer");
        claims.iss = ISSUER.into();
        claims.nbf = now + 600;
        assert!(k.verify(&k.sign(&claims)).is_err(), "not yet valid");
        claims.nbf = now;
        let good = k.sign(&claims);
        assert!(k.verify(&good).is_ok());
        let other = TokenKeys::new(&[8u8; 32]).unwrap();
        assert!(other.verify(&good).is_err(), "foreign secret");
        // alg=none: header {"alg":"none","typ":"JWT"} with the same claims, no signature.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = good.split('.').nth(1).unwrap();
        assert!(k.verify(&format!("{header}.{body}.")).is_err(), "alg none");
    }
}
