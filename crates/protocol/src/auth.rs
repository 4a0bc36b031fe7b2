//! Credentials: the cluster secret and user tokens, where they travel (headers, environment),
//! how servers keep and check them (Nimbus, supervisors' log servers, workers' handshakes), the
//! roles a user token carries, and the workers' own credential derived from the secret
//! (`docs/design/security.md`).

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
/// Environment variable holding a user's token, which the CLI and `submit` send instead of the
/// cluster secret when it is set (never passed on a command line).
pub const TOKEN_ENV: &str = "TEMPEST_TOKEN";
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

/// The credential a client process sends: `TEMPEST_TOKEN` if set (a user's token), else
/// `TEMPEST_SECRET` (the cluster secret); empty values count as unset.
pub fn credential_from_env() -> Option<String> {
    [TOKEN_ENV, SECRET_ENV]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|v| !v.trim().is_empty())
}

/// What a user's token lets it do on Nimbus's API (`[nimbus.users]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every topology (as the cluster secret).
    Admin,
    /// Read everything; submit topologies and operate (kill, rebalance, activate, deactivate,
    /// log levels) those it owns or whose `topology.users` list it.
    Submitter,
    /// Read only.
    Viewer,
}

impl Role {
    /// Every role, as named in the config.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Submitter, Role::Viewer];

    /// Its name in the config (`admin`, `submitter`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Submitter => "submitter",
            Role::Viewer => "viewer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}; the roles are admin, submitter, viewer"))
    }
}

/// Whether `name` may be a user name: 1-64 of `A-Z a-z 0-9 . _ - @`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name {name:?} is not allowed: use 1-64 characters of A-Z a-z 0-9 . _ - @"
        ))
    }
}

/// The prefix of user tokens made by `tempest users add` (so a leaked one is easy to grep for).
pub const TOKEN_PREFIX: &str = "tpt_";

#[cfg(feature = "secret")]
/// The sha256 of a token, in lower-case hex: what `[nimbus.users]` stores as `token_sha256`.
/// A fast hash is enough: tokens are 256 random bits, not passwords.
pub fn token_sha256(token: &str) -> String {
    hex_of(&Sha256::digest(token.trim().as_bytes()))
}

#[cfg(feature = "secret")]
fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(feature = "secret")]
/// The credential workers present (to Nimbus, and to each other in the data-plane handshake),
/// derived from the cluster secret by the supervisor that starts them: workers run the
/// topology's code, which must not learn the secret itself (it would be admin). Nimbus knows
/// it as the `worker` principal: it may read and send worker heartbeats, nothing else.
pub fn worker_credential(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"tempest worker credential v1\n");
    h.update(secret.as_bytes());
    format!("tw_{}", hex_of(&h.finalize()))
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

    /// Keeps a digest given in hex (a user's `token_sha256`); `None` unless it is 64 hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, d) in digest.iter_mut().enumerate() {
            *d = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(SecretDigest { digest })
    }

    /// Whether `given` is the secret, in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(given).into();
        self.matches_digest(&digest)
    }

    /// Whether `digest` (the sha256 of what was presented) is this one's, in constant time.
    pub fn matches_digest(&self, digest: &[u8; 32]) -> bool {
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

    #[cfg(feature = "secret")]
    #[test]
    fn a_token_matches_its_hex_digest_and_the_worker_credential_is_not_the_secret() {
        let hex = token_sha256("tpt_abc");
        assert_eq!(hex.len(), 64);
        let d = SecretDigest::from_hex(&hex).unwrap();
        assert!(d.matches(b"tpt_abc"));
        assert!(!d.matches(b"tpt_abd"));
        assert!(SecretDigest::from_hex("abc").is_none());
        assert!(SecretDigest::from_hex(&"g".repeat(64)).is_none());
        let w = worker_credential("s3cret");
        assert!(w.starts_with("tw_") && !w.contains("s3cret"));
        assert_eq!(
            w, "tw_8cd1aec554184237e3bce2f399cc24cf6aafda44216e6c0846f991c003b37faf",
            "supervisor/tests/worker_lifecycle.rs's script holds this value"
        );
        assert_ne!(w, worker_credential("s3cret2"));
    }

    #[test]
    fn roles_and_user_names_are_checked() {
        assert_eq!("viewer".parse::<Role>(), Ok(Role::Viewer));
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.contains("\"root\"") && e.contains("submitter"), "{e}");
        assert!(check_user_name("team-a.bot@x").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").unwrap_err().contains("\"a b\""));
    }
}
