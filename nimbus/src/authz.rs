//! Who may do what on Nimbus's API (`docs/design/security.md`): every request is identified by
//! its credential (the cluster secret, a user's token, or the workers' credential derived from
//! the secret), classified by its method and path, and let through, or refused with 401 (no or
//! an unknown credential) or 403 (the role or the topology's owner does not allow it). Changes
//! and refusals are written to the audit log ([`crate::audit`]).
//!
//! Without a secret and without users the API is open: every request is `anonymous` with the
//! rights of an admin, and changes are still audited.

use crate::audit::{Audit, AuditLine};
use crate::cluster::Cluster;
use crate::config::NimbusConfig;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::Arc;
use tempest_monitor::http::ApiError;
use tempest_protocol::auth::{
    presented_secret, worker_credential, Role, SecretDigest, SECRET_HEADER,
};

/// The name the cluster secret acts under (in the audit log and as a topology's owner).
pub(crate) const SECRET_PRINCIPAL: &str = "cluster-secret";
/// The name the workers' credential acts under.
pub(crate) const WORKER_PRINCIPAL: &str = "worker";
/// The name every request acts under on an open cluster (no secret, no users).
pub(crate) const ANONYMOUS: &str = "anonymous";

/// What an identified caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A user's role (the cluster secret, and everyone on an open cluster, are admins).
    User(Role),
    /// A worker: reads, and sends worker heartbeats.
    Worker,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::User(r) => r.as_str(),
            Access::Worker => "worker",
        }
    }
}

/// Who a request comes from; handlers find it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The user's name (`cluster-secret`, `worker`, `anonymous` for the built-in ones).
    pub(crate) name: String,
    /// What it may do.
    pub(crate) access: Access,
}

/// The credentials Nimbus knows, kept as sha256 digests only.
pub(crate) struct Credentials {
    secret: Option<SecretDigest>,
    worker: Option<SecretDigest>,
    users: Vec<(String, Role, SecretDigest)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret", &self.secret.is_some())
            .field("users", &self.users.len())
            .finish()
    }
}

/// Why a request was refused: its status and message.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Credentials {
    /// The credentials of `config` (checked by `NimbusConfig::validate`: every digest is hex).
    pub(crate) fn of(config: &NimbusConfig) -> Self {
        Credentials {
            secret: config.secret.as_deref().map(SecretDigest::new),
            worker: config
                .secret
                .as_deref()
                .map(|s| SecretDigest::new(&worker_credential(s))),
            users: config
                .users
                .iter()
                .filter_map(|(name, u)| {
                    SecretDigest::from_hex(&u.token_sha256).map(|d| (name.clone(), u.role, d))
                })
                .collect(),
        }
    }

    /// Whether anyone may call without a credential.
    pub(crate) fn open(&self) -> bool {
        self.secret.is_none() && self.users.is_empty()
    }

    /// Who presented `given`, if anyone known. Every known digest is compared, in constant
    /// time, whatever matches first.
    fn identify(&self, given: &[u8]) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(given).into();
        let mut found = None;
        if self
            .secret
            .as_ref()
            .is_some_and(|s| s.matches_digest(&digest))
        {
            found = Some(Principal {
                name: SECRET_PRINCIPAL.into(),
                access: Access::User(Role::Admin),
            });
        }
        if self
            .worker
            .as_ref()
            .is_some_and(|s| s.matches_digest(&digest))
        {
            found = Some(Principal {
                name: WORKER_PRINCIPAL.into(),
                access: Access::Worker,
            });
        }
        for (name, role, d) in &self.users {
            if d.matches_digest(&digest) {
                found = Some(Principal {
                    name: name.clone(),
                    access: Access::User(*role),
                });
            }
        }
        found
    }
}

/// What a request would do, from its method and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// A GET or HEAD of the monitoring or control API.
    Read,
    /// Download a topology binary (supervisors and other Nimbus hosts: admin only, as binaries
    /// may embed their team's credentials).
    DownloadArtifact,
    /// Upload a topology binary.
    Upload,
    /// Submit a topology.
    Submit,
    /// A supervisor's heartbeat.
    SupervisorHeartbeat,
    /// A worker's heartbeat.
    WorkerHeartbeat,
    /// Change a topology: `what` is kill, rebalance, activate, deactivate, debug, logconfig...
    Operate {
        /// The topology.
        topology: String,
        /// What is done to it.
        what: String,
    },
    /// Any other change (admins only).
    Other,
}

impl Action {
    /// The action of `method` on `path`.
    pub(crate) fn of(method: &Method, path: &str) -> Action {
        let read = method == Method::GET || method == Method::HEAD;
        if path.starts_with("/api/v1/artifacts/") {
            return match *method {
                Method::GET | Method::HEAD => Action::DownloadArtifact,
                Method::PUT => Action::Upload,
                _ => Action::Other,
            };
        }
        if method == Method::POST {
            match path {
                "/api/v1/topologies" => return Action::Submit,
                "/api/v1/supervisor/heartbeat" => return Action::SupervisorHeartbeat,
                "/api/v1/worker/heartbeat" => return Action::WorkerHeartbeat,
                _ => {}
            }
        }
        if let Some(rest) = path.strip_prefix("/api/v1/topology/") {
            let mut parts = rest.split('/');
            let topology = parts.next().unwrap_or_default().to_string();
            let segments: Vec<&str> = parts.collect();
            let first = segments.first().copied().unwrap_or_default();
            // Storm's profiling actions are GETs; they change a worker, so they operate.
            if !topology.is_empty() && (!read || first == "profiling") {
                let what = match (first, segments.get(2)) {
                    ("component", Some(action)) => action.to_string(),
                    ("", _) => method.as_str().to_ascii_lowercase(),
                    (first, _) => first.to_string(),
                };
                return Action::Operate { topology, what };
            }
        }
        if read {
            Action::Read
        } else {
            Action::Other
        }
    }

    /// Its name in the audit log.
    fn name(&self, method: &Method, path: &str) -> String {
        match self {
            Action::Read => "read".into(),
            Action::DownloadArtifact => "download".into(),
            Action::Upload => "upload".into(),
            Action::Submit => "submit".into(),
            Action::SupervisorHeartbeat => "supervisor-heartbeat".into(),
            Action::WorkerHeartbeat => "worker-heartbeat".into(),
            Action::Operate { what, .. } => what.clone(),
            Action::Other => format!("{method} {path}"),
        }
    }

    /// Whether a successful one is a change the audit log records.
    fn audited(&self) -> bool {
        matches!(
            self,
            Action::Upload | Action::Submit | Action::Operate { .. } | Action::Other
        )
    }
}

/// What the checker needs to know of a topology: its owner and `topology.users`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopologyAcl {
    /// `topology.submitter.user`, if set.
    pub(crate) owner: Option<String>,
    /// `topology.users`.
    pub(crate) users: Vec<String>,
}

/// Whether `who` may do `action` (`acl`: the topology's, for [`Action::Operate`] on a known
/// one); the 403 message if not.
pub(crate) fn check(
    who: &Principal,
    action: &Action,
    acl: Option<&TopologyAcl>,
    label: &str,
) -> Result<(), String> {
    let subject = match who.access {
        Access::Worker => "the workers' credential".to_string(),
        Access::User(role) => format!("user {:?} (role {role})", who.name),
    };
    match (who.access, action) {
        (Access::User(Role::Admin), _) => Ok(()),
        (_, Action::Read) => Ok(()),
        (Access::Worker, Action::WorkerHeartbeat) => Ok(()),
        (Access::Worker, _) => Err(format!(
            "{subject} may only read and send worker heartbeats; it may not {label}"
        )),
        (Access::User(Role::Viewer), _) => {
            Err(format!("{subject} may only read; it may not {label}"))
        }
        (Access::User(Role::Submitter), Action::Upload | Action::Submit) => Ok(()),
        (Access::User(Role::Submitter), Action::Operate { topology, .. }) => match acl {
            // Unknown topology: the handler answers 404.
            None => Ok(()),
            Some(acl) => {
                if acl.owner.as_deref() == Some(who.name.as_str()) || acl.users.contains(&who.name)
                {
                    Ok(())
                } else {
                    Err(format!(
                        "{subject} may not {label}: topology {topology:?} belongs to {} and its topology.users {:?} do not list {:?}",
                        acl.owner
                            .as_deref()
                            .map_or("nobody (no topology.submitter.user)".to_string(), |o| format!("{o:?}")),
                        acl.users,
                        who.name
                    ))
                }
            }
        },
        (Access::User(Role::Submitter), _) => Err(format!(
            "{subject} may not {label}: only admins (and the cluster secret) may"
        )),
    }
}

/// The state of the [`require`] layer.
#[derive(Clone)]
pub(crate) struct Gate {
    pub(crate) credentials: Arc<Credentials>,
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) audit: Arc<Audit>,
}

/// The audit log's `topology` of a submit: set by the submit handler on its answer.
#[derive(Debug, Clone)]
pub(crate) struct SubmittedName(pub(crate) String);

/// The layer: identifies the caller, checks the action, audits changes and refusals.
pub(crate) async fn require(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let action = Action::of(&method, &path);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "unknown".to_string());
    let label = match &action {
        Action::Operate { topology, what } => format!("{what} topology {topology:?}"),
        other => other.name(&method, &path),
    };
    let topology = match &action {
        Action::Operate { topology, .. } => Some(topology.clone()),
        _ => None,
    };
    let line =
        |who: Option<&Principal>, outcome: &str, status: StatusCode, detail: Option<String>| {
            AuditLine {
                who: who.map_or_else(|| "unauthenticated".to_string(), |p| p.name.clone()),
                role: who.map(|p| p.access.name().to_string()),
                action: action.name(&method, &path),
                topology: topology.clone(),
                method: method.to_string(),
                path: path.clone(),
                outcome: outcome.to_string(),
                status: status.as_u16(),
                peer: peer.clone(),
                detail,
            }
        };
    let who = if gate.credentials.open() {
        Ok(Principal {
            name: ANONYMOUS.into(),
            access: Access::User(Role::Admin),
        })
    } else {
        let headers = req.headers();
        match presented_secret(
            headers.get(SECRET_HEADER).map(|v| v.as_bytes()),
            headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        ) {
            None => Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                message: "no credential: send a user token or the cluster secret as \
                          `Authorization: Bearer <token>` or in x-tempest-secret \
                          (the CLI reads TEMPEST_TOKEN, else TEMPEST_SECRET)"
                    .into(),
            }),
            Some(given) => gate.credentials.identify(given).ok_or_else(|| Refusal {
                status: StatusCode::UNAUTHORIZED,
                message: "unknown credential: the token or secret sent is not one this Nimbus \
                          knows (`tempest users add` makes tokens; the admin puts the line it \
                          prints under [nimbus.users])"
                    .into(),
            }),
        }
    };
    let refused = match who {
        Err(refusal) => Err((None, refusal)),
        Ok(who) => {
            let acl = match &action {
                Action::Operate { topology, .. } if who.access != Access::User(Role::Admin) => {
                    gate.cluster.topology_acl(topology).await
                }
                _ => None,
            };
            match check(&who, &action, acl.as_ref(), &label) {
                Ok(()) => Ok(who),
                Err(message) => Err((
                    Some(who),
                    Refusal {
                        status: StatusCode::FORBIDDEN,
                        message,
                    },
                )),
            }
        }
    };
    match refused {
        Err((who, refusal)) => {
            let outcome = if who.is_some() {
                "forbidden"
            } else {
                "unauthorized"
            };
            gate.audit
                .write(line(
                    who.as_ref(),
                    outcome,
                    refusal.status,
                    Some(refusal.message.clone()),
                ))
                .await;
            tempest_server::linger::discard(req.into_body()).await;
            ApiError::new(refusal.status, refusal.message).into_response()
        }
        Ok(who) => {
            req.extensions_mut().insert(who.clone());
            let resp = next.run(req).await;
            if action.audited() {
                let status = resp.status();
                let outcome = if status.is_success() { "ok" } else { "failed" };
                let mut entry = line(Some(&who), outcome, status, None);
                if let Some(SubmittedName(name)) = resp.extensions().get::<SubmittedName>() {
                    entry.topology = Some(name.clone());
                }
                gate.audit.write(entry).await;
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role) -> Principal {
        Principal {
            name: name.into(),
            access: Access::User(role),
        }
    }

    fn op(topology: &str, what: &str) -> Action {
        Action::Operate {
            topology: topology.into(),
            what: what.into(),
        }
    }

    #[test]
    fn requests_are_classified_by_method_and_path() {
        let of = |m: Method, p: &str| Action::of(&m, p);
        assert_eq!(of(Method::GET, "/api/v1/topology/wc"), Action::Read);
        assert_eq!(of(Method::GET, "/metrics"), Action::Read);
        assert_eq!(
            of(Method::POST, "/api/v1/topology/wc/kill/0"),
            op("wc", "kill")
        );
        assert_eq!(
            of(Method::POST, "/api/v1/topology/wc/rebalance/5"),
            op("wc", "rebalance")
        );
        assert_eq!(
            of(
                Method::POST,
                "/api/v1/topology/wc/component/split/debug/enable/5"
            ),
            op("wc", "debug")
        );
        assert_eq!(
            of(Method::GET, "/api/v1/topology/wc/profiling/start/h:1/5"),
            op("wc", "profiling")
        );
        assert_eq!(
            of(Method::POST, "/api/v1/topology/wc/logconfig"),
            op("wc", "logconfig")
        );
        assert_eq!(of(Method::POST, "/api/v1/topologies"), Action::Submit);
        assert_eq!(of(Method::PUT, "/api/v1/artifacts/ab"), Action::Upload);
        assert_eq!(
            of(Method::GET, "/api/v1/artifacts/ab"),
            Action::DownloadArtifact
        );
        assert_eq!(
            of(Method::POST, "/api/v1/worker/heartbeat"),
            Action::WorkerHeartbeat
        );
        assert_eq!(of(Method::POST, "/api/v1/nimbus/log-level"), Action::Other);
        assert_eq!(of(Method::DELETE, "/api/v1/topologies"), Action::Other);
    }

    #[test]
    fn roles_owners_and_topology_users_decide() {
        let acl = TopologyAcl {
            owner: Some("alice".into()),
            users: vec!["carol".into()],
        };
        let kill = op("wc", "kill");
        let ok = |p: &Principal, a: &Action| check(p, a, Some(&acl), "kill topology \"wc\"");
        assert!(ok(&user("root", Role::Admin), &kill).is_ok());
        assert!(ok(&user("alice", Role::Submitter), &kill).is_ok());
        assert!(ok(&user("carol", Role::Submitter), &kill).is_ok());
        let e = ok(&user("bob", Role::Submitter), &kill).unwrap_err();
        assert!(
            e.contains("\"bob\"") && e.contains("\"alice\"") && e.contains("submitter"),
            "{e}"
        );
        let e = ok(&user("carol", Role::Viewer), &kill).unwrap_err();
        assert!(e.contains("role viewer") && e.contains("only read"), "{e}");
        assert!(ok(&user("v", Role::Viewer), &Action::Read).is_ok());
        assert!(ok(&user("v", Role::Viewer), &Action::Submit).is_err());
        assert!(ok(&user("bob", Role::Submitter), &Action::Submit).is_ok());
        assert!(ok(&user("bob", Role::Submitter), &Action::DownloadArtifact).is_err());
        assert!(ok(&user("bob", Role::Submitter), &Action::SupervisorHeartbeat).is_err());
        assert!(ok(&user("bob", Role::Submitter), &Action::Other).is_err());
        let worker = Principal {
            name: WORKER_PRINCIPAL.into(),
            access: Access::Worker,
        };
        assert!(ok(&worker, &Action::WorkerHeartbeat).is_ok());
        assert!(ok(&worker, &Action::Read).is_ok());
        assert!(ok(&worker, &kill)
            .unwrap_err()
            .contains("workers' credential"));
        assert!(ok(&worker, &Action::SupervisorHeartbeat).is_err());
    }

    #[test]
    fn the_secret_the_worker_credential_and_tokens_are_told_apart() {
        let mut config = NimbusConfig {
            secret: Some("s3cret".into()),
            ..NimbusConfig::default()
        };
        config.users.insert(
            "alice".into(),
            crate::config::UserEntry {
                role: Role::Submitter,
                token_sha256: tempest_protocol::auth::token_sha256("tpt_alice"),
            },
        );
        let c = Credentials::of(&config);
        assert!(!c.open());
        assert_eq!(c.identify(b"s3cret").unwrap().name, SECRET_PRINCIPAL);
        assert_eq!(
            c.identify(worker_credential("s3cret").as_bytes())
                .unwrap()
                .access,
            Access::Worker
        );
        assert_eq!(
            c.identify(b"tpt_alice").unwrap(),
            user("alice", Role::Submitter)
        );
        assert!(c.identify(b"tpt_bob").is_none());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
