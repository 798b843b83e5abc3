//! Keeping the ring correct (docs/protocol.md, "Operations"): the periodic tasks (stabilize
//! with the small-ring liveness probe, fix-fingers, check-predecessor, the expiry sweep, the
//! gauges, and the anti-entropy round and replica GC of `antientropy` and `replica_gc`), the `Notify` handler (rectify), and what a node does when a peer is presumed
//! dead. Each periodic task runs under the node's `Tasks` with its name and span.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Peer, Probe, ProbeStep, Rectify, Stabilize, StabilizeStep};
use tracing::{debug, warn};

use crate::hlc::now_ms;
use crate::local::blocking;
use crate::node::Node;

pub(crate) fn spawn_all(node: &Arc<Node>) {
    let cfg = node.cfg.clone();
    periodic(node, "stabilize", cfg.stabilize_interval, |n| async move {
        n.stabilize_once().await
    });
    periodic(
        node,
        "fix-fingers",
        cfg.fix_fingers_interval,
        |n| async move { n.fix_finger_once().await },
    );
    periodic(
        node,
        "check-predecessor",
        cfg.check_predecessor_interval,
        |n| async move { n.check_predecessor_once().await },
    );
    periodic(node, "rejoin", cfg.stabilize_interval, |n| async move {
        n.rejoin_once().await
    });
    periodic(node, "expiry-sweep", cfg.expiry_interval, |n| async move {
        n.expiry_sweep_once().await
    });
    periodic(node, "gauges", GAUGES_INTERVAL, |n| async move {
        n.update_gauges().await;
        n.remember_members();
    });
    periodic(
        node,
        "anti-entropy",
        cfg.anti_entropy_interval,
        |n| async move { n.anti_entropy_once().await },
    );
    let gc_every = cfg.anti_entropy_interval * crate::replica_gc::GC_EVERY_INTERVALS;
    periodic(node, "replica-gc", gc_every, |n| async move {
        if let Err(e) = n.replica_gc_once().await {
            warn!(error = %e, "replica GC failed");
        }
    });
}

/// How often the gauges are refreshed: well under any sensible scrape interval, and one
/// store count per second costs nothing measurable.
const GAUGES_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `work` every `every`, with a per-node phase so nodes started together don't beat in
/// step, until the node's tasks stop.
fn periodic<F, Fut>(node: &Arc<Node>, name: &'static str, every: Duration, work: F)
where
    F: Fn(Arc<Node>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let phase = every.mul_f64((node.me.id.low_u64() % 1000) as f64 / 1000.0);
    let span = tracing::info_span!("task", name, node = %node.me.addr);
    let n = node.clone();
    node.tasks
        .spawn_periodic(name, span, phase, every, move || work(n.clone()));
}

impl Node {
    /// One stabilize round (docs/protocol.md, Stabilize), then one liveness probe of a successor-list
    /// entry beyond the first (the small-ring rule). The core decides when a failed call is
    /// asked again (`Retry`, on a fresh connection) and when the peer counts as dead.
    pub(crate) async fn stabilize_once(&self) {
        // A join in progress (`dhtctl join` on a running node) has set a successor whose
        // range has not arrived; acting on it would tell that successor we are its
        // predecessor before we can serve, and a failed join would leave it wrong.
        if self.life.phase() == crate::lifecycle::Phase::Joining {
            return;
        }
        self.replicated
            .heartbeat(std::time::Instant::now(), self.cfg.timeout);
        let (mut st, mut step) = Stabilize::begin(&mut self.state());
        loop {
            match step {
                StabilizeStep::Query(p) | StabilizeStep::Retry(p) => {
                    step = match self.peers.get_state(&p).await {
                        Ok((pred, list)) => st.on_state(&mut self.state(), &p, pred, &list),
                        Err(e) if e.peer_unreachable() => {
                            self.peers.forget(&p.addr);
                            st.on_timeout(&mut self.state(), &p)
                        }
                        Err(e) => {
                            warn!(peer = %p.addr, error = %e, "stabilize: peer refused");
                            st.on_refused(&mut self.state(), &p)
                        }
                    };
                }
                StabilizeStep::Notify(s) => {
                    if let Err(e) = self.peers.notify(&s).await {
                        if e.peer_unreachable() {
                            self.peer_dead(&s);
                        }
                    }
                    break;
                }
                StabilizeStep::Done => break,
            }
        }
        self.metrics.stabilize_rounds.increment(1);
        let probe = self.state().next_probe();
        self.run_probe(probe).await;
    }

    pub(crate) async fn fix_finger_once(&self) {
        let (i, target) = self.state().next_finger();
        match self.lookup(target).await {
            Ok((owner, _)) => self.state().set_finger(i, &owner),
            Err(_) => self.state().skip_finger(i),
        }
    }

    pub(crate) async fn check_predecessor_once(&self) {
        let probe = self.state().check_predecessor();
        self.run_probe(probe).await;
    }

    /// Pings a liveness probe's peer. A ping that fails as if the peer were dead drops the
    /// connection and goes to the core, which asks for one retry on a fresh connection before
    /// it acts (one slow or lost reply must not evict a live member), and ignores a stale
    /// predecessor report itself.
    async fn run_probe(&self, probe: Option<Probe>) {
        let Some(mut probe) = probe else {
            return;
        };
        loop {
            let p = probe.peer().clone();
            match self.peers.ping(&p).await {
                Ok(incarnation) => {
                    self.incarnations.heard(p.id, incarnation);
                    return;
                }
                Err(e) if e.peer_unreachable() => {
                    self.peers.forget(&p.addr);
                    if let ProbeStep::Dead(_) = probe.on_timeout(&mut self.state()) {
                        self.metrics.peer_deaths.increment(1);
                        return;
                    }
                }
                _ => return,
            }
        }
    }

    /// Sets the gauges that describe this node's view: stored entries, successor-list length,
    /// whether a predecessor is known. Polled rather than updated at every change, so the
    /// write path and the Chord code carry no gauge bookkeeping.
    pub(crate) async fn update_gauges(&self) {
        let (successors, has_pred) = {
            let st = self.state();
            (st.successors().len(), st.predecessor().is_some())
        };
        self.metrics.successors.set(successors as f64);
        self.metrics
            .predecessor_known
            .set(if has_pred { 1.0 } else { 0.0 });
        if let Ok(n) = self.local.len().await {
            self.metrics.store_entries.set(n as f64);
        }
    }

    pub(crate) async fn expiry_sweep_once(&self) {
        let grace = self.cfg.tombstone_grace.as_millis() as u64;
        let now = now_ms();
        match blocking(&self.local.store, move |s| s.purge(now, grace)).await {
            Ok(n) if n > 0 => debug!(purged = n, "expiry sweep"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "expiry sweep failed"),
        }
    }

    /// A peer did not answer: forget it in the tables and drop its channels.
    pub(crate) fn peer_dead(&self, p: &Peer) {
        self.metrics.peer_deaths.increment(1);
        self.state().on_peer_dead(p);
        self.peers.forget(&p.addr);
    }

    /// The `Notify` handler: rectify, with the ownership lock held when the predecessor
    /// changes (our range shrinks).
    ///
    /// When the new predecessor narrows our range, the part it now owns is pushed to it in the
    /// background and our copies dropped once it acknowledged them. Usually the new node
    /// already pulled that range while joining; this covers every other way a range can move
    /// (a join whose lookup was stale, a node that believed itself alone for a moment).
    pub(crate) async fn rectify_from(self: &Arc<Self>, n: &Peer) {
        let moved = if self.state().rectify_would_adopt(n) {
            let _g = self.local.ownership.write().await;
            let mut st = self.state();
            st.rectify(n);
            st.take_given_up()
        } else {
            let decision = self.state().rectify(n);
            match decision {
                // The predecessor changed between the check and now.
                Rectify::Adopted => self.state().take_given_up(),
                Rectify::CheckPredecessor(p) => {
                    let alive = self.peers.ping(&p).await.is_ok();
                    let _g = self.local.ownership.write().await;
                    let mut st = self.state();
                    st.rectify_after_check(n, &p, alive);
                    st.take_given_up()
                }
                Rectify::Kept => None,
            }
        };
        if let Some((from, _)) = moved {
            self.spawn_range_handoff(n, from);
        }
    }
}
