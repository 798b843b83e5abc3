//! Checks on what clients and peers send, at the edge: sizes, empty keys, the ring's hash
//! size. A bad request is a typed error (INVALID_ARGUMENT or FAILED_PRECONDITION), never a
//! panic.

use dht_proto::v1 as pb;

use crate::hlc::now_ms;
use crate::node::Node;
use crate::NodeError;

/// A peer of another hash size cannot be in our ring: every id would mean something else.
pub(crate) fn same_hash_size(space: dht_core::IdSpace, theirs: u32) -> Result<(), NodeError> {
    let ours = space.bits();
    if theirs != ours {
        return Err(NodeError::HashSizeMismatch { ours, theirs });
    }
    Ok(())
}

impl Node {
    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), NodeError> {
        if key.is_empty() {
            return Err(NodeError::EmptyKey);
        }
        if key.len() > self.cfg.max_key_bytes {
            return Err(NodeError::KeyTooLarge {
                len: key.len(),
                limit: self.cfg.max_key_bytes,
            });
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, value: &[u8]) -> Result<(), NodeError> {
        if value.len() > self.cfg.max_value_bytes {
            return Err(NodeError::ValueTooLarge {
                len: value.len(),
                limit: self.cfg.max_value_bytes,
            });
        }
        Ok(())
    }

    pub(crate) fn check_hash_size(&self, theirs: u32) -> Result<(), NodeError> {
        same_hash_size(self.space(), theirs)
    }

    /// Validates a client's put and turns it into an owner operation (TTL made absolute here,
    /// so the deadline travels with the key through every handoff).
    pub(crate) fn put_op(&self, req: pb::PutRequest) -> Result<(Vec<u8>, pb::Op), NodeError> {
        self.check_key(&req.key)?;
        self.check_value(&req.value)?;
        let expires_at_ms = if req.ttl_ms == 0 {
            0
        } else {
            now_ms().saturating_add(req.ttl_ms)
        };
        let op = pb::Op {
            op: Some(pb::op::Op::Put(pb::Entry {
                key: req.key.clone(),
                value: req.value,
                version: None,
                deleted: false,
                expires_at_ms,
            })),
            quorum: req.quorum,
            ..Default::default()
        };
        Ok((req.key.to_vec(), op))
    }
}
