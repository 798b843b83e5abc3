//! The client library of dht: what `dhtctl`, the end-to-end tests and users' programs use to
//! talk to a ring. Connect to any node; it routes each request to the key's owner.
//!
//! Errors are typed by what the caller will do about them: [`ClientError::Unreachable`] and
//! [`ClientError::Timeout`] (try another node, or later), [`ClientError::InvalidArgument`]
//! (fix the request), [`ClientError::Unavailable`] (the ring could not serve it now).

use std::time::Duration;

use dht_proto::v1 as pb;
use dht_proto::v1::kv_client::KvClient;
pub use dht_proto::v1::{Quorum, Reason};
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach node {addr}: {detail}")]
    Unreachable { addr: String, detail: String },
    #[error("node {addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
    #[error("rejected: {0}")]
    InvalidArgument(String),
    /// The node answered but could not serve the request now; `reason` says why (joining or
    /// leaving, owner not reached in time, ...), the message only explains.
    #[error("unavailable: {message}")]
    Unavailable { reason: Reason, message: String },
    #[error("refused: {0}")]
    Refused(String),
    #[error("server error ({code:?}): {message}")]
    Server { code: Code, message: String },
}

impl ClientError {
    /// Classifies a failed call to the node at `addr` by its status code and the typed
    /// reason a dht node attaches to every error (never by message text). A status without
    /// that detail came from the transport: the node was not reached.
    pub fn from_status(addr: &str, timeout: Duration, s: tonic::Status) -> ClientError {
        let message = s.message().to_string();
        let reason = pb::ErrorDetail::decode(s.details())
            .ok()
            .filter(|d| d.from_node)
            .map(|d| d.reason());
        let timed_out = || ClientError::Timeout {
            addr: addr.to_string(),
            timeout_ms: timeout.as_millis() as u64,
        };
        match (s.code(), reason) {
            (Code::InvalidArgument | Code::OutOfRange, _) => ClientError::InvalidArgument(message),
            (
                _,
                Some(
                    r @ (Reason::NotServing
                    | Reason::Left
                    | Reason::NotOwner
                    | Reason::Overloaded
                    | Reason::NoOwner
                    | Reason::Quorum),
                ),
            ) => ClientError::Unavailable { reason: r, message },
            (Code::FailedPrecondition, _) => ClientError::Refused(message),
            (Code::DeadlineExceeded | Code::Cancelled, _) => timed_out(),
            (Code::Unavailable, None) => ClientError::Unreachable {
                addr: addr.to_string(),
                detail: message,
            },
            (Code::Unavailable, Some(reason)) => ClientError::Unavailable { reason, message },
            (code, _) => ClientError::Server { code, message },
        }
    }
}

/// A write as acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Hybrid-logical-clock part of the version written.
    pub version: u64,
    /// The coordinator that stamped it (the version's tie-break).
    pub node: u64,
    /// Replicas that acknowledged, of `replicas` in the key's set.
    pub acks: u32,
    pub replicas: u32,
}

impl Written {
    fn new(v: Option<pb::Version>, acks: u32, replicas: u32) -> Written {
        let v = v.unwrap_or_default();
        Written {
            version: v.hlc,
            node: v.node,
            acks,
            replicas,
        }
    }
}

/// A quorum read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub value: Option<Value>,
    /// Replicas that answered, and how many of them held the version returned.
    pub answered: u32,
    pub agreed: u32,
}

/// One replica's stored entry (see [`Client::get_local`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// (hlc, writer node).
    pub version: (u64, u64),
}

/// A stored value as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    pub value: Vec<u8>,
    /// Hybrid-logical-clock version of the write.
    pub version: u64,
    /// Absolute expiry in ms since the Unix epoch, if any.
    pub expires_at_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRef {
    pub id: String,
    pub addr: String,
}

#[derive(Clone, Debug)]
pub struct LookupResult {
    pub key_id: String,
    pub owner: NodeRef,
    /// Nodes contacted until the key's predecessor answered (Chord paper's path length).
    pub hops: u32,
    /// The key's replica set, owner first.
    pub replicas: Vec<NodeRef>,
}

#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub me: NodeRef,
    pub predecessor: Option<NodeRef>,
    pub successors: Vec<NodeRef>,
    pub fingers: Vec<NodeRef>,
    pub hash_size: u32,
    pub keys: u64,
    pub tasks: Vec<String>,
    pub replication_factor: u32,
    /// The node's default quorums, as replica counts for a full replica set.
    pub write_quorum: u32,
    pub read_quorum: u32,
    pub version: String,
    /// Members presumed dead and bootstrap addresses the node still probes (ring unification).
    pub passive: Vec<NodeRef>,
}

/// A connection to one node. Cheap to clone; clones share the HTTP/2 connection.
#[derive(Clone)]
pub struct Client {
    addr: String,
    timeout: Duration,
    kv: KvClient<Channel>,
}

fn node_ref(r: Option<pb::NodeRef>) -> Option<NodeRef> {
    r.map(|r| NodeRef {
        id: r.id.iter().map(|b| format!("{b:02x}")).collect(),
        addr: r.addr,
    })
}

impl Client {
    /// Connects to the node at `addr` (`host:port`); `timeout` bounds every request.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Client, ClientError> {
        let unreachable = |detail: String| ClientError::Unreachable {
            addr: addr.to_string(),
            detail,
        };
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| unreachable(format!("invalid address: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout);
        let ch = ep.connect().await.map_err(|e| {
            let mut detail = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                detail = s.to_string();
                src = s.source();
            }
            unreachable(detail)
        })?;
        let kv = KvClient::new(ch)
            .max_decoding_message_size(8 * 1024 * 1024)
            .max_encoding_message_size(8 * 1024 * 1024);
        Ok(Client {
            addr: addr.to_string(),
            timeout,
            kv,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn err(&self, s: tonic::Status) -> ClientError {
        ClientError::from_status(&self.addr, self.timeout, s)
    }

    /// Stores `value` under `key`; `ttl` makes it expire. Returns the write's version.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64, ClientError> {
        Ok(self
            .put_with(key, value, ttl, Quorum::Default)
            .await?
            .version)
    }

    /// [`Client::put`] with an explicit write quorum; says how many replicas acknowledged.
    pub async fn put_with(
        &self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        quorum: Quorum,
    ) -> Result<Written, ClientError> {
        let r = self
            .kv
            .clone()
            .put(pb::PutRequest {
                key: key.to_vec().into(),
                value: value.to_vec().into(),
                ttl_ms: ttl.map_or(0, |d| (d.as_millis() as u64).max(1)),
                quorum: quorum as i32,
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(Written::new(r.version, r.acks, r.replicas))
    }

    /// Stores many entries through one stream: the node applies them in batches (one storage
    /// commit per batch and owner). Returns how many were stored.
    pub async fn put_many<I>(&self, entries: I) -> Result<u64, ClientError>
    where
        I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
        I::IntoIter: Send + 'static,
    {
        let stream = tokio_stream::iter(entries.into_iter().map(|(k, v)| pb::PutRequest {
            key: k.into(),
            value: v.into(),
            ttl_ms: 0,
            quorum: 0,
        }));
        let r = self
            .kv
            .clone()
            .put_many(stream)
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(r.stored)
    }

    /// The live value of `key`, or `None`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Value>, ClientError> {
        Ok(self.get_with(key, Quorum::Default).await?.value)
    }

    /// [`Client::get`] with an explicit read quorum; says how many replicas answered and how
    /// many of them held the version returned.
    pub async fn get_with(&self, key: &[u8], quorum: Quorum) -> Result<Read, ClientError> {
        let r = self
            .kv
            .clone()
            .get(pb::GetRequest {
                key: key.to_vec().into(),
                quorum: quorum as i32,
                local: false,
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(Read {
            answered: r.answered,
            agreed: r.agreed,
            value: r.found.then(|| Value {
                value: r.value.to_vec(),
                version: r.version.map_or(0, |v| v.hlc),
                expires_at_ms: (r.expires_at_ms != 0).then_some(r.expires_at_ms),
            }),
        })
    }

    /// What the contacted node's own store holds for `key`, tombstones included, whoever
    /// owns it: a diagnostic, to see what one replica holds. `None`: nothing stored.
    pub async fn get_local(&self, key: &[u8]) -> Result<Option<Stored>, ClientError> {
        let r = self
            .kv
            .clone()
            .get(pb::GetRequest {
                key: key.to_vec().into(),
                quorum: 0,
                local: true,
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok((r.found || r.deleted).then(|| Stored {
            value: r.found.then(|| r.value.to_vec()),
            version: r.version.map_or((0, 0), |v| (v.hlc, v.node)),
        }))
    }

    /// Deletes `key` (a tombstone that wins over older writes on every replica).
    pub async fn delete(&self, key: &[u8]) -> Result<(), ClientError> {
        self.delete_with(key, Quorum::Default).await.map(drop)
    }

    /// [`Client::delete`] with an explicit write quorum.
    pub async fn delete_with(&self, key: &[u8], quorum: Quorum) -> Result<Written, ClientError> {
        let r = self
            .kv
            .clone()
            .delete(pb::DeleteRequest {
                key: key.to_vec().into(),
                quorum: quorum as i32,
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(Written::new(r.version, r.acks, r.replicas))
    }

    /// Which node owns `key`, and the lookup's path length from the contacted node.
    pub async fn lookup(&self, key: &[u8]) -> Result<LookupResult, ClientError> {
        let r = self
            .kv
            .clone()
            .lookup(pb::LookupRequest {
                key: key.to_vec().into(),
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(LookupResult {
            key_id: r.key_id.iter().map(|b| format!("{b:02x}")).collect(),
            owner: node_ref(r.owner).ok_or_else(|| ClientError::Server {
                code: Code::Internal,
                message: "lookup reply without owner".into(),
            })?,
            hops: r.hops,
            replicas: r
                .replicas
                .into_iter()
                .filter_map(|n| node_ref(Some(n)))
                .collect(),
        })
    }

    pub async fn info(&self) -> Result<NodeInfo, ClientError> {
        let r = self
            .kv
            .clone()
            .node_info(pb::NodeInfoRequest {})
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(NodeInfo {
            me: node_ref(r.self_).unwrap_or(NodeRef {
                id: String::new(),
                addr: self.addr.clone(),
            }),
            predecessor: node_ref(r.predecessor),
            successors: r
                .successors
                .into_iter()
                .filter_map(|n| node_ref(Some(n)))
                .collect(),
            fingers: r
                .fingers
                .into_iter()
                .filter_map(|n| node_ref(Some(n)))
                .collect(),
            hash_size: r.hash_size,
            keys: r.keys,
            tasks: r.tasks,
            replication_factor: r.replication_factor,
            write_quorum: r.write_quorum,
            read_quorum: r.read_quorum,
            version: r.version,
            passive: r
                .passive
                .into_iter()
                .filter_map(|n| node_ref(Some(n)))
                .collect(),
        })
    }

    /// Asks this node to join the ring that `bootstrap` belongs to.
    pub async fn join(&self, bootstrap: &str) -> Result<NodeRef, ClientError> {
        let r = self
            .kv
            .clone()
            .join(pb::JoinRequest {
                bootstrap: bootstrap.to_string(),
            })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        node_ref(r.successor).ok_or_else(|| ClientError::Server {
            code: Code::Internal,
            message: "join reply without successor".into(),
        })
    }

    /// Asks this node to leave the ring gracefully (it hands its keys over and stops).
    pub async fn leave(&self) -> Result<(), ClientError> {
        self.kv
            .clone()
            .leave(pb::LeaveRequest {})
            .await
            .map_err(|s| self.err(s))?;
        Ok(())
    }
}
