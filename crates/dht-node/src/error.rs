//! The node's errors, and the one place where they become gRPC statuses.

use dht_core::{CoreError, Id};
use dht_store::StoreError;
use tonic::{Code, Status};

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
    #[error("this node is not responsible for key id {0} (routing is catching up; retry)")]
    NotOwner(Id),
    #[error("node is not serving: {0}")]
    NotServing(&'static str),
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
    #[error("internal error: {0}")]
    Internal(String),
}

impl NodeError {
    /// Whether the peer behind this error should be presumed dead (CHORD.md, Failure): it
    /// did not answer, as opposed to answering with a refusal.
    pub fn peer_unreachable(&self) -> bool {
        matches!(self, NodeError::Peer { status, .. }
            if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown)
                && !status.message().starts_with("node is not serving"))
    }

    /// Whether retrying the same request shortly may succeed (routing is converging).
    pub fn retryable(&self) -> bool {
        match self {
            NodeError::NotOwner(_) | NodeError::NotServing(_) | NodeError::LookupFailed(_) => true,
            NodeError::Peer { status, .. } => {
                matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Cancelled
                        | Code::Unknown
                        | Code::FailedPrecondition
                ) && !status.message().contains("hash_size mismatch")
            }
            _ => false,
        }
    }
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        let code = match &e {
            NodeError::InvalidArgument(_)
            | NodeError::KeyTooLarge { .. }
            | NodeError::ValueTooLarge { .. }
            | NodeError::EmptyKey
            | NodeError::Core(_) => Code::InvalidArgument,
            NodeError::HashSizeMismatch { .. } | NodeError::Precondition(_) => {
                Code::FailedPrecondition
            }
            NodeError::NotOwner(_) => Code::FailedPrecondition,
            NodeError::NotServing(_) | NodeError::LookupFailed(_) | NodeError::Bootstrap(_) => {
                Code::Unavailable
            }
            NodeError::NoOwner { .. } => Code::Unavailable,
            NodeError::Peer { status, .. } => status.code(),
            NodeError::Store(_) => Code::Unavailable,
            NodeError::Remote { code, .. } => *code,
            NodeError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
