//! Lookups and request routing: the node drives `dht-core`'s lookup state machine over gRPC,
//! and sends each client operation to the key's owner, retrying while the ring converges.

use std::time::{Duration, Instant};

use dht_core::{Id, Lookup, LookupStep, Peer, Step};
use dht_proto::v1 as pb;
use tonic::Code;

use crate::convert;
use crate::hlc::now_ms;
use crate::node::Node;
use crate::pool::peer_err;
use crate::NodeError;

/// A lookup may not take more steps than this, whatever peers answer.
const MAX_LOOKUP_STEPS: usize = 512;

impl Node {
    /// A peer did not answer: forget it in the tables and drop its channel.
    pub(crate) fn peer_dead(&self, p: &Peer) {
        self.metrics.peer_deaths.increment(1);
        self.state().on_peer_dead(p.id);
        self.pool.forget(&p.addr);
        self.coalescer.forget(&p.addr);
    }

    pub(crate) async fn remote_step(&self, p: &Peer, key: Id) -> Result<Step, NodeError> {
        let mut c = self.pool.client(p)?;
        let reply = c
            .find_step(pb::FindStepRequest {
                key_id: convert::id_bytes(key),
            })
            .await
            .map_err(peer_err(&p.addr))?
            .into_inner();
        convert::from_step(self.space(), &reply)
    }

    /// The iterative lookup of `key`: its owner and the path length (CHORD.md convention).
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
                    step = match self.remote_step(&p, key).await {
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

    /// Runs one operation on the owner of `key`, wherever it is. Retries with backoff while
    /// ownership is moving (a join or leave in progress, a dead owner not yet routed around),
    /// up to the configured timeout.
    pub(crate) async fn route(&self, key: &[u8], op: pb::Op) -> Result<pb::OpResult, NodeError> {
        if self.cold.is_waiting() {
            return Err(NodeError::NotServing(
                "waiting for its bootstrap nodes to form a ring",
            ));
        }
        let id = self.space().hash(key);
        let deadline = Instant::now() + self.cfg.timeout;
        let mut delay = Duration::from_millis(5);
        let mut use_hint = true;
        loop {
            let hint = if use_hint {
                self.state().owner_hint(id)
            } else {
                None
            };
            let owner = match hint {
                Some(o) => Ok(o),
                None => self.lookup(id).await.map(|(o, _)| o),
            };
            let outcome = match owner {
                Err(e) => Err(e),
                Ok(o) if o.id == self.me.id => Ok(self.apply_local(vec![op.clone()]).await),
                Ok(o) => self.apply_remote(&o, op.clone()).await.inspect_err(|e| {
                    if e.peer_unreachable() {
                        self.peer_dead(&o);
                    }
                }),
            };
            let err = match outcome {
                Ok(mut results) => match results.pop() {
                    Some(r) if r.code == 0 => return Ok(r),
                    Some(r) => status_error(&r),
                    None => NodeError::Internal("owner returned no result".into()),
                },
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
                let mut c = self.pool.client(&owner)?;
                c.apply(pb::ApplyRequest { ops: batch })
                    .await
                    .map(|r| r.into_inner().results)
                    .map_err(peer_err(&owner.addr))
            };
            match results {
                Ok(results) if results.len() == group.len() => {
                    for (r, item) in results.into_iter().zip(group) {
                        if r.code == 0 {
                            stored += 1;
                        } else if status_error(&r).retryable() {
                            retry.push(item);
                        } else {
                            return Err(status_error(&r));
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

    async fn apply_remote(&self, owner: &Peer, op: pb::Op) -> Result<Vec<pb::OpResult>, NodeError> {
        self.metrics.forwarded.increment(1);
        Ok(vec![self.coalescer.apply(owner, op).await?])
    }

    /// Executes operations on keys this node owns (the owner side of `Apply`). Puts without a
    /// version are stamped here, so one owner's versions of a key always increase.
    pub(crate) async fn apply_local(&self, ops: Vec<pb::Op>) -> Vec<pb::OpResult> {
        let _owned = self.ownership.read().await;
        let space = self.space();
        let mut results: Vec<pb::OpResult> = vec![pb::OpResult::default(); ops.len()];
        let mut puts = Vec::new();
        let mut put_slots = Vec::new();
        let mut gets = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let key = match &op.op {
                Some(pb::op::Op::Get(g)) => g.key.clone(),
                Some(pb::op::Op::Put(e)) => e.key.clone(),
                None => {
                    results[i] =
                        error_result(&NodeError::InvalidArgument("empty operation".into()));
                    continue;
                }
            };
            if let Err(e) = self.check_key(&key) {
                results[i] = error_result(&e);
                continue;
            }
            let id = space.hash(&key);
            if !self.is_serving() {
                results[i] = error_result(&NodeError::NotServing("joining or leaving"));
                continue;
            }
            if !self.state().owns(id) {
                results[i] = error_result(&NodeError::NotOwner(id));
                continue;
            }
            match op.op {
                Some(pb::op::Op::Put(e)) => {
                    if let Err(err) = self.check_value(&e.value) {
                        results[i] = error_result(&err);
                        continue;
                    }
                    let stamp = e.version.is_none();
                    let mut entry = convert::from_entry(space, e);
                    if stamp {
                        entry.record.version = self.hlc.next();
                    } else {
                        self.hlc.observe(entry.record.version);
                    }
                    put_slots.push(i);
                    puts.push(entry);
                }
                Some(pb::op::Op::Get(_)) => gets.push((i, id, key.to_vec())),
                None => {}
            }
        }
        if !puts.is_empty() {
            match self.store_apply(puts.clone()).await {
                Ok(_) => {
                    for (slot, e) in put_slots.into_iter().zip(&puts) {
                        results[slot].entry = Some(convert::entry(e));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage write failed");
                    for slot in put_slots {
                        results[slot] = error_result(&e);
                    }
                }
            }
        }
        let now = now_ms();
        for (i, id, key) in gets {
            match self.store_get(id, key).await {
                Ok(Some(e)) if e.record.is_live(now) => results[i].entry = Some(convert::entry(&e)),
                Ok(_) => {}
                Err(e) => results[i] = error_result(&e),
            }
        }
        results
    }

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
}

fn error_result(e: &NodeError) -> pb::OpResult {
    let code = match e {
        NodeError::NotOwner(_) => Code::FailedPrecondition,
        NodeError::NotServing(_) | NodeError::Store(_) => Code::Unavailable,
        NodeError::InvalidArgument(_)
        | NodeError::EmptyKey
        | NodeError::KeyTooLarge { .. }
        | NodeError::ValueTooLarge { .. } => Code::InvalidArgument,
        _ => Code::Internal,
    };
    pb::OpResult {
        entry: None,
        error: e.to_string(),
        code: code as i32,
    }
}

/// The error an owner reported for one operation, as the error the router reasons about.
fn status_error(r: &pb::OpResult) -> NodeError {
    match Code::from_i32(r.code) {
        Code::FailedPrecondition => NodeError::NotOwner(Id::ZERO),
        Code::Unavailable if r.error.contains("not serving") => {
            NodeError::NotServing("owner is joining or leaving")
        }
        Code::InvalidArgument => NodeError::InvalidArgument(r.error.clone()),
        code => NodeError::Remote {
            code,
            message: r.error.clone(),
        },
    }
}
