//! Anti-entropy (docs/protocol.md, "Anti-entropy"): each node compares its own range with
//! the other replicas by bucket digests and exchanges only the buckets that differ.

use dht_proto::v1 as pb;

use crate::node::Node;
use crate::NodeError;

impl Node {
    /// The `Digest` handler: this node's digests of the requested range.
    pub(crate) async fn digest(
        &self,
        _req: pb::DigestRequest,
    ) -> Result<pb::DigestReply, NodeError> {
        Err(NodeError::Internal("digest: not implemented yet".into()))
    }
}
