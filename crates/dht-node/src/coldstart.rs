//! Cold start: a node whose bootstrap list names nodes that may all be waiting too (a LAN's
//! first boot, a power cut) probes them round after round and follows `dht-core`'s
//! [`ColdStart`] rule: join any member, else let the lowest waiting node start the ring
//! (docs/protocol.md, "Cold start").
//!
//! The probe is the `Ping` RPC with the sender's standing and its "lowest" hearsay; a probe
//! received counts as heard, so a node learns of waiting peers its own list does not name.
//! While it waits the node is NOT_SERVING (health and `Kv`), and with nothing heard it backs
//! off up to [`MAX_BACKOFF`], waking early when a probe arrives.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dht_core::{ColdStart, ColdStartStep, Heard, Peer, Standing};
use tracing::{info, warn};

use crate::lifecycle::Phase;
use crate::node::Node;
use crate::NodeError;

/// The longest pause between probe rounds while nothing answers.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a silent stretch may last before the "still waiting" line is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What the node's services need to know about a cold start in progress: the hearsay we
/// pass on, who probed us, and whether a bootstrap list names us. (Whether we wait is the
/// lifecycle's.)
pub(crate) struct Board {
    /// Some bootstrap list names this node (its own, or a prober's): it may start the ring.
    eligible: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
    /// Wakes a backed-off round early when a probe arrives.
    wake: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    lowest: Option<Peer>,
    /// Probes received, by address, with when they arrived.
    inbound: HashMap<String, (Heard, Instant)>,
}

impl Board {
    pub(crate) fn new() -> Board {
        Board {
            eligible: std::sync::atomic::AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_eligible(&self) -> bool {
        self.eligible.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records a probe from a node (a waiting one, or a member saying so). `listed`: the
    /// prober's bootstrap list names us, which makes us eligible to start the ring.
    pub(crate) fn heard(&self, h: Heard, listed: bool) {
        if listed {
            self.eligible
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let addr = h.peer.addr.to_string();
        self.inner().inbound.insert(addr, (h, Instant::now()));
        self.wake.notify_one();
    }

    /// Probes received within `window`; older ones are forgotten (their sender may be gone).
    fn recent(&self, window: Duration) -> Vec<Heard> {
        let mut inner = self.inner();
        inner.inbound.retain(|_, (_, at)| at.elapsed() <= window);
        inner.inbound.values().map(|(h, _)| h.clone()).collect()
    }
}

impl Node {
    /// How this node stands, as a probe reply tells it (with our hearsay while we wait).
    pub(crate) fn standing(&self) -> (Standing, Option<Peer>) {
        match self.life.standing() {
            Standing::Waiting => (Standing::Waiting, self.cold.inner().lowest.clone()),
            other => (other, None),
        }
    }

    /// Waits until this node is a member of the ring its bootstrap list leads to: joined
    /// through a member, or started by the rule. Returns early (Ok) if the node is told to
    /// stop while waiting; fails on a refusal (hash size, id collision) or when the configured
    /// `bootstrap_timeout` passes.
    pub(crate) async fn cold_start(
        &self,
        bootstrap: &[String],
        listed: bool,
    ) -> Result<(), NodeError> {
        if listed {
            self.cold
                .eligible
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let space = self.space();
        let base = self.cfg.stabilize_interval;
        let list: Vec<Peer> = bootstrap
            .iter()
            .map(|a| Peer::from_addr(space, a))
            .collect();
        let mut rule = ColdStart::new(self.me.clone());
        let mut extra: Vec<Peer> = Vec::new();
        let mut delay = base;
        let began = Instant::now();
        let mut last_log: Option<Instant> = None;
        self.life.set(Phase::Waiting);
        self.publish_health().await;
        loop {
            let eligible = self.cold.is_eligible();
            let targets: Vec<(&Peer, bool)> = list
                .iter()
                .map(|p| (p, true))
                .chain(
                    extra
                        .iter()
                        .filter(|p| !list.contains(p))
                        .map(|p| (p, false)),
                )
                .collect();
            let answers = futures::future::join_all(
                targets
                    .iter()
                    .map(|(p, on_list)| self.peers.probe(p, rule.lowest(), *on_list, eligible)),
            )
            .await;
            let mut heard = Vec::new();
            for ((p, _), a) in targets.iter().zip(answers) {
                match a {
                    Ok(h) => heard.push(h),
                    Err(e @ NodeError::HashSizeMismatch { .. }) => return Err(e),
                    Err(e) => tracing::debug!(peer = %p.addr, error = %e, "probe failed"),
                }
            }
            heard.extend(self.cold.recent(2 * delay.max(base)));
            let step = rule.on_round(&heard, eligible);
            self.cold.inner().lowest = rule.lowest().cloned();
            match step {
                ColdStartStep::Start => {
                    info!(
                        heard = heard.len(),
                        "no ring to join and this node is the lowest waiting one: starting the ring"
                    );
                    self.life.set(Phase::Serving);
                    return Ok(());
                }
                ColdStartStep::Join(members) => {
                    let addrs: Vec<String> = members.iter().map(|m| m.addr.to_string()).collect();
                    match self.join(&addrs).await {
                        Ok(()) => return Ok(()),
                        Err(
                            e @ (NodeError::HashSizeMismatch { .. } | NodeError::Precondition(_)),
                        ) => return Err(e),
                        // `join` went back to waiting.
                        Err(e) => {
                            warn!(error = %e, "joining through a member failed; waiting again")
                        }
                    }
                }
                ColdStartStep::Wait { probe } => extra = probe,
            }
            if heard.is_empty() {
                delay = (delay * 2).min(MAX_BACKOFF.max(base));
                if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    warn!(
                        bootstrap = %bootstrap.join(", "),
                        retry_in_ms = delay.as_millis() as u64,
                        "no bootstrap node answers; still waiting for the ring (NOT_SERVING)"
                    );
                    last_log = Some(Instant::now());
                }
            } else {
                delay = base;
            }
            if let Some(limit) = self.cfg.bootstrap_timeout {
                if began.elapsed() >= limit {
                    return Err(NodeError::Bootstrap(format!(
                        "{} (gave up after {} s)",
                        bootstrap.join(", "),
                        limit.as_secs_f64()
                    )));
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
                _ = self.cold.wake.notified(), if delay > base => {}
            }
        }
    }
}
