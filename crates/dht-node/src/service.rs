//! The gRPC services: `Peer` for other nodes, `Kv` for clients. Handlers only decode, call
//! the node and encode; the work is in the node's modules, the checks in `validate` and
//! `lifecycle`, and every error becomes a status through `From<NodeError>` (`error`).
//! Every `Kv` call is counted and timed under its operation (see `telemetry`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use dht_proto::v1 as pb;
use dht_proto::v1::{kv_server::Kv, peer_server::Peer as PeerRpc};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::error::NotServing;
use crate::handoff::range_stream;
use crate::node::Node;
use crate::telemetry::{Handoff, KvOp};
use crate::NodeError;

pub(crate) struct PeerService(pub Arc<Node>);
pub(crate) struct KvService(pub Arc<Node>);

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::Entry, Status>> + Send>>;

impl KvService {
    /// Runs one client call, counting it by outcome and timing it under `op`. The handler's
    /// future is awaited in place: no extra task, no allocation.
    async fn observed<T>(
        &self,
        op: KvOp,
        handler: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let start = Instant::now();
        let result = handler.await;
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.0.metrics.request(op, code, start.elapsed());
        result
    }
}

#[tonic::async_trait]
impl PeerRpc for PeerService {
    async fn find_step(
        &self,
        req: Request<pb::FindStepRequest>,
    ) -> Result<Response<pb::FindStepReply>, Status> {
        self.0.life.check_member()?;
        let key = convert::id(self.0.space(), &req.into_inner().key_id)?;
        let step = {
            let st = self.0.state();
            // Joining alone (a restart the ring has not noticed): our empty tables would claim
            // every key. Refuse, so lookups skip us via our predecessor's successor list.
            if !self.0.life.is_serving() && st.is_alone() {
                return Err(NodeError::NotServing(NotServing::Joining).into());
            }
            st.find_step(key)
        };
        Ok(Response::new(convert::step(&step)))
    }

    async fn find_successor(
        &self,
        req: Request<pb::FindSuccessorRequest>,
    ) -> Result<Response<pb::FindSuccessorReply>, Status> {
        let req = req.into_inner();
        self.0.check_hash_size(req.hash_size)?;
        self.0.life.check_member()?;
        // A node still waiting for its ring would name itself the owner of every key.
        if self.0.life.is_waiting() {
            return Err(NodeError::NotServing(NotServing::Waiting).into());
        }
        let key = convert::id(self.0.space(), &req.key_id)?;
        let (owner, hops) = self.0.lookup(key).await?;
        Ok(Response::new(pb::FindSuccessorReply {
            owner: Some(convert::node_ref(&owner)),
            hops,
        }))
    }

    async fn get_state(
        &self,
        _req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateReply>, Status> {
        self.0.life.check_member()?;
        let st = self.0.state();
        // Joining alone after a restart the ring has not noticed: our empty list would replace
        // our predecessor's whole successor list. Refuse until we have joined.
        if !self.0.life.is_serving() && st.is_alone() {
            return Err(NodeError::NotServing(NotServing::Joining).into());
        }
        Ok(Response::new(pb::GetStateReply {
            self_: Some(convert::node_ref(st.me())),
            predecessor: st.predecessor().map(convert::node_ref),
            successors: convert::node_refs(st.successors()),
            hash_size: self.0.space().bits(),
        }))
    }

    async fn notify(
        &self,
        req: Request<pb::NotifyRequest>,
    ) -> Result<Response<pb::NotifyReply>, Status> {
        let req = req.into_inner();
        self.0.check_hash_size(req.hash_size)?;
        let n = req
            .node
            .as_ref()
            .ok_or_else(|| NodeError::InvalidArgument("notify without a node".into()))?;
        let n = convert::peer(self.0.space(), n)?;
        if !self.0.life.has_left() {
            self.0.rectify_from(&n).await;
        }
        Ok(Response::new(pb::NotifyReply {}))
    }

    async fn ping(&self, req: Request<pb::PingRequest>) -> Result<Response<pb::PingReply>, Status> {
        let req = req.into_inner();
        if req.hash_size != 0 {
            self.0.check_hash_size(req.hash_size)?;
        }
        self.0.life.check_member()?;
        // A cold-start probe: the sender counts as heard, whether or not our list names it.
        // Advisory only: a sender we cannot place (another hash size) is not recorded, and
        // still gets our answer, from which it learns the mismatch.
        if let Some(from) = &req.from {
            let space = self.0.space();
            if let (Ok(peer), Ok(lowest)) = (
                convert::peer(space, from),
                convert::opt_peer(space, req.lowest.as_ref()),
            ) {
                self.0.cold.heard(
                    dht_core::Heard {
                        peer,
                        standing: convert::standing(req.standing),
                        lowest,
                        eligible: req.eligible,
                    },
                    req.listed,
                );
            }
        }
        let (standing, lowest) = self.0.standing();
        Ok(Response::new(pb::PingReply {
            node: Some(convert::node_ref(self.0.me())),
            hash_size: self.0.space().bits(),
            standing: convert::standing_to(standing) as i32,
            lowest: lowest.as_ref().map(convert::node_ref),
            eligible: self.0.cold.is_eligible(),
            incarnation: self.0.incarnations.mine,
        }))
    }

    async fn unify(
        &self,
        req: Request<pb::UnifyRequest>,
    ) -> Result<Response<pb::UnifyReply>, Status> {
        let req = req.into_inner();
        self.0.check_hash_size(req.hash_size)?;
        let contact = req
            .contact
            .as_ref()
            .ok_or_else(|| NodeError::InvalidArgument("unify without a contact".into()))?;
        let contact = convert::peer(self.0.space(), contact)?;
        self.0.on_unify(contact);
        Ok(Response::new(pb::UnifyReply {}))
    }

    async fn leave_notice(
        &self,
        req: Request<pb::LeaveNoticeRequest>,
    ) -> Result<Response<pb::LeaveNoticeReply>, Status> {
        let req = req.into_inner();
        let space = self.0.space();
        let leaving = req
            .leaving
            .as_ref()
            .ok_or_else(|| NodeError::InvalidArgument("leave notice without a node".into()))?;
        let leaving = convert::peer(space, leaving)?;
        let successors = convert::peers(space, &req.successors)?;
        let pred = convert::opt_peer(space, req.predecessor.as_ref())?;
        self.0.state().on_leave_notice(&leaving, &successors, pred);
        self.0.peers.forget(&leaving.addr);
        Ok(Response::new(pb::LeaveNoticeReply {}))
    }

    type FetchRangeStream = EntryStream;

    async fn fetch_range(
        &self,
        req: Request<pb::FetchRangeRequest>,
    ) -> Result<Response<Self::FetchRangeStream>, Status> {
        let req = req.into_inner();
        let space = self.0.space();
        let (from, to) = (convert::id(space, &req.from)?, convert::id(space, &req.to)?);
        let node = self.0.clone();
        let entries = range_stream(self.0.local.store.clone(), from, to).map(move |r| {
            node.metrics.handoff(Handoff::FetchedOut, 1);
            r.map(|e| convert::entry(&e)).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(entries)))
    }

    async fn push_entries(
        &self,
        req: Request<Streaming<pb::Entry>>,
    ) -> Result<Response<pb::PushEntriesReply>, Status> {
        // Held for the whole stream: a leave of this node waits for it (the leave's own scan
        // then includes these entries), and a push that arrives after the leave began is
        // refused, so the sender hands its keys to its next successor instead.
        let _gate = self.0.local.leave_gate.read().await;
        if self.0.life.has_left() {
            return Err(NodeError::NotServing(NotServing::Leaving).into());
        }
        let sender = req
            .remote_addr()
            .map_or_else(|| "the pushing node".to_string(), |a| a.to_string());
        let stored = self.0.store_stream(&mut req.into_inner(), &sender).await?;
        self.0.metrics.handoff(Handoff::PushedIn, stored);
        Ok(Response::new(pb::PushEntriesReply { stored }))
    }

    async fn digest(
        &self,
        req: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestReply>, Status> {
        self.0.life.check_member()?;
        Ok(Response::new(self.0.digest(req.into_inner()).await?))
    }

    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyReply>, Status> {
        let results = self.0.apply_local(req.into_inner().ops).await;
        Ok(Response::new(pb::ApplyReply { results }))
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutReply>, Status> {
        self.observed(KvOp::Put, async move {
            let (key, op) = self.0.put_op(req.into_inner())?;
            let r = self.0.route(&key, op).await?;
            Ok(Response::new(pb::PutReply {
                version: r.entry.and_then(|e| e.version),
                acks: r.acks,
                replicas: r.replicas,
            }))
        })
        .await
    }

    async fn put_many(
        &self,
        req: Request<Streaming<pb::PutRequest>>,
    ) -> Result<Response<pb::PutManyReply>, Status> {
        self.observed(KvOp::PutMany, async move {
            // A batch is bounded by count and by bytes, so one stream of large values cannot
            // hold gigabytes in memory.
            const BATCH: usize = 2048;
            const BATCH_BYTES: usize = 8 * 1024 * 1024;
            let mut stream = req.into_inner();
            let mut stored = 0u64;
            let mut batch = Vec::with_capacity(BATCH);
            let mut bytes = 0usize;
            loop {
                let next = stream.message().await?;
                let done = next.is_none();
                if let Some(req) = next {
                    bytes += req.key.len() + req.value.len();
                    batch.push(self.0.put_op(req)?);
                }
                if batch.len() == BATCH || bytes >= BATCH_BYTES || (done && !batch.is_empty()) {
                    bytes = 0;
                    stored += self.0.route_batch(std::mem::take(&mut batch)).await?;
                }
                if done {
                    break;
                }
            }
            Ok(Response::new(pb::PutManyReply { stored }))
        })
        .await
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetReply>, Status> {
        self.observed(KvOp::Get, async move {
            let req = req.into_inner();
            let key = req.key;
            self.0.check_key(&key)?;
            if req.local {
                let stored = self.0.read_local(&key).await?;
                return Ok(Response::new(match stored {
                    Some(e) => {
                        let e = convert::entry(&e);
                        pb::GetReply {
                            found: !e.deleted,
                            deleted: e.deleted,
                            value: e.value,
                            version: e.version,
                            expires_at_ms: e.expires_at_ms,
                            answered: 1,
                            agreed: 1,
                        }
                    }
                    None => pb::GetReply::default(),
                }));
            }
            let op = pb::Op {
                op: Some(pb::op::Op::Get(pb::GetOp { key: key.clone() })),
                quorum: req.quorum,
                ..Default::default()
            };
            let r = self.0.route(&key, op).await?;
            Ok(Response::new(match r.entry {
                Some(e) => pb::GetReply {
                    found: true,
                    value: e.value,
                    version: e.version,
                    expires_at_ms: e.expires_at_ms,
                    answered: r.acks,
                    agreed: r.agreed,
                    deleted: false,
                },
                None => pb::GetReply {
                    answered: r.acks,
                    agreed: r.agreed,
                    ..Default::default()
                },
            }))
        })
        .await
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteReply>, Status> {
        self.observed(KvOp::Delete, async move {
            let req = req.into_inner();
            let key = req.key;
            self.0.check_key(&key)?;
            let op = pb::Op {
                op: Some(pb::op::Op::Put(pb::Entry {
                    key: key.clone(),
                    value: Default::default(),
                    version: None,
                    deleted: true,
                    expires_at_ms: 0,
                })),
                quorum: req.quorum,
                ..Default::default()
            };
            let r = self.0.route(&key, op).await?;
            Ok(Response::new(pb::DeleteReply {
                version: r.entry.and_then(|e| e.version),
                acks: r.acks,
                replicas: r.replicas,
            }))
        })
        .await
    }

    async fn lookup(
        &self,
        req: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupReply>, Status> {
        self.observed(KvOp::Lookup, async move {
            let key = req.into_inner().key;
            self.0.check_key(&key)?;
            if self.0.life.is_waiting() {
                return Err(NodeError::NotServing(NotServing::Waiting).into());
            }
            let id = self.0.space().hash(&key);
            let (owner, hops) = self.0.lookup(id).await?;
            let replicas = self.0.replicas_of(&owner).await?;
            Ok(Response::new(pb::LookupReply {
                key_id: convert::id_bytes(id),
                owner: Some(convert::node_ref(&owner)),
                hops,
                replicas: convert::node_refs(&replicas),
            }))
        })
        .await
    }

    async fn node_info(
        &self,
        _req: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoReply>, Status> {
        self.observed(KvOp::Info, async move {
            let node = &self.0;
            let keys = node.local.len().await?;
            node.metrics.store_entries.set(keys as f64);
            let st = node.snapshot();
            let tasks = node.tasks.running();
            Ok(Response::new(pb::NodeInfoReply {
                self_: Some(convert::node_ref(st.me())),
                predecessor: st.predecessor().map(convert::node_ref),
                successors: convert::node_refs(st.successors()),
                fingers: convert::node_refs(&st.fingers().distinct()),
                passive: st
                    .passive()
                    .iter()
                    .map(|e| convert::node_ref(&e.peer))
                    .collect(),
                hash_size: node.space().bits(),
                keys,
                tasks,
                replication_factor: node.cfg.replication_factor,
                write_quorum: node
                    .cfg
                    .write_quorum
                    .needed(node.cfg.replication_factor as usize)
                    as u32,
                read_quorum: node
                    .cfg
                    .read_quorum
                    .needed(node.cfg.replication_factor as usize)
                    as u32,
                version: env!("CARGO_PKG_VERSION").to_string(),
            }))
        })
        .await
    }

    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinReply>, Status> {
        self.observed(KvOp::Join, async move {
            let bootstrap = req.into_inner().bootstrap;
            if bootstrap.is_empty() {
                return Err(
                    NodeError::InvalidArgument("join needs a bootstrap address".into()).into(),
                );
            }
            if self.0.life.is_waiting() {
                return Err(NodeError::Precondition(
                    "this node is waiting for its bootstrap nodes to form a ring; restart it with the bootstrap list to join instead".into(),
                )
                .into());
            }
            if !self.0.state().is_alone() {
                return Err(NodeError::Precondition(
                    "this node is already a member of a ring; leave first".into(),
                )
                .into());
            }
            self.0.join(&[bootstrap]).await?;
            self.0.spawn_rehome();
            let succ = self.0.state().successor().clone();
            Ok(Response::new(pb::JoinReply {
                successor: Some(convert::node_ref(&succ)),
            }))
        })
        .await
    }

    async fn leave(
        &self,
        _req: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveReply>, Status> {
        self.observed(KvOp::Leave, async move {
            self.0.leave().await?;
            // The node has handed everything over; stop the process like a SIGTERM would.
            self.0.shutdown.cancel();
            Ok(Response::new(pb::LeaveReply {}))
        })
        .await
    }
}
