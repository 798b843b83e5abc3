//! The coordinator (docs/consistency.md, "Quorums"): any node runs a client's read or write
//! on the key's replica set and answers once the quorum did.
//!
//! A write is stamped here with the node's hybrid logical clock and sent to every replica
//! (through the per-peer coalescer, so replica traffic is batched like forwarded requests);
//! it is acknowledged after `write_quorum` replicas stored it as their newest version. A
//! replica that holds a newer version refuses and names it: the coordinator moves its clock
//! past that version and stamps the write again, so an acknowledged write is always the newest
//! version on every replica that acknowledged it. A read asks `read_quorum` replicas (this
//! node first when it is one, more when one fails or is slow), returns the newest version and
//! writes it back to the replicas that answered with an older one (read repair).
//!
//! The replica side (`Node::apply_replica`) is in `local`.

use std::time::{Duration, Instant};

use dht_core::{Count, Id, Peer, Quorum, Tally};
use dht_proto::v1 as pb;
use dht_store::Version;
use futures::stream::{FuturesUnordered, StreamExt};

use crate::convert;
use crate::hlc::now_ms;
use crate::node::Node;
use crate::NodeError;

/// How many times a write is stamped again after replicas named newer versions, before the
/// coordinator gives up (only a stream of concurrent newer writes can exhaust it).
const MAX_STAMPS: usize = 4;

/// The longest a read waits on its first replicas before it asks the others too.
const MAX_HEDGE: Duration = Duration::from_millis(200);

/// The quorum a request asked for, or the node's default.
pub(crate) fn quorum_of(wire: i32, default: Quorum) -> Quorum {
    match pb::Quorum::try_from(wire).unwrap_or(pb::Quorum::Default) {
        pb::Quorum::Default => default,
        pb::Quorum::One => Quorum::One,
        pb::Quorum::Majority => Quorum::Majority,
        pb::Quorum::All => Quorum::All,
    }
}

impl Node {
    /// Runs a client operation on `set`, the key's replica set (owner first). With
    /// `check_owner` the owner is asked to confirm it owns the key (the set came from our
    /// tables, not from the owner's).
    pub(crate) async fn coordinate(
        &self,
        op: pb::Op,
        set: &[Peer],
        check_owner: bool,
        deadline: Instant,
    ) -> Result<pb::OpResult, NodeError> {
        match op.op {
            Some(pb::op::Op::Put(e)) => {
                let quorum = quorum_of(op.quorum, self.cfg.write_quorum);
                self.coordinate_write(e, set, quorum, check_owner, deadline)
                    .await
            }
            Some(pb::op::Op::Get(g)) => {
                let quorum = quorum_of(op.quorum, self.cfg.read_quorum);
                self.coordinate_read(g.key.to_vec(), set, quorum, check_owner, deadline)
                    .await
            }
            None => Err(NodeError::InvalidArgument("empty operation".into())),
        }
    }

    /// One replica operation on `p` (this node's own store when `p` is us).
    async fn replica_call(&self, p: &Peer, op: pb::Op) -> Result<pb::OpResult, NodeError> {
        let r = if p.id == self.me.id {
            self.apply_replica(vec![op])
                .await
                .pop()
                .ok_or_else(|| NodeError::Internal("replica returned no result".into()))?
        } else {
            match self.peers.apply_one(p, op).await {
                Ok(r) => r,
                Err(e) => {
                    if e.peer_unreachable() {
                        self.peer_dead(p);
                    }
                    return Err(e);
                }
            }
        };
        if r.code == 0 {
            Ok(r)
        } else {
            Err(NodeError::from_op_result(self.space(), &r))
        }
    }

    /// A put or a delete (`e.deleted`). An entry that already carries a version (a node
    /// handing a stored entry to its replica set) keeps it, and a replica holding a newer one
    /// counts as having it.
    async fn coordinate_write(
        &self,
        mut e: pb::Entry,
        set: &[Peer],
        quorum: Quorum,
        check_owner: bool,
        deadline: Instant,
    ) -> Result<pb::OpResult, NodeError> {
        let versioned = e.version.is_some();
        if versioned {
            self.check_skew(convert::from_version(e.version.as_ref()))?;
        }
        let replicas = set.len();
        let needed = quorum.needed(replicas) as u32;
        let mut answered = 0u32;
        let expiry = tokio::time::sleep_until(deadline.into());
        tokio::pin!(expiry);
        for _ in 0..MAX_STAMPS {
            if !versioned {
                e.version = Some(convert::version(self.local.hlc.next()));
            }
            let mut count = Count::new(quorum, replicas);
            let mut newer: Option<Version> = None;
            answered = 0;
            let mut calls: FuturesUnordered<_> = set
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let op = pb::Op {
                        op: Some(pb::op::Op::Put(e.clone())),
                        replica: true,
                        check_owner: check_owner && i == 0,
                        quorum: 0,
                    };
                    async move { (i, self.replica_call(p, op).await) }
                })
                .collect();
            let tally = loop {
                let next = tokio::select! {
                    next = calls.next() => next,
                    _ = &mut expiry => None,
                };
                let Some((i, result)) = next else {
                    break count.tally();
                };
                let t = match result {
                    Ok(_) => {
                        answered += 1;
                        count.ok()
                    }
                    Err(NodeError::StaleVersion { current }) => {
                        answered += 1;
                        if versioned {
                            count.ok()
                        } else {
                            newer = newer.max(Some(current));
                            count.failed()
                        }
                    }
                    Err(e @ NodeError::NotOwner { .. }) if check_owner && i == 0 => return Err(e),
                    Err(_) => count.failed(),
                };
                if t != Tally::Pending {
                    break t;
                }
            };
            if tally == Tally::Reached {
                return Ok(pb::OpResult {
                    entry: Some(pb::Entry {
                        version: e.version,
                        ..Default::default()
                    }),
                    acks: count.ok as u32,
                    replicas: replicas as u32,
                    ..Default::default()
                });
            }
            match newer {
                // A replica holds a newer version: write again above it, unless it is one
                // this node refuses to follow (then no write of ours could ever win).
                Some(v) if Instant::now() < deadline => {
                    self.check_skew(v)?;
                    self.local.hlc.observe(v);
                    self.metrics.restamps.increment(1);
                }
                _ => break,
            }
        }
        self.metrics.quorum_failures.increment(1);
        Err(NodeError::Quorum {
            op: if e.deleted { "delete" } else { "put" },
            answered,
            needed,
            replicas: replicas as u32,
        })
    }

    /// A get: the newest version among `quorum` replicas, then read repair of the replicas
    /// that answered with an older one or none.
    async fn coordinate_read(
        &self,
        key: Vec<u8>,
        set: &[Peer],
        quorum: Quorum,
        check_owner: bool,
        deadline: Instant,
    ) -> Result<pb::OpResult, NodeError> {
        let replicas = set.len();
        let needed = quorum.needed(replicas);
        let owner = set.first().map(|p| p.id);
        // This node first when it is a replica: its answer costs no round trip.
        let mut order: Vec<&Peer> = set.iter().collect();
        if let Some(pos) = order.iter().position(|p| p.id == self.me.id) {
            let me = order.remove(pos);
            order.insert(0, me);
        }
        let call = |p: &Peer| {
            let op = pb::Op {
                op: Some(pb::op::Op::Get(pb::GetOp {
                    key: key.clone().into(),
                })),
                replica: true,
                check_owner: check_owner && Some(p.id) == owner,
                quorum: 0,
            };
            let p = p.clone();
            async move {
                let r = self.replica_call(&p, op).await;
                (p, r)
            }
        };
        let mut calls: FuturesUnordered<_> = order[..needed].iter().map(|p| call(p)).collect();
        let mut next = needed;
        let mut answers: Vec<(Peer, Option<pb::Entry>)> = Vec::with_capacity(replicas);
        let hedge = tokio::time::sleep((self.cfg.timeout / 10).min(MAX_HEDGE));
        tokio::pin!(hedge);
        let expiry = tokio::time::sleep_until(deadline.into());
        tokio::pin!(expiry);
        let mut hedged = false;
        while answers.len() < needed {
            tokio::select! {
                r = calls.next() => match r {
                    None => break,
                    Some((p, Ok(r))) => answers.push((p, r.entry)),
                    Some((p, Err(e))) => {
                        if matches!(e, NodeError::NotOwner { .. }) && Some(p.id) == owner && check_owner {
                            return Err(e);
                        }
                        if next < order.len() {
                            calls.push(call(order[next]));
                            next += 1;
                        }
                    }
                },
                _ = &mut hedge, if !hedged => {
                    hedged = true;
                    while next < order.len() {
                        calls.push(call(order[next]));
                        next += 1;
                    }
                }
                _ = &mut expiry => break,
            }
        }
        if answers.len() < needed {
            self.metrics.quorum_failures.increment(1);
            return Err(NodeError::Quorum {
                op: "get",
                answered: answers.len() as u32,
                needed: needed as u32,
                replicas: replicas as u32,
            });
        }
        let version = |e: &Option<pb::Entry>| {
            e.as_ref()
                .map(|e| convert::from_version(e.version.as_ref()))
        };
        let newest = answers
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .max_by_key(|e| convert::from_version(e.version.as_ref()))
            .cloned();
        let newest_version = newest
            .as_ref()
            .map(|e| convert::from_version(e.version.as_ref()));
        let agreed = answers
            .iter()
            .filter(|(_, e)| version(e) == newest_version)
            .count();
        if let Some(newest) = &newest {
            self.read_repair(&answers, newest, newest_version).await;
        }
        let live =
            newest.filter(|e| !e.deleted && (e.expires_at_ms == 0 || now_ms() < e.expires_at_ms));
        Ok(pb::OpResult {
            entry: live,
            acks: answers.len() as u32,
            agreed: agreed as u32,
            replicas: replicas as u32,
            ..Default::default()
        })
    }

    /// Writes the newest entry a read saw to the replicas that answered with an older one or
    /// none. Best effort: anti-entropy catches whatever this misses.
    async fn read_repair(
        &self,
        answers: &[(Peer, Option<pb::Entry>)],
        newest: &pb::Entry,
        newest_version: Option<Version>,
    ) {
        let stale: Vec<&Peer> = answers
            .iter()
            .filter(|(_, e)| {
                e.as_ref()
                    .map(|e| convert::from_version(e.version.as_ref()))
                    < newest_version
            })
            .map(|(p, _)| p)
            .collect();
        if stale.is_empty() {
            return;
        }
        self.metrics.read_repairs.increment(stale.len() as u64);
        let repairs = stale.into_iter().map(|p| {
            let op = pb::Op {
                op: Some(pb::op::Op::Put(newest.clone())),
                replica: true,
                ..Default::default()
            };
            async move {
                if let Err(e) = self.replica_call(p, op).await {
                    tracing::debug!(peer = %p.addr, error = %e, "read repair failed");
                }
            }
        });
        futures::future::join_all(repairs).await;
    }

    /// The coordinator side at the owner: a request forwarded by another node because this
    /// node owns the key. Its replica set is this node and its successors.
    pub(crate) async fn coordinate_owned(
        &self,
        op: pb::Op,
        id: Id,
    ) -> Result<pb::OpResult, NodeError> {
        self.life.check_serving()?;
        let set = {
            let st = self.state();
            self.check_owns(&st, id)?;
            dht_core::own_replicas(&st, self.cfg.replication_factor as usize)
        };
        let deadline = Instant::now() + self.cfg.timeout;
        self.coordinate(op, &set, false, deadline).await
    }

    /// The replica set of keys `owner` owns, from its own successor list.
    pub(crate) async fn replicas_of(&self, owner: &Peer) -> Result<Vec<Peer>, NodeError> {
        let factor = self.cfg.replication_factor as usize;
        if owner.id == self.me.id {
            return Ok(dht_core::own_replicas(&self.state(), factor));
        }
        let list = self.peers.get_state(owner).await?.1;
        Ok(dht_core::replica_set(owner, &list, factor))
    }

    /// Refuses a version further ahead of this node's clock than `max_clock_skew_ms`, and
    /// counts it.
    pub(crate) fn check_skew(&self, v: Version) -> Result<(), NodeError> {
        let excess = self.local.hlc.excess_ms(v);
        if excess == 0 {
            return Ok(());
        }
        self.metrics.versions_refused.increment(1);
        Err(NodeError::ClockSkew {
            ahead_ms: excess + self.local.hlc.max_ahead_ms(),
            limit_ms: self.local.hlc.max_ahead_ms(),
        })
    }
}
