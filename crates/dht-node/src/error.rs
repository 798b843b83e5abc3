//! The node's errors, and the one place where they cross the wire: to a gRPC [`Status`] or an
//! `OpResult` (with a typed [`pb::Reason`] in its details), and back from a peer's status.
//!
//! Callers decide on variants and reasons, never on message text (docs/architecture.md,
//! "Errors"): rewording a message changes nothing but what a person reads.

use dht_core::{CoreError, Id, IdSpace};
use dht_proto::v1 as pb;
use dht_store::StoreError;
use prost::Message;
use tonic::{Code, Status};

/// Why a node does not serve a request right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotServing {
    /// Waiting for its bootstrap nodes to form a ring (cold start).
    Waiting,
    /// Joining: its range has not arrived yet.
    Joining,
    /// Leaving: its keys are on their way to its successor.
    Leaving,
    /// The process is stopping.
    ShuttingDown,
    /// A peer said so (the reason came over the wire).
    Remote,
}

impl std::fmt::Display for NotServing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NotServing::Waiting => "waiting for its bootstrap nodes to form a ring",
            NotServing::Joining => "joining",
            NotServing::Leaving => "leaving the ring",
            NotServing::ShuttingDown => "shutting down",
            NotServing::Remote => "the owner is joining or leaving",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("key is {len} bytes; the limit is {limit}")]
    KeyTooLarge { len: usize, limit: usize },
    #[error("value is {len} bytes; the limit is {limit}")]
    ValueTooLarge { len: usize, limit: usize },
    #[error("key must not be empty")]
    EmptyKey,
    #[error("hash_size mismatch: this ring uses {ours} bits, the peer {theirs}")]
    HashSizeMismatch { ours: u32, theirs: u32 },
    #[error("this node is not responsible for key id {id} (routing is catching up; retry)")]
    NotOwner {
        id: Id,
        /// The refusing node's range (start, end], when it knows one.
        range: Option<(Id, Id)>,
    },
    #[error("node is not serving: {0}")]
    NotServing(NotServing),
    #[error("node has left the ring")]
    Left,
    #[error("node is overloaded; retry later")]
    Overloaded,
    #[error("lookup of {0} failed: every candidate failed to answer")]
    LookupFailed(Id),
    #[error("no responsible node answered for key id {id} within {timeout_ms} ms")]
    NoOwner { id: Id, timeout_ms: u64 },
    #[error("peer {addr}: {status}")]
    Peer { addr: String, status: Status },
    #[error("cannot reach any bootstrap node ({0})")]
    Bootstrap(String),
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("owner failed: {message}")]
    Remote { code: Code, message: String },
    /// A replica holds a newer version of the key than the write carried.
    #[error("a replica holds a newer version of the key ({current:?})")]
    StaleVersion { current: dht_store::Version },
    #[error(
        "version is {ahead_ms} ms ahead of this node's clock; the limit is max_clock_skew_ms = {limit_ms}"
    )]
    ClockSkew { ahead_ms: u64, limit_ms: u64 },
    #[error(
        "{op}: {answered} of {replicas} replicas answered within the timeout; {needed} needed"
    )]
    Quorum {
        op: &'static str,
        answered: u32,
        needed: u32,
        replicas: u32,
    },
    #[error("leave was cut short: {0}")]
    LeaveCutShort(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// The reason sent with this error, for the cases a caller acts on.
    pub fn reason(&self) -> pb::Reason {
        match self {
            NodeError::NotServing(_) => pb::Reason::NotServing,
            NodeError::Left => pb::Reason::Left,
            NodeError::NotOwner { .. } => pb::Reason::NotOwner,
            NodeError::Overloaded => pb::Reason::Overloaded,
            NodeError::HashSizeMismatch { .. } => pb::Reason::HashSize,
            NodeError::NoOwner { .. } | NodeError::LookupFailed(_) => pb::Reason::NoOwner,
            NodeError::StaleVersion { .. } => pb::Reason::StaleVersion,
            NodeError::ClockSkew { .. } => pb::Reason::ClockSkew,
            NodeError::Quorum { .. } => pb::Reason::Quorum,
            NodeError::Peer { status, .. } => detail(status).reason(),
            _ => pb::Reason::Unspecified,
        }
    }

    /// The status code for this error: one deliberate choice per variant.
    pub fn code(&self) -> Code {
        match self {
            NodeError::InvalidArgument(_)
            | NodeError::KeyTooLarge { .. }
            | NodeError::ValueTooLarge { .. }
            | NodeError::EmptyKey
            | NodeError::Core(_) => Code::InvalidArgument,
            NodeError::HashSizeMismatch { .. }
            | NodeError::Precondition(_)
            | NodeError::NotOwner { .. }
            | NodeError::ClockSkew { .. } => Code::FailedPrecondition,
            NodeError::StaleVersion { .. } => Code::Aborted,
            NodeError::Quorum { .. } => Code::Unavailable,
            NodeError::NotServing(_)
            | NodeError::Left
            | NodeError::LookupFailed(_)
            | NodeError::Bootstrap(_)
            | NodeError::Store(_) => Code::Unavailable,
            NodeError::Overloaded => Code::ResourceExhausted,
            NodeError::NoOwner { .. } => Code::DeadlineExceeded,
            NodeError::Peer { status, .. } => status.code(),
            NodeError::Remote { code, .. } => *code,
            NodeError::LeaveCutShort(_) => Code::Aborted,
            NodeError::Internal(_) => Code::Internal,
        }
    }

    /// Whether the peer behind this error should be presumed dead (docs/protocol.md,
    /// "Failure"): it did not answer, or it answered that it has left, as opposed to
    /// answering with a refusal.
    pub fn peer_unreachable(&self) -> bool {
        let NodeError::Peer { status, .. } = self else {
            return false;
        };
        match detail(status).reason() {
            pb::Reason::Left => true,
            // Our own node sent a reason: the peer answered.
            _ if has_detail(status) => false,
            _ => matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
            ),
        }
    }

    /// Whether retrying the same request shortly may succeed (routing is converging).
    pub fn retryable(&self) -> bool {
        match self {
            NodeError::NotOwner { .. }
            | NodeError::NotServing(_)
            | NodeError::LookupFailed(_)
            | NodeError::Overloaded => true,
            NodeError::Peer { status, .. } => match detail(status).reason() {
                pb::Reason::HashSize
                | pb::Reason::StaleVersion
                | pb::Reason::ClockSkew
                | pb::Reason::Quorum => false,
                pb::Reason::NotServing
                | pb::Reason::Left
                | pb::Reason::NotOwner
                | pb::Reason::Overloaded
                | pb::Reason::NoOwner => true,
                pb::Reason::Unspecified => matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Cancelled
                        | Code::Unknown
                        | Code::FailedPrecondition
                ),
            },
            _ => false,
        }
    }

    /// The detail sent on the wire with this error.
    fn detail(&self) -> pb::ErrorDetail {
        let mut d = pb::ErrorDetail {
            reason: self.reason() as i32,
            from_node: true,
            ..Default::default()
        };
        match self {
            NodeError::NotOwner {
                range: Some((from, to)),
                ..
            } => {
                d.range_from = crate::convert::id_bytes(*from);
                d.range_to = crate::convert::id_bytes(*to);
            }
            NodeError::Quorum {
                answered,
                needed,
                replicas,
                ..
            } => {
                d.answered = *answered;
                d.needed = *needed;
                d.replicas = *replicas;
            }
            _ => {}
        }
        d
    }

    /// This error as one failed operation of an `Apply` batch.
    pub(crate) fn to_op_result(&self) -> pb::OpResult {
        pb::OpResult {
            error: self.to_string(),
            code: self.code() as i32,
            detail: Some(self.detail()),
            current: match self {
                NodeError::StaleVersion { current } => Some(crate::convert::version(*current)),
                _ => None,
            },
            ..Default::default()
        }
    }

    /// The error an owner reported for one operation of a batch, as the router reasons
    /// about it.
    pub(crate) fn from_op_result(space: IdSpace, r: &pb::OpResult) -> NodeError {
        let d = r.detail.clone().unwrap_or_default();
        match d.reason() {
            pb::Reason::NotOwner => NodeError::NotOwner {
                id: Id::ZERO,
                range: crate::convert::id(space, &d.range_from)
                    .ok()
                    .zip(crate::convert::id(space, &d.range_to).ok()),
            },
            pb::Reason::NotServing => NodeError::NotServing(NotServing::Remote),
            pb::Reason::Left => NodeError::Left,
            pb::Reason::Overloaded => NodeError::Overloaded,
            pb::Reason::StaleVersion => NodeError::StaleVersion {
                current: crate::convert::from_version(r.current.as_ref()),
            },
            pb::Reason::ClockSkew => NodeError::Remote {
                code: Code::FailedPrecondition,
                message: r.error.clone(),
            },
            _ => match Code::from_i32(r.code) {
                Code::InvalidArgument => NodeError::InvalidArgument(r.error.clone()),
                code => NodeError::Remote {
                    code,
                    message: r.error.clone(),
                },
            },
        }
    }
}

/// The reason a peer's status carries (UNSPECIFIED when it carries none).
pub fn detail(status: &Status) -> pb::ErrorDetail {
    pb::ErrorDetail::decode(status.details()).unwrap_or_default()
}

/// Whether a status came from a dht node's error mapping (rather than from the transport).
fn has_detail(status: &Status) -> bool {
    detail(status).from_node
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        // A peer's status passes through as it came, details included.
        if let NodeError::Peer { status, .. } = &e {
            if has_detail(status) {
                return Status::with_details(
                    status.code(),
                    e.to_string(),
                    status.details().to_vec().into(),
                );
            }
        }
        let details = e.detail().encode_to_vec();
        Status::with_details(e.code(), e.to_string(), details.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant a caller acts on survives the trip through a status and back.
    #[test]
    fn reasons_survive_the_wire_and_decide_without_text() {
        let space = IdSpace::default();
        let cases: Vec<(NodeError, pb::Reason, bool, bool)> = vec![
            // (error, reason on the wire, peer presumed dead, retryable)
            (
                NodeError::NotServing(NotServing::Joining),
                pb::Reason::NotServing,
                false,
                true,
            ),
            (NodeError::Left, pb::Reason::Left, true, true),
            (
                NodeError::NotOwner {
                    id: Id::ZERO,
                    range: Some((Id::from_u64(1), Id::from_u64(9))),
                },
                pb::Reason::NotOwner,
                false,
                true,
            ),
            (NodeError::Overloaded, pb::Reason::Overloaded, false, true),
            (
                NodeError::HashSizeMismatch {
                    ours: 160,
                    theirs: 16,
                },
                pb::Reason::HashSize,
                false,
                false,
            ),
            (
                NodeError::NoOwner {
                    id: Id::ZERO,
                    timeout_ms: 5,
                },
                pb::Reason::NoOwner,
                false,
                true,
            ),
            (
                NodeError::Internal("x".into()),
                pb::Reason::Unspecified,
                false,
                false,
            ),
        ];
        for (e, reason, dead, retry) in cases {
            let text = e.to_string();
            let status = Status::from(e);
            assert_eq!(detail(&status).reason(), reason, "{text}");
            let back = NodeError::Peer {
                addr: "p:1".into(),
                status,
            };
            assert_eq!(back.peer_unreachable(), dead, "{text}");
            assert_eq!(back.retryable(), retry, "{text}");
        }
        // A transport failure carries no detail: the peer did not answer.
        let transport = NodeError::Peer {
            addr: "p:1".into(),
            status: Status::unavailable("tcp connect error"),
        };
        assert!(transport.peer_unreachable());
        // The not-owner range travels in an OpResult too.
        let e = NodeError::NotOwner {
            id: Id::ZERO,
            range: Some((Id::from_u64(3), Id::from_u64(7))),
        };
        match NodeError::from_op_result(space, &e.to_op_result()) {
            NodeError::NotOwner { range, .. } => {
                assert_eq!(range, Some((Id::from_u64(3), Id::from_u64(7))))
            }
            other => panic!("{other:?}"),
        }
        // Rewording a message changes nothing: a NotServing status with any text is one.
        let reworded = Status::with_details(
            Code::Unavailable,
            "busy elsewhere",
            pb::ErrorDetail {
                reason: pb::Reason::NotServing as i32,
                from_node: true,
                ..Default::default()
            }
            .encode_to_vec()
            .into(),
        );
        let e = NodeError::Peer {
            addr: "p:1".into(),
            status: reworded,
        };
        assert!(!e.peer_unreachable());
        assert_eq!(e.reason(), pb::Reason::NotServing);
    }
}
