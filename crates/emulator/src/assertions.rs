//! Certificate credentials at the token endpoint: the client assertions an app signs with a
//! certificate registered to it, and the test certificates the emulator generates for them.
//!
//! Microsoft identity platform, "application authentication certificate credentials"
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>): the client
//! posts `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion`, a JWT whose header has `alg` (PS256 advised; RS256 is what older
//! clients send), `typ` `JWT` and `x5t#S256`, the base64url SHA-256 thumbprint of the
//! certificate's DER encoding (older clients send `x5t`, the SHA-1 thumbprint, which is also the
//! `customKeyIdentifier` of a registered key credential); whose claims are `aud` (the token
//! endpoint, `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`), `iss` = `sub` =
//! the client id, `jti` (unique), `nbf`, `exp` and `iat`; and whose signature is made with the
//! certificate's private key.
//!
//! Each failure answers the AADSTS code Entra documents for it
//! ("Microsoft Entra authentication and authorization error codes",
//! <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>, and "Troubleshoot
//! ClientAssertionCredential / ClientCertificateCredential" in
//! <https://learn.microsoft.com/azure/developer/java/sdk/troubleshooting-authentication-service-principal>):
//! AADSTS50027 a JWT that cannot be read (InvalidJwtToken), AADSTS700021 `iss`/`sub` not the
//! client id, AADSTS700023 an audience that is not this token endpoint, AADSTS700024 outside
//! its valid time range, AADSTS700027 a certificate not registered to the app or a signature
//! that does not verify, AADSTS50013 a `jti` already used by another assertion (InvalidAssertion:
//! the pages name no code of their own for it). The page asks for a `jti` that no other assertion
//! carries, not for single use: the very same assertion may be presented again while valid, as
//! `@azure/msal-node` does (it keeps its signed assertion for its ten minutes and sends it with
//! each token request), so only a second, different assertion under a used `jti` is refused.

//!
//! Federated credentials (workload identity federation,
//! <https://learn.microsoft.com/entra/workload-id/workload-identity-federation> and
//! <https://learn.microsoft.com/entra/workload-id/workload-identity-federation-create-trust>):
//! the client assertion is a token another issuer gave the workload (Kubernetes, GitHub
//! Actions), and the app has a federated identity credential naming that `iss`, `sub` (both
//! compared exactly, case-sensitive) and audience (`api://AzureADTokenExchange` recommended).
//! Entra fetches the issuer's keys from its OpenID configuration; here the emulator itself is the
//! test issuer (`{origin}/_test-issuer`, tokens from [`crate::Emulator::federated_token`]) and
//! verifies with the key it signed with, so nothing leaves loopback. No match answers
//! AADSTS700211 (issuer), AADSTS700213 (subject) or AADSTS700212 (audience); the token's own
//! `nbf`/`exp` AADSTS700024. A federated token may be presented more than once while valid (CI
//! tools do), so its `jti` is not held against it.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::sha2::{Digest, Sha256};
use rsa::signature::Verifier;

use crate::auth::{TokenAnswer, aad_error};

/// The one `client_assertion_type` Entra accepts.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Tokens are accepted up to five minutes outside their times, the clock skew Entra allows
/// (and MSAL and Microsoft.IdentityModel default to).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// A certificate and its private key in the forms clients are given them. Test material: the
/// emulator never logs it.
#[derive(Clone)]
pub struct TestCertificate {
    /// `-----BEGIN CERTIFICATE-----`.
    pub certificate_pem: String,
    /// PKCS#8, `-----BEGIN PRIVATE KEY-----`.
    pub private_key_pem: String,
    /// PKCS#1, `-----BEGIN RSA PRIVATE KEY-----`.
    pub rsa_private_key_pem: String,
    /// The key and certificate as a PKCS#12 (PFX) file, base64 (standard alphabet).
    pub pfx_base64: String,
    /// The PFX file's password.
    pub pfx_password: String,
    /// base64url SHA-256 thumbprint of the certificate's DER encoding (`x5t#S256`).
    pub thumbprint_sha256: String,
    /// Hex SHA-1 thumbprint, as the portal and MSAL's `thumbprint` option show it.
    pub thumbprint_sha1_hex: String,
    public: rsa::PublicKey,
    /// base64url SHA-1 thumbprint (`x5t`).
    x5t: String,
}

impl std::fmt::Debug for TestCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificate")
            .field("thumbprint_sha256", &self.thumbprint_sha256)
            .finish_non_exhaustive()
    }
}

static REGISTERED: OnceLock<TestCertificate> = OnceLock::new();
static UNREGISTERED: OnceLock<TestCertificate> = OnceLock::new();

/// The certificate registered to the emulator's confidential app, generated on first use.
pub fn registered() -> &'static TestCertificate {
    REGISTERED.get_or_init(|| generate("dataverse-emulator-app"))
}

/// A certificate registered to no app: signing with it is refused with AADSTS700027.
pub fn unregistered() -> &'static TestCertificate {
    UNREGISTERED.get_or_init(|| generate("dataverse-emulator-unregistered"))
}

/// Generates both certificates on a thread of their own, so the first sign-in does not wait.
pub fn warm_up() {
    if REGISTERED.get().is_none() {
        let _ = std::thread::Builder::new()
            .name("dataverse-emulator-certgen".into())
            .spawn(|| {
                registered();
                unregistered();
            });
    }
}

fn generate(common_name: &str) -> TestCertificate {
    // Failures here mean no OS randomness or a broken crypto backend: nothing to recover.
    let mut rng = getrandom::SysRng;
    let private = rsa::PrivateKey::new(&mut rng, 2048)
        .unwrap_or_else(|e| panic!("generating the test certificate's key: {e}"));
    let pkcs8 = private
        .to_pkcs8_der()
        .unwrap_or_else(|e| panic!("encoding the test key: {e}"));
    let private_key_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap_or_else(|e| panic!("encoding the test key: {e}"))
        .to_string();
    let rsa_private_key_pem = private
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap_or_else(|e| panic!("encoding the test key: {e}"))
        .to_string();
    let key_pair =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&private_key_pem, &rcgen::PKCS_RSA_SHA256)
            .unwrap_or_else(|e| panic!("loading the test key: {e}"));
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap_or_else(|e| panic!("certificate parameters: {e}"));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let certificate = params
        .self_signed(&key_pair)
        .unwrap_or_else(|e| panic!("signing the test certificate: {e}"));
    let der = certificate.der().to_vec();
    let pfx_password = format!(
        "pfx-{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(&der))[..12]
    );
    let pfx = pfx_of(pkcs8.as_bytes(), &der, &pfx_password);
    TestCertificate {
        certificate_pem: certificate.pem(),
        private_key_pem,
        rsa_private_key_pem,
        pfx_base64: STANDARD.encode(pfx),
        pfx_password,
        thumbprint_sha256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        thumbprint_sha1_hex: sha1::Sha1::digest(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
        x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(&der)),
        public: private.to_public_key(),
    }
}

/// PKCS#12 as current tools write it: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), HMAC-SHA256 MAC.
fn pfx_of(pkcs8: &[u8], certificate: &[u8], password: &str) -> Vec<u8> {
    let key = p12_keystore::PrivateKey::from_der(pkcs8)
        .unwrap_or_else(|e| panic!("the test key as a PFX entry: {e}"));
    let cert = p12_keystore::Certificate::from_der(certificate)
        .unwrap_or_else(|e| panic!("the test certificate as a PFX entry: {e}"));
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "app",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            Sha256::digest(certificate).to_vec(),
            key,
            [cert],
        )),
    );
    store
        .writer(password)
        .write()
        .unwrap_or_else(|e| panic!("writing the test PFX: {e}"))
}

/// The audience Entra recommends for federated identity credentials.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The subject of the seeded federated identity credential (a Kubernetes service account).
pub const FEDERATED_SUBJECT: &str = "system:serviceaccount:dynamics:connector";

/// A federated identity credential: an app trusts tokens of `issuer` about `subject`.
#[derive(Debug, Clone)]
pub struct FederatedCredential {
    pub client_id: String,
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

/// The test issuer's URL on an emulator answering at `origin`.
pub fn test_issuer(origin: &str) -> String {
    format!("{origin}/_test-issuer")
}

/// A token of the test issuer about `subject`, valid for `lifetime_secs` from now (negative:
/// already expired), signed by the emulator's key.
pub fn federated_token(origin: &str, subject: &str, audience: &str, lifetime_secs: i64) -> String {
    let now = crate::datetime::now_secs();
    let (nbf, exp) = if lifetime_secs < 0 {
        (now + lifetime_secs - 600, now + lifetime_secs)
    } else {
        (now, now + lifetime_secs)
    };
    crate::keys::signing_key().sign(&serde_json::json!({
        "iss": test_issuer(origin),
        "sub": subject,
        "aud": audience,
        "iat": nbf,
        "nbf": nbf,
        "exp": exp,
        "jti": URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{subject}{now}{lifetime_secs}{}", rand_tag()))),
    }))
}

fn rand_tag() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Which certificates are registered to which apps, the assertions already used, and the
/// token service's clock offset (for tests of the valid time range).
#[derive(Debug, Default)]
pub struct Assertions {
    /// Client ids the registered test certificate belongs to.
    pub registered_to: Vec<String>,
    /// Seconds added to the clock when checking `nbf`/`exp`.
    pub clock_offset_secs: i64,
    /// `jti` values already accepted, with their `exp` and the assertion's signature, until
    /// they expire.
    used: HashMap<String, (i64, Vec<u8>)>,
    /// Federated identity credentials of the apps.
    pub federated: Vec<FederatedCredential>,
}

impl Assertions {
    /// Verifies `assertion` for `client_id`; `audiences` are the token endpoint URLs this
    /// request may name.
    pub fn verify(
        &mut self,
        assertion_type: Option<&str>,
        assertion: &str,
        client_id: &str,
        audiences: &[String],
    ) -> Result<(), TokenAnswer> {
        if assertion_type != Some(JWT_BEARER) {
            return Err(aad_error(
                400,
                "invalid_request",
                90023,
                &format!(
                    "InvalidRequest: client_assertion_type must be '{JWT_BEARER}', not '{}'.",
                    assertion_type.unwrap_or_default()
                ),
                None,
            ));
        }
        let jwt = Jwt::parse(assertion).ok_or_else(|| {
            invalid_jwt("the client assertion is not a JWT of three base64url parts")
        })?;
        let alg = jwt.header["alg"].as_str().unwrap_or_default();
        if !matches!(alg, "RS256" | "PS256") {
            return Err(invalid_jwt(&format!(
                "the client assertion's alg '{alg}' is not RS256 or PS256"
            )));
        }
        let claim = |name: &str| jwt.claims[name].as_str().unwrap_or_default().to_string();
        let (iss, sub) = (claim("iss"), claim("sub"));
        let names_a_certificate =
            jwt.header.get("x5t#S256").is_some() || jwt.header.get("x5t").is_some();
        if !names_a_certificate && iss != client_id {
            return self.verify_federated(&jwt, client_id);
        }
        if iss != client_id || sub != client_id {
            return Err(aad_error(
                401,
                "invalid_client",
                700021,
                &format!(
                    "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . iss '{iss}', sub '{sub}', client_id '{client_id}'."
                ),
                None,
            ));
        }
        let aud = claim("aud");
        if !audiences.iter().any(|a| a == &aud) {
            return Err(aad_error(
                401,
                "invalid_client",
                700023,
                &format!(
                    "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . aud '{aud}', expected '{}'.",
                    audiences.first().map(String::as_str).unwrap_or_default()
                ),
                None,
            ));
        }
        let (Some(exp), nbf) = (
            jwt.claims["exp"].as_i64(),
            jwt.claims["nbf"].as_i64().unwrap_or(i64::MIN),
        ) else {
            return Err(invalid_jwt("the client assertion has no exp claim"));
        };
        let now = crate::datetime::now_secs() + self.clock_offset_secs;
        if now > exp.saturating_add(CLOCK_SKEW_SECS) || now < nbf.saturating_sub(CLOCK_SKEW_SECS) {
            return Err(aad_error(
                401,
                "invalid_client",
                700024,
                &format!(
                    "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                    crate::datetime::format_iso(now),
                    if nbf == i64::MIN {
                        "(no nbf)".to_string()
                    } else {
                        crate::datetime::format_iso(nbf)
                    },
                    crate::datetime::format_iso(exp)
                ),
                None,
            ));
        }
        let certificate = self.certificate_of(&jwt.header, client_id)?;
        if !jwt.signature_verifies(alg, &certificate.public) {
            return Err(signature_failed(&format!(
                "Client assertion failed signature validation. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . Key was found (x5t#S256 '{}'), but the signature does not verify.",
                certificate.thumbprint_sha256
            )));
        }
        let jti = claim("jti");
        if jti.is_empty() {
            return Err(invalid_jwt("the client assertion has no jti claim"));
        }
        self.used
            .retain(|_, (until, _)| *until + CLOCK_SKEW_SECS >= now);
        if self
            .used
            .get(&jti)
            .is_some_and(|(_, signature)| signature != &jwt.signature)
        {
            return Err(aad_error(
                401,
                "invalid_client",
                50013,
                &format!(
                    "Assertion is invalid: jti '{jti}' was already used by another client assertion. Give each assertion a unique jti."
                ),
                None,
            ));
        }
        self.used.insert(jti, (exp, jwt.signature.clone()));
        Ok(())
    }

    /// A token of another issuer, matched against the app's federated identity credentials.
    fn verify_federated(&self, jwt: &Jwt, client_id: &str) -> Result<(), TokenAnswer> {
        let claim = |name: &str| jwt.claims[name].as_str().unwrap_or_default().to_string();
        let (iss, sub) = (claim("iss"), claim("sub"));
        let auds: Vec<String> = match &jwt.claims["aud"] {
            serde_json::Value::Array(list) => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            serde_json::Value::String(a) => vec![a.clone()],
            _ => Vec::new(),
        };
        let mine: Vec<&FederatedCredential> = self
            .federated
            .iter()
            .filter(|f| f.client_id == client_id)
            .collect();
        let no_match = |code: u32, what: &str, value: &str| {
            aad_error(
                400,
                "invalid_client",
                code,
                &format!(
                    "No matching federated identity record found for presented assertion {what} '{value}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
                ),
                None,
            )
        };
        let by_issuer: Vec<&&FederatedCredential> =
            mine.iter().filter(|f| f.issuer == iss).collect();
        if by_issuer.is_empty() {
            return Err(no_match(700211, "issuer", &iss));
        }
        let by_subject: Vec<&&&FederatedCredential> =
            by_issuer.iter().filter(|f| f.subject == sub).collect();
        if by_subject.is_empty() {
            return Err(no_match(700213, "subject", &sub));
        }
        if !by_subject
            .iter()
            .any(|f| f.audiences.iter().any(|a| auds.contains(a)))
        {
            return Err(no_match(700212, "audience", &auds.join(", ")));
        }
        let alg = jwt.header["alg"].as_str().unwrap_or_default();
        if !jwt.signature_verifies(alg, &crate::keys::signing_key().public_key()) {
            return Err(aad_error(
                401,
                "invalid_client",
                700027,
                &format!(
                    "Client assertion failed signature validation: the token is not signed by a key of issuer '{iss}'."
                ),
                None,
            ));
        }
        let now = crate::datetime::now_secs() + self.clock_offset_secs;
        let exp = jwt.claims["exp"].as_i64().unwrap_or(i64::MIN);
        let nbf = jwt.claims["nbf"].as_i64().unwrap_or(i64::MIN);
        if now > exp.saturating_add(CLOCK_SKEW_SECS) || now < nbf.saturating_sub(CLOCK_SKEW_SECS) {
            return Err(aad_error(
                400,
                "invalid_client",
                700024,
                &format!(
                    "Client assertion is not within its valid time range. Current time: {}, expiry time of assertion {}.",
                    crate::datetime::format_iso(now),
                    crate::datetime::format_iso(exp.max(0))
                ),
                None,
            ));
        }
        Ok(())
    }

    /// The registered certificate the header names by `x5t#S256` (or the legacy `x5t`).
    fn certificate_of(
        &self,
        header: &serde_json::Value,
        client_id: &str,
    ) -> Result<&'static TestCertificate, TokenAnswer> {
        let (name, thumbprint) = match (header["x5t#S256"].as_str(), header["x5t"].as_str()) {
            (Some(t), _) => ("x5t#S256", t),
            (None, Some(t)) => ("x5t", t),
            (None, None) => {
                return Err(signature_failed(
                    "Client assertion failed signature validation. The assertion header names no key: send x5t#S256 (or x5t) with the certificate's thumbprint.",
                ));
            }
        };
        let certificate = registered();
        let matches = match name {
            "x5t#S256" => thumbprint == certificate.thumbprint_sha256,
            _ => thumbprint == certificate.x5t,
        };
        if matches && self.registered_to.iter().any(|id| id == client_id) {
            Ok(certificate)
        } else {
            Err(signature_failed(&format!(
                "Client assertion failed signature validation. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . Key was not found: {name} '{thumbprint}' is not a certificate registered to app '{client_id}'."
            )))
        }
    }
}

fn invalid_jwt(why: &str) -> TokenAnswer {
    aad_error(
        401,
        "invalid_client",
        50027,
        &format!("JWT token is invalid or malformed: {why}."),
        None,
    )
}

fn signature_failed(message: &str) -> TokenAnswer {
    aad_error(401, "invalid_client", 700027, message, None)
}

/// A compact JWS, decoded but not yet verified.
struct Jwt {
    header: serde_json::Value,
    claims: serde_json::Value,
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    fn parse(token: &str) -> Option<Jwt> {
        let mut parts = token.trim().split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let json = |part: &str| -> Option<serde_json::Value> {
            let value: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()?;
            value.is_object().then_some(value)
        };
        Some(Jwt {
            header: json(header)?,
            claims: json(claims)?,
            signed: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    fn signature_verifies(&self, alg: &str, key: &rsa::PublicKey) -> bool {
        let message = self.signed.as_bytes();
        match alg {
            "RS256" => rsa::pkcs1v15::Signature::try_from(self.signature.as_slice())
                .map(|s| {
                    rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                        .verify(message, &s)
                        .is_ok()
                })
                .unwrap_or(false),
            "PS256" => rsa::pss::Signature::try_from(self.signature.as_slice())
                .map(|s| {
                    rsa::pss::VerifyingKey::<Sha256>::new_with_auto_salt_len(key.clone())
                        .verify(message, &s)
                        .is_ok()
                })
                .unwrap_or(false),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    use super::*;

    const AUD: &str = "http://127.0.0.1:9/tenant-1/oauth2/v2.0/token";

    fn assertions() -> Assertions {
        Assertions {
            registered_to: vec!["app".into()],
            ..Assertions::default()
        }
    }

    fn sign(
        certificate: &TestCertificate,
        alg: &str,
        header: serde_json::Value,
        claims: serde_json::Value,
    ) -> String {
        let mut full_header = serde_json::json!({"alg": alg, "typ": "JWT"});
        for (k, v) in header.as_object().into_iter().flatten() {
            full_header[k] = v.clone();
        }
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(full_header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let key = rsa::PrivateKey::from_pkcs8_pem(&certificate.private_key_pem).unwrap();
        let signature = match alg {
            "PS256" => rsa::pss::SigningKey::<Sha256>::new(key)
                .sign(signed.as_bytes())
                .to_vec(),
            _ => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                .sign(signed.as_bytes())
                .to_vec(),
        };
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn claims(jti: &str) -> serde_json::Value {
        let now = crate::datetime::now_secs();
        serde_json::json!({"aud": AUD, "iss": "app", "sub": "app", "jti": jti, "nbf": now, "iat": now, "exp": now + 600})
    }

    fn x5t_s256(certificate: &TestCertificate) -> serde_json::Value {
        serde_json::json!({"x5t#S256": certificate.thumbprint_sha256})
    }

    fn check(a: &mut Assertions, jwt: &str) -> Result<(), u64> {
        a.verify(Some(JWT_BEARER), jwt, "app", &[AUD.to_string()])
            .map_err(|(_, body)| body["error_codes"][0].as_u64().unwrap_or_default())
    }

    #[test]
    fn ps256_and_rs256_assertions_of_the_registered_certificate_are_accepted_and_a_jti_names_one_assertion()
     {
        let mut a = assertions();
        let cert = registered();
        let ps = sign(cert, "PS256", x5t_s256(cert), claims("one"));
        assert_eq!(check(&mut a, &ps), Ok(()));
        let legacy = serde_json::json!({"x5t": cert.x5t});
        let rs = sign(cert, "RS256", legacy, claims("two"));
        assert_eq!(check(&mut a, &rs), Ok(()));
        // The same assertion again is accepted while valid (MSAL resends its assertion) ...
        assert_eq!(check(&mut a, &ps), Ok(()));
        // ... but another assertion under a used jti is not.
        let reused = sign(cert, "PS256", x5t_s256(cert), claims("one"));
        assert_ne!(reused, ps, "PSS signatures are randomised");
        assert_eq!(check(&mut a, &reused), Err(50013));
    }

    #[test]
    fn each_assertion_failure_answers_its_aadsts_code() {
        let mut a = assertions();
        let cert = registered();
        let other = unregistered();
        // A certificate not registered to the app.
        let jwt = sign(other, "PS256", x5t_s256(other), claims("a"));
        assert_eq!(check(&mut a, &jwt), Err(700027));
        // The registered thumbprint, signed with another key.
        let jwt = sign(other, "PS256", x5t_s256(cert), claims("b"));
        assert_eq!(check(&mut a, &jwt), Err(700027));
        // Expired beyond the clock skew.
        let mut old = claims("c");
        old["exp"] = serde_json::json!(crate::datetime::now_secs() - CLOCK_SKEW_SECS - 10);
        let jwt = sign(cert, "PS256", x5t_s256(cert), old);
        assert_eq!(check(&mut a, &jwt), Err(700024));
        // Not yet valid beyond the skew.
        let mut early = claims("d");
        early["nbf"] = serde_json::json!(crate::datetime::now_secs() + CLOCK_SKEW_SECS + 60);
        let jwt = sign(cert, "PS256", x5t_s256(cert), early);
        assert_eq!(check(&mut a, &jwt), Err(700024));
        // Another audience.
        let mut elsewhere = claims("e");
        elsewhere["aud"] = "https://login.microsoftonline.com/other/oauth2/v2.0/token".into();
        let jwt = sign(cert, "PS256", x5t_s256(cert), elsewhere);
        assert_eq!(check(&mut a, &jwt), Err(700023));
        // Issued by someone else.
        let mut stranger = claims("f");
        stranger["iss"] = "someone-else".into();
        let jwt = sign(cert, "PS256", x5t_s256(cert), stranger);
        assert_eq!(check(&mut a, &jwt), Err(700021));
        // Not a JWT, and an alg Entra does not take.
        assert_eq!(check(&mut a, "not-a-jwt"), Err(50027));
        let jwt = sign(cert, "HS256", x5t_s256(cert), claims("g"));
        assert_eq!(check(&mut a, &jwt), Err(50027));
        // Within the skew is fine.
        let mut recent = claims("h");
        recent["exp"] = serde_json::json!(crate::datetime::now_secs() - 60);
        let jwt = sign(cert, "RS256", x5t_s256(cert), recent);
        assert_eq!(check(&mut a, &jwt), Ok(()));
    }

    #[test]
    fn a_shifted_clock_makes_a_fresh_assertion_expired() {
        let mut a = assertions();
        a.clock_offset_secs = 3600;
        let cert = registered();
        let jwt = sign(cert, "PS256", x5t_s256(cert), claims("z"));
        assert_eq!(check(&mut a, &jwt), Err(700024));
    }

    #[test]
    fn a_federated_token_matches_the_apps_credential_by_issuer_subject_and_audience() {
        let origin = "http://127.0.0.1:9";
        let mut a = assertions();
        a.federated = vec![FederatedCredential {
            client_id: "app".into(),
            issuer: test_issuer(origin),
            subject: FEDERATED_SUBJECT.into(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
        }];
        let token = |subject: &str, audience: &str, lifetime: i64| {
            federated_token(origin, subject, audience, lifetime)
        };
        let good = token(FEDERATED_SUBJECT, TOKEN_EXCHANGE_AUDIENCE, 600);
        assert_eq!(check(&mut a, &good), Ok(()));
        // Presented again while valid: CI tools reuse their token.
        assert_eq!(check(&mut a, &good), Ok(()));
        let other_subject = token(
            "system:serviceaccount:default:other",
            TOKEN_EXCHANGE_AUDIENCE,
            600,
        );
        assert_eq!(check(&mut a, &other_subject), Err(700213));
        let other_audience = token(FEDERATED_SUBJECT, "api://other", 600);
        assert_eq!(check(&mut a, &other_audience), Err(700212));
        let expired = token(
            FEDERATED_SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
            -CLOCK_SKEW_SECS - 60,
        );
        assert_eq!(check(&mut a, &expired), Err(700024));
        let elsewhere = federated_token(
            "http://127.0.0.1:10",
            FEDERATED_SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
            600,
        );
        assert_eq!(check(&mut a, &elsewhere), Err(700211));
        // Signed by someone else: the registered certificate's key is not the issuer's.
        let mut forged: Vec<String> = good.split('.').map(str::to_string).collect();
        forged[2] = sign(registered(), "RS256", serde_json::json!({}), claims("x"))
            .rsplit('.')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(check(&mut a, &forged.join(".")), Err(700027));
    }

    #[test]
    fn the_pfx_holds_the_key_and_certificate() {
        let cert = registered();
        let pfx = STANDARD.decode(&cert.pfx_base64).unwrap();
        let store = p12_keystore::KeyStore::from_pkcs12(
            &pfx,
            &cert.pfx_password,
            p12_keystore::Pkcs12ImportPolicy::default(),
        )
        .unwrap();
        let (_, chain) = store.private_key_chain().unwrap();
        let der = chain.certs()[0].as_der();
        assert_eq!(
            URL_SAFE_NO_PAD.encode(Sha256::digest(der)),
            cert.thumbprint_sha256
        );
    }
}
