//! Where a node is in its life, and the two transitions that move ranges: join and leave
//! (docs/protocol.md, "Join" and "Leave").
//!
//! [`Lifecycle`] is the one answer to "may this node serve?": the services, health, the
//! owner-side apply and the cold-start probe all ask it, so no handler reads a flag of its
//! own. A joining node receives its range from its successor *before* it serves it; a leaving
//! node stops serving, hands every key to its successor and relinks its neighbours. The key
//! transfers themselves are in `handoff`.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use dht_core::{Id, Peer, Standing};
use dht_proto::v1 as pb;
use tracing::{info, warn};

use crate::antientropy::Direction;
use crate::error::NotServing;
use crate::node::Node;
use crate::telemetry::Handoff;
use crate::NodeError;

/// The phases of a node, in the order a node goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Cold start: waiting for its bootstrap nodes to form a ring.
    Waiting = 0,
    /// Joining a ring: its range has not arrived yet.
    Joining = 1,
    /// A member serving its range.
    Serving = 2,
    /// Handing its keys to its successor.
    Leaving = 3,
    /// Gone from the ring; the process is about to stop.
    Left = 4,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Waiting,
            1 => Phase::Joining,
            2 => Phase::Serving,
            3 => Phase::Leaving,
            _ => Phase::Left,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Joining => "joining",
            Phase::Serving => "serving",
            Phase::Leaving => "leaving",
            Phase::Left => "left",
        }
    }
}

/// The node's phase. Atomic: read on every request, changed a handful of times in a life.
pub(crate) struct Lifecycle {
    phase: AtomicU8,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            phase: AtomicU8::new(Phase::Joining as u8),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    pub(crate) fn set(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::SeqCst);
    }

    /// Moves to `to` only from `from`; says whether it did.
    pub(crate) fn advance(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.phase() == Phase::Serving
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.phase() == Phase::Waiting
    }

    /// Leaving or left: the node answers no ring question (its tables are being reset) and
    /// accepts no keys.
    pub(crate) fn has_left(&self) -> bool {
        matches!(self.phase(), Phase::Leaving | Phase::Left)
    }

    /// Refuses ring questions once the node began to leave.
    pub(crate) fn check_member(&self) -> Result<(), NodeError> {
        if self.has_left() {
            return Err(NodeError::Left);
        }
        Ok(())
    }

    /// Refuses client requests unless the node serves its range, saying why.
    pub(crate) fn check_serving(&self) -> Result<(), NodeError> {
        match self.phase() {
            Phase::Serving => Ok(()),
            Phase::Waiting => Err(NodeError::NotServing(NotServing::Waiting)),
            Phase::Joining => Err(NodeError::NotServing(NotServing::Joining)),
            Phase::Leaving | Phase::Left => Err(NodeError::NotServing(NotServing::Leaving)),
        }
    }

    /// How a cold-start probe sees us.
    pub(crate) fn standing(&self) -> Standing {
        match self.phase() {
            Phase::Waiting => Standing::Waiting,
            Phase::Serving => Standing::Member,
            _ => Standing::Joining,
        }
    }
}

impl Node {
    /// Joins the ring that any of `bootstrap` belongs to. The node does not serve until its
    /// range has arrived; if the join fails it goes back to the phase it was in.
    pub async fn join(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let before = self.life.phase();
        self.life.set(Phase::Joining);
        self.publish_health().await;
        let result = self.join_retrying(bootstrap).await;
        self.life.set(if result.is_ok() {
            Phase::Serving
        } else {
            before
        });
        self.publish_health().await;
        result
    }

    /// Retries a join that failed for a transient reason (a timeout under load, the ring
    /// still listing our previous incarnation) for a few seconds; gives up at once on a
    /// refusal (hash size, id collision), and after three rounds when no bootstrap answers.
    async fn join_retrying(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let mut last_err = None;
        for attempt in 0..10 {
            match self.join_once(bootstrap).await {
                Ok(()) => return Ok(()),
                Err(e @ (NodeError::HashSizeMismatch { .. } | NodeError::Precondition(_))) => {
                    return Err(e)
                }
                Err(e @ NodeError::Bootstrap(_)) if attempt >= 2 => return Err(e),
                Err(e) => {
                    warn!(attempt, error = %e, "join attempt failed; retrying");
                    last_err = Some(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        Err(last_err.unwrap_or_else(|| NodeError::Bootstrap(bootstrap.join(", "))))
    }

    async fn join_once(&self, bootstrap: &[String]) -> Result<(), NodeError> {
        let mut last_err = None;
        let mut found = None;
        for addr in bootstrap {
            match self.peers.find_successor_via(addr, self.me.id).await {
                Ok(s) => {
                    found = Some(s);
                    break;
                }
                Err(e @ NodeError::HashSizeMismatch { .. }) => return Err(e),
                Err(e) if e.reason() == pb::Reason::HashSize => {
                    return Err(NodeError::Precondition(e.to_string()))
                }
                Err(NodeError::Peer { status, .. })
                    if status.code() == tonic::Code::FailedPrecondition
                        && crate::error::detail(&status).reason() == pb::Reason::Unspecified =>
                {
                    return Err(NodeError::Precondition(status.message().to_string()))
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some(mut succ) = found else {
            let why = last_err.map(|e| e.to_string()).unwrap_or_default();
            return Err(NodeError::Bootstrap(format!(
                "{}: {why}",
                bootstrap.join(", ")
            )));
        };
        if succ.id == self.me.id {
            if succ.addr != self.me.addr {
                return Err(NodeError::Precondition(format!(
                    "id collision: {} has the same id {} as this node; use a larger hash_size",
                    succ.addr, self.me.id
                )));
            }
            // The ring still lists a previous incarnation of this node (a quick restart). Our
            // own FindStep answers "not serving" while we join alone, so the lookup of the
            // next id goes past us to the first member after us. Never fall back to being
            // alone here: the rest of the ring exists and would be overruled.
            let next = self.space().add(self.me.id, Id::from_u64(1));
            succ = self.peers.find_successor_via(&bootstrap[0], next).await?;
            if succ.id == self.me.id {
                return Err(NodeError::Internal(
                    "the ring still lists this node's previous incarnation".into(),
                ));
            }
        }
        let result = self.adopt_successor(&succ).await;
        if result.is_err() {
            // A join cut short must not leave half-set pointers behind: the next stabilize
            // would make the successor hand us a range we never received.
            self.state().reset();
        }
        result
    }

    /// Takes `succ` as successor and brings our range over before we serve it, through the
    /// anti-entropy exchange in pull mode (only our store changes): digests of the range
    /// first, then only the buckets that differ — all of them for an empty node, few for a
    /// node restarted with its data. Then the notify (the successor stops owning the range),
    /// then the same exchange again for whatever was written there meanwhile.
    async fn adopt_successor(&self, succ: &Peer) -> Result<(), NodeError> {
        let (s_pred, s_list) = self.peers.get_state(succ).await?;
        let range = {
            let mut st = self.state();
            st.join(succ, &s_list);
            st.join_range(succ, s_pred.as_ref())
        };
        let before = self.sync_range(succ, range, Direction::Pull).await?;
        self.peers.notify(succ).await?;
        let after = self.sync_range(succ, range, Direction::Pull).await?;
        let pulled = before.pulled + after.pulled;
        self.metrics.handoff(Handoff::JoinIn, pulled);
        info!(
            successor = %succ.addr,
            keys = pulled,
            buckets = before.differing + after.differing,
            "joined"
        );
        Ok(())
    }

    /// Leaves the ring gracefully. Idempotent; a leave cut short counts as a failure, and
    /// says so: the caller (dhtd) exits non-zero.
    pub async fn leave(&self) -> Result<(), NodeError> {
        if !self.life.advance(Phase::Serving, Phase::Leaving)
            && !self.life.advance(Phase::Joining, Phase::Leaving)
            && !self.life.advance(Phase::Waiting, Phase::Leaving)
        {
            return Ok(());
        }
        self.tasks.token().cancel();
        // Who could take our keys, as we knew it before settling: a successor that stops
        // answering now is dropped from the list by stabilize, and an empty list must not make
        // a member with keys look like a lone node with nothing to hand over.
        let known = self.state().successors().to_vec();
        // NOT_SERVING now, before waiting for writes in flight to finish.
        self.publish_health().await;
        // Wait for pushes to us that are under way (their entries must be in our scan); later
        // ones are refused now that we are leaving.
        drop(self.local.leave_gate.write().await);
        // Writes in flight finish before the scan below (they hold the ownership lock).
        drop(self.local.ownership.write().await);
        self.settle_successor().await;
        let plan = self.state().leave_plan();
        let mut candidates = plan.successors.clone();
        candidates.extend(known.into_iter().filter(|k| !plan.successors.contains(k)));
        let handed_to = self.hand_over_everything(&candidates).await;
        if !candidates.is_empty() && handed_to.is_none() {
            self.life.set(Phase::Left);
            return Err(NodeError::LeaveCutShort(
                "no successor accepted the keys; they stay in this node's data directory".into(),
            ));
        }
        let notice = pb::LeaveNoticeRequest {
            leaving: Some(crate::convert::node_ref(&self.me)),
            successors: crate::convert::node_refs(&plan.successors),
            predecessor: plan.predecessor.as_ref().map(crate::convert::node_ref),
        };
        let mut told: Vec<Peer> = handed_to.into_iter().collect();
        told.extend(plan.predecessor.clone());
        told.dedup_by_key(|p| p.id);
        for p in told {
            if let Err(e) = self.peers.leave_notice(&p, notice.clone()).await {
                warn!(peer = %p.addr, error = %e, "leave notice failed");
            }
        }
        self.state().reset();
        self.life.set(Phase::Left);
        Ok(())
    }

    /// Before a leave hands its keys over, make sure our successor knows us as its
    /// predecessor: a node that joined between us and our successor since our last stabilize
    /// would otherwise own our range while our keys went to the old successor.
    async fn settle_successor(&self) {
        for _ in 0..20 {
            self.stabilize_once().await;
            let Some(s) = self.state().successors().first().cloned() else {
                return;
            };
            if let Ok((Some(p), _)) = self.peers.get_state(&s).await {
                if p.id == self.me.id {
                    return;
                }
            }
            tokio::time::sleep(self.cfg.stabilize_interval.min(Duration::from_millis(100))).await;
        }
        warn!("successor does not list this node as its predecessor; handing keys over anyway");
    }
}
