//! Certificate credentials: the client assertion a certificate connection signs in with.
//!
//! Microsoft identity platform, "application authentication certificate credentials"
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>): a JWT whose
//! header has `alg` (PS256 is what the page asks for; RS256 for tenants and tools that still
//! expect it), `typ` `JWT` and `x5t#S256`; whose claims are `aud` (the token endpoint), `iss` and
//! `sub` (both the client id), a unique `jti`, `nbf`, `iat` and a short `exp` ("5-10 minutes
//! after nbf at most"); signed with the certificate's private key, and posted as
//! `client_assertion` with `client_assertion_type` `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
//!
//! The header names the certificate by `x5t#S256` only, the SHA-256 thumbprint the page
//! documents: the SHA-1 `x5t` is the legacy form, and SHA-1 is no longer a safe way to name a key.
//!
//! The key and the PFX password are secrets: no message here quotes them, or any part of them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};
use rsa::sha2::{Digest as _, Sha256};
use rsa::signature::{SignatureEncoding as _, Signer as _};

use crate::bindings::dynamics::connector::types::ErrorCode;
use crate::definition::{InputDef, Kind};
use crate::error::{Result, error, invalid_input};

/// The assertion type for a JWT client assertion, certificate or federated.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Standard base64 with or without padding, as files are pasted.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How long an assertion is valid: short, as the page asks, and long enough for a retried
/// token request.
const LIFETIME_SECS: u64 = 300;

pub(super) const CERTIFICATE: InputDef = InputDef::new("certificate", "Certificate", Kind::Secret)
    .required()
    .comments("The certificate uploaded to the app registration (Certificates & secrets) with its private key: PEM text holding -----BEGIN PRIVATE KEY----- (or RSA PRIVATE KEY) and -----BEGIN CERTIFICATE-----, or a PFX/PKCS#12 file as base64.");

pub(super) const CERTIFICATE_PASSWORD: InputDef =
    InputDef::new("certificatePassword", "Certificate Password", Kind::Secret)
        .comments("The PFX file's password; leave empty for PEM or a PFX without one.");

pub(super) const SIGNING_ALGORITHM: InputDef =
    InputDef::new("signingAlgorithm", "Signing Algorithm", Kind::Picklist)
        .choices(&[
            ("PS256 (RSA-PSS)", "PS256"),
            ("RS256 (RSA PKCS#1 v1.5)", "RS256"),
        ])
        .default("PS256")
        .comments("How the client assertion is signed. Microsoft asks for PS256.");

/// A private key and the certificate that names it, checked to belong together.
pub struct SigningCertificate {
    key: rsa::PrivateKey,
    /// base64url SHA-256 of the certificate's DER.
    thumbprint_sha256: String,
}

impl SigningCertificate {
    /// Reads the Certificate input: PEM, or a base64 PFX opened with `password`.
    pub fn load(text: &str, password: Option<&str>) -> Result<SigningCertificate> {
        let text = text.trim();
        let (key, certificate) = if text.contains("-----BEGIN") {
            from_pem(text)?
        } else {
            from_pfx(text, password.unwrap_or_default())?
        };
        let from_certificate = public_key_of(&certificate)?;
        if from_certificate != key.to_public_key() {
            return Err(invalid_input(
                &CERTIFICATE,
                "the certificate does not belong to the private key: give the key and the certificate uploaded to the app registration together",
            ));
        }
        Ok(SigningCertificate {
            key,
            thumbprint_sha256: URL_SAFE_NO_PAD.encode(Sha256::digest(&certificate)),
        })
    }

    /// A signed client assertion for `client_id` at `token_url`, valid from `now` (Unix seconds).
    pub fn assertion(
        &self,
        algorithm: &str,
        client_id: &str,
        token_url: &str,
        now: u64,
    ) -> Result<String> {
        let header = serde_json::json!({
            "alg": algorithm,
            "typ": "JWT",
            "x5t#S256": self.thumbprint_sha256,
        });
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": jti()?,
            "nbf": now,
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match algorithm {
            "PS256" => rsa::pss::SigningKey::<Sha256>::new(self.key.clone())
                .try_sign(signed.as_bytes())
                .map(|s| s.to_vec()),
            "RS256" => rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone())
                .try_sign(signed.as_bytes())
                .map(|s| s.to_vec()),
            other => {
                return Err(invalid_input(
                    &SIGNING_ALGORITHM,
                    format!("{other:?} is not a signing algorithm; choose PS256 or RS256"),
                ));
            }
        }
        .map_err(|_| error(ErrorCode::Internal, "signing the client assertion failed"))?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The private key and the first certificate of PEM text.
fn from_pem(text: &str) -> Result<(rsa::PrivateKey, Vec<u8>)> {
    let mut key = None;
    let mut certificate = None;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let body_start = label_end + 5;
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = after[body_start..].find(&end_marker) else {
            return Err(invalid_input(
                &CERTIFICATE,
                format!("the PEM block {label} has no END line"),
            ));
        };
        let body: String = after[body_start..body_start + body_end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD.decode(body.as_bytes()).map_err(|_| {
            invalid_input(
                &CERTIFICATE,
                format!("the PEM block {label} is not valid base64"),
            )
        })?;
        match label {
            "PRIVATE KEY" if key.is_none() => {
                key = Some(rsa::PrivateKey::from_pkcs8_der(&der).map_err(|_| {
                    invalid_input(
                        &CERTIFICATE,
                        "the PRIVATE KEY is not an RSA key in PKCS#8 (certificate credentials are RSA)",
                    )
                })?);
            }
            "RSA PRIVATE KEY" if key.is_none() => {
                key = Some(rsa::PrivateKey::from_pkcs1_der(&der).map_err(|_| {
                    invalid_input(&CERTIFICATE, "the RSA PRIVATE KEY could not be read")
                })?);
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(invalid_input(
                    &CERTIFICATE,
                    "the private key is encrypted: give it unencrypted, or as a PFX file with its password",
                ));
            }
            "CERTIFICATE" if certificate.is_none() => certificate = Some(der),
            _ => {}
        }
        rest = &after[body_start + body_end + end_marker.len()..];
    }
    match (key, certificate) {
        (Some(key), Some(certificate)) => Ok((key, certificate)),
        (None, _) => Err(invalid_input(
            &CERTIFICATE,
            "holds no private key: include the -----BEGIN PRIVATE KEY----- (or RSA PRIVATE KEY) block",
        )),
        (_, None) => Err(invalid_input(
            &CERTIFICATE,
            "holds no certificate: include the -----BEGIN CERTIFICATE----- block, whose thumbprint names the key to Entra ID",
        )),
    }
}

/// The private key and its certificate from a base64 PFX (PKCS#12) file.
fn from_pfx(text: &str, password: &str) -> Result<(rsa::PrivateKey, Vec<u8>)> {
    let text = match text.split_once(";base64,") {
        Some((prefix, data)) if prefix.starts_with("data:") => data,
        _ => text,
    };
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = BASE64_ANY_PADDING.decode(compact.as_bytes()).map_err(|_| {
        invalid_input(
            &CERTIFICATE,
            "is neither PEM text (-----BEGIN ...) nor a PFX file in base64",
        )
    })?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        &bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|_| {
        invalid_input(
            &CERTIFICATE,
            "the PFX file could not be opened: check Certificate Password, and that the file is a PFX/PKCS#12 file",
        )
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(invalid_input(
            &CERTIFICATE,
            "the PFX file holds no private key: export the certificate with its private key",
        ));
    };
    let key = rsa::PrivateKey::from_pkcs8_der(chain.key().as_der()).map_err(|_| {
        invalid_input(
            &CERTIFICATE,
            "the PFX file's private key is not an RSA key (certificate credentials are RSA)",
        )
    })?;
    let Some(certificate) = chain.certs().first() else {
        return Err(invalid_input(
            &CERTIFICATE,
            "the PFX file holds no certificate for its private key",
        ));
    };
    Ok((key, certificate.as_der().to_vec()))
}

/// The RSA public key a DER certificate carries.
fn public_key_of(certificate: &[u8]) -> Result<rsa::PublicKey> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(|_| {
        invalid_input(
            &CERTIFICATE,
            "the certificate is not a valid X.509 certificate",
        )
    })?;
    rsa::PublicKey::from_public_key_der(parsed.public_key().raw).map_err(|_| {
        invalid_input(
            &CERTIFICATE,
            "the certificate's key is not an RSA key (certificate credentials are RSA)",
        )
    })
}

/// A random GUID-shaped `jti`, as the page's example shows.
fn jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|problem| {
        error(
            ErrorCode::Internal,
            format!("no randomness available: {problem}"),
        )
    })?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// What to do about the AADSTS codes of a refused client assertion.
pub fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "AADSTS700027" => {
            "Entra ID does not know this certificate for the app: upload the certificate (its public part, .cer/.pem) under the app registration's Certificates & secrets, or use the certificate that is uploaded there"
        }
        "AADSTS700024" => {
            "the client assertion was outside its valid time: check this machine's clock (NTP); for federated credentials, the token from the file or variable has expired — the host must read a fresh one"
        }
        "AADSTS700023" => {
            "the assertion's audience is not this token endpoint: check Token URL (or Tenant ID) names your tenant at login.microsoftonline.com/<tenant>/oauth2/v2.0/token"
        }
        "AADSTS700021" => {
            "the assertion names another application: check Client ID is the app registration's Application (client) ID"
        }
        "AADSTS50027" => {
            "the client assertion is not a valid JWT: for federated credentials, check that the file or variable holds the identity token itself"
        }
        "AADSTS50013" => {
            "the client assertion's jti was already used by another assertion: each assertion needs a unique jti (the connector makes one; a federated token must come fresh from its issuer)"
        }
        "AADSTS700025" => {
            "the app is registered as a public client, which cannot use certificates: turn off 'Allow public client flows' or use another app registration"
        }
        "AADSTS70021" | "AADSTS700211" | "AADSTS700212" | "AADSTS700213" => {
            "no federated identity credential of the app matches the token's issuer, subject and audience: add one under Certificates & secrets > Federated credentials with exactly the issuer and subject of the token (audience api://AzureADTokenExchange)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_neither_pem_nor_pfx_is_refused_naming_the_certificate_field() {
        let problem = SigningCertificate::load("not a certificate!", None)
            .err()
            .expect("refused");
        assert_eq!(problem.field.as_deref(), Some("certificate"));
        assert!(
            problem.message.contains("neither PEM"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn pem_without_a_key_or_certificate_says_which_is_missing() {
        let only_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----";
        let problem = SigningCertificate::load(only_cert, None)
            .err()
            .expect("refused");
        assert!(
            problem.message.contains("no private key"),
            "{}",
            problem.message
        );
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----";
        let problem = SigningCertificate::load(encrypted, None)
            .err()
            .expect("refused");
        assert!(problem.message.contains("encrypted"), "{}", problem.message);
    }

    #[test]
    fn every_assertion_failure_code_has_a_hint() {
        for code in [
            "AADSTS700027",
            "AADSTS700024",
            "AADSTS700023",
            "AADSTS700021",
            "AADSTS50027",
            "AADSTS50013",
            "AADSTS70021",
        ] {
            assert!(hint(code).is_some(), "{code}");
        }
    }
}
