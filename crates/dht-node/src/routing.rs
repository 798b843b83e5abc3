//! Lookups and request routing: the node drives `dht-core`'s lookup state machine over gRPC,
//! and sends each client operation to the key's owner, retrying while the ring converges.

use std::time::{Duration, Instant};

use dht_core::{Id, Lookup, LookupStep, Peer};
use dht_proto::v1 as pb;

use crate::error::NotServing;
use crate::node::Node;
use crate::NodeError;

/// A lookup may not take more steps than this, whatever peers answer.
pub(crate) const MAX_LOOKUP_STEPS: usize = 512;

impl Node {
    /// The iterative lookup of `key`: its owner and the path length (docs/protocol.md convention).
    pub async fn lookup(&self, key: Id) -> Result<(Peer, u32), NodeError> {
        let (mut l, mut step) = Lookup::start(&self.state(), key);
        for _ in 0..MAX_LOOKUP_STEPS {
            match step {
                LookupStep::Done { owner, hops } => {
                    self.metrics.lookup_hops.record(hops as f64);
                    return Ok((owner, hops));
                }
                LookupStep::Failed { .. } => break,
                LookupStep::Ask(p) => {
                    step = match self.peers.find_step(&p, key).await {
                        Ok(reply) => {
                            self.state().on_peer_alive(p.id);
                            l.on_reply(&p, reply)
                        }
                        Err(e) => {
                            if e.peer_unreachable() {
                                self.peer_dead(&p);
                            }
                            l.on_timeout(&p)
                        }
                    }
                }
            }
        }
        self.metrics.lookup_failures.increment(1);
        Err(NodeError::LookupFailed(key))
    }

    /// Runs one client operation on the replica set of `key`, wherever it is: coordinated
    /// here when this node's tables name the whole set (the owner then confirms its
    /// ownership), otherwise forwarded to the owner, which coordinates it. Retries with
    /// backoff while ownership is moving (a join or leave in progress, a dead owner not yet
    /// routed around), up to the configured timeout. A quorum that was not reached is final.
    pub(crate) async fn route(&self, key: &[u8], op: pb::Op) -> Result<pb::OpResult, NodeError> {
        if self.life.is_waiting() {
            return Err(NodeError::NotServing(NotServing::Waiting));
        }
        let id = self.space().hash(key);
        let deadline = Instant::now() + self.cfg.timeout;
        let factor = self.cfg.replication_factor as usize;
        let mut delay = Duration::from_millis(5);
        let mut use_hint = true;
        loop {
            let view = if use_hint && self.life.is_serving() {
                dht_core::replicas_from_view(&self.state(), id, factor)
            } else {
                None
            };
            let outcome = match view {
                Some(set) => {
                    let check_owner = set[0].id != self.me.id;
                    self.coordinate(op.clone(), &set, check_owner, deadline)
                        .await
                }
                None => self.forward(id, op.clone(), use_hint).await,
            };
            let err = match outcome {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if !err.retryable() {
                return Err(err);
            }
            use_hint = false;
            if Instant::now() + delay > deadline {
                tracing::debug!(error = %err, "giving up on routing");
                return Err(NodeError::NoOwner {
                    id,
                    timeout_ms: self.cfg.timeout.as_millis() as u64,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Sends an operation to the owner of `id` (from our tables when `use_hint`, else by a
    /// lookup), which coordinates it.
    async fn forward(&self, id: Id, op: pb::Op, use_hint: bool) -> Result<pb::OpResult, NodeError> {
        let hint = if use_hint {
            self.state().owner_hint(id)
        } else {
            None
        };
        let owner = match hint {
            Some(o) => o,
            None => self.lookup(id).await?.0,
        };
        if owner.id == self.me.id {
            return self.coordinate_owned(op, id).await;
        }
        self.metrics.forwarded.increment(1);
        let r = self.peers.apply_one(&owner, op).await.inspect_err(|e| {
            if e.peer_unreachable() {
                self.peer_dead(&owner);
            }
        })?;
        if r.code == 0 {
            Ok(r)
        } else {
            Err(NodeError::from_op_result(self.space(), &r))
        }
    }

    /// Runs a batch of puts: grouped by the owner this node's tables predict, one `Apply` per
    /// owner (one storage commit each); whatever a guessed owner refuses goes through
    /// [`Node::route`] one by one.
    pub(crate) async fn route_batch(&self, ops: Vec<(Vec<u8>, pb::Op)>) -> Result<u64, NodeError> {
        let space = self.space();
        let mut groups: std::collections::HashMap<Option<Peer>, Vec<(Vec<u8>, pb::Op)>> =
            std::collections::HashMap::new();
        {
            let st = self.state();
            for (key, op) in ops {
                let hint = st.owner_hint(space.hash(&key));
                groups.entry(hint).or_default().push((key, op));
            }
        }
        let mut stored = 0u64;
        let mut retry = Vec::new();
        for (owner, group) in groups {
            let Some(owner) = owner else {
                retry.extend(group);
                continue;
            };
            let batch: Vec<pb::Op> = group.iter().map(|(_, op)| op.clone()).collect();
            let results = if owner.id == self.me.id {
                Ok(self.apply_local(batch).await)
            } else {
                self.metrics.forwarded.increment(batch.len() as u64);
                self.peers.apply_batch(&owner, batch).await
            };
            match results {
                Ok(results) if results.len() == group.len() => {
                    for (r, item) in results.into_iter().zip(group) {
                        if r.code == 0 {
                            stored += 1;
                            continue;
                        }
                        let err = NodeError::from_op_result(space, &r);
                        if err.retryable() {
                            retry.push(item);
                        } else {
                            return Err(err);
                        }
                    }
                }
                Ok(_) => retry.extend(group),
                Err(e) => {
                    if e.peer_unreachable() {
                        self.peer_dead(&owner);
                    }
                    retry.extend(group);
                }
            }
        }
        for (key, op) in retry {
            self.route(&key, op).await?;
            stored += 1;
        }
        Ok(stored)
    }
}
