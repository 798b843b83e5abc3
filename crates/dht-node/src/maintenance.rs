//! The periodic tasks that keep the ring correct: stabilize (with the small-ring liveness
//! probe), fix-fingers, check-predecessor, and the expiry sweep; and one that refreshes the
//! metric gauges. Each has a name, a tracing span and the node's task token, and is tracked
//! so shutdown waits for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{Stabilize, StabilizeStep};
use tracing::{debug, warn, Instrument};

use crate::hlc::now_ms;
use crate::node::{blocking, Node};

pub(crate) fn spawn_all(node: &Arc<Node>) {
    let cfg = node.cfg.clone();
    spawn(node, "stabilize", cfg.stabilize_interval, |n| async move {
        n.stabilize_once().await
    });
    spawn(
        node,
        "fix-fingers",
        cfg.fix_fingers_interval,
        |n| async move { n.fix_finger_once().await },
    );
    spawn(
        node,
        "check-predecessor",
        cfg.check_predecessor_interval,
        |n| async move { n.check_predecessor_once().await },
    );
    spawn(node, "expiry-sweep", cfg.expiry_interval, |n| async move {
        n.expiry_sweep_once().await
    });
    spawn(node, "gauges", GAUGES_INTERVAL, |n| async move {
        n.update_gauges().await
    });
}

/// How often the gauges are refreshed: well under any sensible scrape interval, and one
/// store count per second costs nothing measurable.
const GAUGES_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `work` every `every` (with a per-node phase so nodes started together don't beat in
/// step) until the task token is cancelled.
fn spawn<F, Fut>(node: &Arc<Node>, name: &'static str, every: Duration, work: F)
where
    F: Fn(Arc<Node>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    node.task_names
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name);
    let token = node.tasks_stop.clone();
    let phase = every.mul_f64((node.me.id.low_u64() % 1000) as f64 / 1000.0);
    let n = node.clone();
    let span = tracing::info_span!("task", name, node = %node.me.addr);
    node.tasks.spawn(
        async move {
            let mut next = tokio::time::Instant::now() + phase;
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep_until(next) => {}
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = work(n.clone()) => {}
                }
                next = tokio::time::Instant::now() + every;
            }
            debug!("stopped");
        }
        .instrument(span),
    );
}

impl Node {
    /// One stabilize round (CHORD.md, Stabilize), then one liveness probe of a successor-list
    /// entry beyond the first (the small-ring rule).
    pub(crate) async fn stabilize_once(&self) {
        let (mut st, mut step) = Stabilize::begin(&mut self.state());
        loop {
            match step {
                StabilizeStep::Query(p) if p.id == self.me.id => {
                    let mut s = self.state();
                    let (pred, list) = (s.predecessor().cloned(), s.successors().to_vec());
                    step = st.on_state(&mut s, &p, pred, &list);
                }
                StabilizeStep::Query(p) => {
                    step = match self.get_state_confirmed(&p).await {
                        Ok((pred, list)) => st.on_state(&mut self.state(), &p, pred, &list),
                        Err(e) if e.peer_unreachable() => {
                            self.pool.forget(&p.addr);
                            st.on_timeout(&mut self.state(), &p)
                        }
                        Err(e) => {
                            warn!(peer = %p.addr, error = %e, "stabilize: peer refused");
                            st.on_timeout(&mut self.state(), &p)
                        }
                    };
                }
                StabilizeStep::Notify(s) => {
                    if let Err(e) = self.notify(&s).await {
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
        if let Some(p) = probe {
            if let Err(e) = self.ping_confirmed(&p).await {
                if e.peer_unreachable() {
                    self.peer_dead(&p);
                }
            }
        }
    }

    pub(crate) async fn fix_finger_once(&self) {
        let (i, target) = self.state().next_finger();
        match self.lookup(target).await {
            Ok((owner, _)) => self.state().set_finger(i, &owner),
            Err(_) => self.state().skip_finger(i),
        }
    }

    /// A call that failed as if the peer were dead is tried once more on a fresh connection
    /// before the maintenance tasks act on it: one slow or lost reply must not evict a live
    /// member from the successor list and the dead set for several rounds (the simulator
    /// showed that this shrinks the effective list under message loss).
    async fn get_state_confirmed(
        &self,
        p: &dht_core::Peer,
    ) -> Result<(Option<dht_core::Peer>, Vec<dht_core::Peer>), crate::NodeError> {
        match self.get_state(p).await {
            Err(e) if e.peer_unreachable() => {
                self.pool.forget(&p.addr);
                self.get_state(p).await
            }
            other => other,
        }
    }

    async fn ping_confirmed(&self, p: &dht_core::Peer) -> Result<(), crate::NodeError> {
        match self.ping(p).await {
            Err(e) if e.peer_unreachable() => {
                self.pool.forget(&p.addr);
                self.ping(p).await
            }
            other => other,
        }
    }

    pub(crate) async fn check_predecessor_once(&self) {
        let pred = self.state().predecessor().cloned();
        if let Some(p) = pred {
            if let Err(e) = self.ping_confirmed(&p).await {
                if e.peer_unreachable() {
                    self.metrics.peer_deaths.increment(1);
                    self.state().on_predecessor_dead();
                    self.pool.forget(&p.addr);
                }
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
        if let Ok(n) = blocking(&self.store, |s| s.len()).await {
            self.metrics.store_entries.set(n as f64);
        }
    }

    pub(crate) async fn expiry_sweep_once(&self) {
        let grace = self.cfg.tombstone_grace.as_millis() as u64;
        let now = now_ms();
        match blocking(&self.store, move |s| s.purge(now, grace)).await {
            Ok(n) if n > 0 => debug!(purged = n, "expiry sweep"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "expiry sweep failed"),
        }
    }
}
