//! Why a tuple tree failed: the reason a spout's [`Spout::fail_with_reason`] learns, carried
//! from the task that failed the tree through its acker, and counted per spout task.
//!
//! Only failures carry a reason: acks stay a root and 64 bits (the hot path), a failure sends
//! its reason boxed along with the root (see `docs/design/failure-reasons.md`).
//!
//! [`Spout::fail_with_reason`]: crate::Spout::fail_with_reason

use std::fmt;
use std::time::Duration;
use tempest_protocol::control::FailureCounts;

/// Why a tuple tree failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum FailReason {
    /// The tree did not complete within `topology.message.timeout.secs` (a tuple was lost,
    /// or a bolt neither acked nor failed it in time).
    Timeout {
        /// The message timeout it exceeded.
        after: Duration,
    },
    /// A bolt task failed a tuple of the tree.
    Bolt {
        /// The bolt.
        component: String,
        /// Its task.
        task: u32,
        /// How: `collector.fail`, an `Err` from `execute`, or a panic in it.
        how: BoltFailure,
        /// The error or panic message, or what the bolt passed to `fail_because` (empty for
        /// a plain `collector.fail`).
        message: String,
    },
    /// A tuple of the tree could not be delivered to `task`: the worker hosting it was
    /// unreachable, left the assignment or dropped the connection (it died, or was moved).
    Undelivered {
        /// The task the tuple was for.
        task: u32,
        /// The worker (`host:port`) it was to be delivered to.
        worker: String,
        /// What went wrong.
        message: String,
    },
}

/// How a bolt failed a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BoltFailure {
    /// It called `collector.fail` (or `fail_because`).
    Failed,
    /// Its `execute` returned an error.
    Error,
    /// Its `execute` panicked.
    Panic,
}

impl FailReason {
    /// A bolt's failure.
    pub(crate) fn bolt(
        component: &str,
        task: u32,
        how: BoltFailure,
        message: impl Into<String>,
    ) -> Self {
        FailReason::Bolt {
            component: component.to_string(),
            task,
            how,
            message: message.into(),
        }
    }

    /// True for [`FailReason::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, FailReason::Timeout { .. })
    }

    /// The bolt that failed the tree, if a bolt did.
    pub fn component(&self) -> Option<&str> {
        match self {
            FailReason::Bolt { component, .. } => Some(component),
            _ => None,
        }
    }

    /// The key the metrics count it under: `timeout`, `failed`, `error`, `panic` or
    /// `undelivered` (the fields of [`FailureCounts`]).
    pub fn kind(&self) -> &'static str {
        match self {
            FailReason::Timeout { .. } => "timeout",
            FailReason::Bolt { how, .. } => match how {
                BoltFailure::Failed => "failed",
                BoltFailure::Error => "error",
                BoltFailure::Panic => "panic",
            },
            FailReason::Undelivered { .. } => "undelivered",
        }
    }

    /// Counts it.
    pub(crate) fn count(&self, counts: &mut FailureCounts) {
        match self {
            FailReason::Timeout { .. } => counts.timeout += 1,
            FailReason::Bolt { how, .. } => match how {
                BoltFailure::Failed => counts.failed += 1,
                BoltFailure::Error => counts.error += 1,
                BoltFailure::Panic => counts.panic += 1,
            },
            FailReason::Undelivered { .. } => counts.undelivered += 1,
        }
    }
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Timeout { after } => write!(
                f,
                "timed out: not complete within the message timeout of {after:?}"
            ),
            FailReason::Bolt {
                component,
                task,
                how,
                message,
            } => {
                let how = match how {
                    BoltFailure::Failed => "failed by",
                    BoltFailure::Error => "execute returned an error in",
                    BoltFailure::Panic => "execute panicked in",
                };
                write!(f, "{how} bolt {component:?} task {task}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            FailReason::Undelivered {
                task,
                worker,
                message,
            } => write!(
                f,
                "not delivered to task {task} on worker {worker}: {message}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_say_who_and_why_and_count_under_their_kind() {
        let r = FailReason::bolt("split", 3, BoltFailure::Error, "bad line \"x\"");
        assert_eq!(
            r.to_string(),
            "execute returned an error in bolt \"split\" task 3: bad line \"x\""
        );
        let t = FailReason::Timeout {
            after: Duration::from_secs(30),
        };
        assert_eq!(
            t.to_string(),
            "timed out: not complete within the message timeout of 30s"
        );
        let mut c = FailureCounts::default();
        r.count(&mut c);
        t.count(&mut c);
        FailReason::bolt("count", 4, BoltFailure::Failed, "").count(&mut c);
        assert_eq!(
            FailReason::bolt("count", 4, BoltFailure::Failed, "").to_string(),
            "failed by bolt \"count\" task 4"
        );
        assert_eq!((c.error, c.timeout, c.failed, c.total()), (1, 1, 1, 3));
        assert_eq!(r.kind(), "error");
    }
}
