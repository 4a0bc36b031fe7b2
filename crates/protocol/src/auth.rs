//! The cluster secret: where it travels (headers, environment) and how servers check it, once
//! for every process that needs to (Nimbus, supervisors' log servers, workers' handshakes).

#[cfg(feature = "secret")]
use sha2::{Digest, Sha256};
#[cfg(feature = "secret")]
use std::fmt;

/// HTTP header carrying the cluster secret on every control-plane call.
pub const SECRET_HEADER: &str = "x-tempest-secret";
/// The scheme of the other header that may carry the cluster secret: `Authorization: Bearer S`
/// (for tools such as Prometheus that cannot send a custom header).
pub const BEARER_PREFIX: &str = "Bearer ";
/// Environment variable holding the cluster secret (never passed on a command line).
pub const SECRET_ENV: &str = "TEMPEST_SECRET";
/// Environment variable holding the Nimbus URL.
pub const NIMBUS_ENV: &str = "TEMPEST_NIMBUS";
/// The Nimbus URL when none is given.
pub const DEFAULT_NIMBUS: &str = "http://127.0.0.1:6627";

/// The secret a request presents: the value of `x-tempest-secret` if present, else the
/// credentials of `Authorization: Bearer <secret>`.
pub fn presented_secret<'a>(
    x_tempest_secret: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
) -> Option<&'a [u8]> {
    x_tempest_secret.or_else(|| {
        authorization.and_then(|a| {
            let prefix = BEARER_PREFIX.as_bytes();
            (a.len() >= prefix.len() && a[..prefix.len()].eq_ignore_ascii_case(prefix))
                .then(|| a[prefix.len()..].trim_ascii())
        })
    })
}

#[cfg(feature = "secret")]
/// The cluster secret as a server keeps it: only its sha256, compared in constant time (as
/// digests, so not even its length leaks).
#[derive(Clone)]
pub struct SecretDigest {
    digest: [u8; 32],
}

#[cfg(feature = "secret")]
impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

#[cfg(feature = "secret")]
impl SecretDigest {
    /// Keeps the digest of `secret`.
    pub fn new(secret: &str) -> Self {
        SecretDigest {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `given` is the secret, in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(given).into();
        subtle::ConstantTimeEq::ct_eq(&digest[..], &self.digest[..]).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_from_either_header() {
        assert_eq!(
            presented_secret(Some(b"a"), Some(b"Bearer b")),
            Some(&b"a"[..])
        );
        assert_eq!(presented_secret(None, Some(b"Bearer b ")), Some(&b"b"[..]));
        assert_eq!(presented_secret(None, Some(b"bearer b")), Some(&b"b"[..]));
        assert_eq!(presented_secret(None, Some(b"Basic b")), None);
        assert_eq!(presented_secret(None, Some(b"Bear")), None);
        assert_eq!(presented_secret(None, None), None);
    }

    #[cfg(feature = "secret")]
    #[test]
    fn the_digest_matches_only_the_secret_and_does_not_show_it() {
        let s = SecretDigest::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cre"));
        assert!(!s.matches(b""));
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
