//! The token signing key: RSA 2048, generated once per process (the first emulator started
//! warms it up on a thread of its own), used to sign every id token and access token with
//! RS256 and published as a JSON Web Key Set at `jwks_uri`.
//!
//! Microsoft identity platform, "Signing key rollover"
//! (<https://learn.microsoft.com/entra/identity-platform/signing-key-rollover>): tokens are
//! signed with RS256 by a key whose public half is listed at the `jwks_uri` of the OpenID
//! configuration, each key named by `kid` (the token header names the key that signed it),
//! with `kty` `RSA`, `use` `sig`, the modulus `n` and exponent `e` (base64url, RFC 7517/7518).

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

/// Entra's keys are RSA 2048.
const BITS: usize = 2048;

pub struct SigningKey {
    private: rsa::PrivateKey,
    /// base64url modulus and exponent, as published.
    n: String,
    e: String,
    kid: String,
}

static KEY: OnceLock<SigningKey> = OnceLock::new();

/// The process's signing key, generated on first use.
pub fn signing_key() -> &'static SigningKey {
    KEY.get_or_init(|| {
        let mut rng = getrandom::SysRng;
        // Only fails for unusable sizes or without an OS random source: neither can be
        // recovered from, and no token could be signed.
        let private = rsa::PrivateKey::new(&mut rng, BITS)
            .unwrap_or_else(|e| panic!("generating the RSA signing key: {e}"));
        let public = private.to_public_key();
        let (n, e) = (public.n_bytes(), public.e_bytes());
        // A key id that names this key and no other: a digest of the public key, the length
        // of the SHA-1 thumbprints Entra uses as its kids.
        let mut h = Sha256::new();
        h.update(&n);
        h.update(&e);
        let kid = URL_SAFE_NO_PAD.encode(&h.finalize()[..20]);
        SigningKey {
            private,
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
            kid,
        }
    })
}

/// Generates the key on a thread of its own, so the first token does not wait for it.
pub fn warm_up() {
    if KEY.get().is_none() {
        let _ = std::thread::Builder::new()
            .name("dataverse-emulator-keygen".into())
            .spawn(|| {
                signing_key();
            });
    }
}

impl SigningKey {
    #[cfg(test)]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A compact JWS (RFC 7515) of `claims`, signed with RS256 (RFC 7518 §3.3), with `typ`,
    /// `alg` and `kid` in its header.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .private
            .pkcs1v15_sign::<rsa::sha2::Sha256>(signing_input.as_bytes())
            .unwrap_or_else(|e| panic!("signing a token: {e}"));
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The public half, which verifies what this key signed.
    pub fn public_key(&self) -> rsa::PublicKey {
        self.private.to_public_key()
    }

    /// The JSON Web Key Set served at `jwks_uri`. `issuer` is the issuer of the configuration
    /// the set belongs to (Entra's v2.0 key sets name it on every key).
    pub fn jwks(&self, issuer: Option<&str>) -> serde_json::Value {
        let mut key = serde_json::json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
        });
        if let Some(issuer) = issuer {
            key["issuer"] = serde_json::Value::String(issuer.into());
        }
        serde_json::json!({ "keys": [key] })
    }

    /// Verifies a token signed by this key and returns its claims (tests only).
    #[cfg(test)]
    pub fn verify(&self, token: &str) -> Option<serde_json::Value> {
        let (input, sig) = token.rsplit_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        self.private
            .to_public_key()
            .pkcs1v15_verify::<rsa::sha2::Sha256>(input.as_bytes(), &sig)
            .ok()?;
        let claims = input.split('.').nth(1)?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_rs256_signed_by_the_published_key() {
        let key = signing_key();
        let token = key.sign(&serde_json::json!({"sub": "x"}));
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], key.kid());
        assert_eq!(key.verify(&token).unwrap()["sub"], "x");
        let mut forged = token.clone();
        forged.insert(token.find('.').unwrap() + 2, 'A');
        assert!(key.verify(&forged).is_none());
        let jwks = key.jwks(Some("https://issuer"));
        assert_eq!(jwks["keys"][0]["kid"], key.kid());
        assert_eq!(jwks["keys"][0]["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwks["keys"][0]["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
    }
}
