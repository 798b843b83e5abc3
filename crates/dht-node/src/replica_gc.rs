//! Dropping copies this node no longer replicates (docs/protocol.md, "Anti-entropy", GC).
//!
//! A node holds its own range and the ranges it replicates for its predecessors. It cannot
//! tell the latter from its own tables (its predecessors' successor lists decide), so it
//! learns them from the `Digest` requests it answers: a predecessor that counts us among its
//! replicas asks us about its range every anti-entropy interval. An entry that lies outside
//! our range and outside every range asked about in the last [`KEEP_INTERVALS`] intervals is
//! a copy nobody expects here any more (the ring changed, or the node restarted with old
//! data): it is pushed to every member of its current replica set and dropped, exact
//! version, once all of them acknowledged it. Nothing is dropped while any member is
//! unreachable, and nothing before the node has served for [`KEEP_INTERVALS`] intervals
//! (until then its predecessors may not have asked yet).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dht_core::interval::between_right;
use dht_core::{Id, Peer};
use dht_store::Entry;
use tracing::{debug, info, warn};

use crate::convert;
use crate::node::Node;
use crate::telemetry::Handoff;
use crate::NodeError;

/// How many anti-entropy intervals a range stays "replicated here" after it was last asked
/// about, and how long a node serves before its first GC.
pub(crate) const KEEP_INTERVALS: u32 = 3;
/// The periodic GC runs every this many anti-entropy intervals: it reads the whole store.
pub(crate) const GC_EVERY_INTERVALS: u32 = 4;
/// Entries per scan page and per push.
const PAGE: usize = 512;

/// The ranges this node was asked about, and since when it may collect.
pub(crate) struct Replicated {
    /// How long an asked range is kept: [`KEEP_INTERVALS`] anti-entropy intervals.
    window: Duration,
    /// (from, to) → when last asked. A std mutex: a few entries (one per predecessor that
    /// replicates to us, plus joins), touched briefly and never across an `.await`.
    asked: Mutex<HashMap<(Id, Id), Instant>>,
    /// Set when the node starts serving or its membership changed: no GC before
    /// `armed + window`.
    armed: Mutex<Option<Instant>>,
    /// One GC pass at a time (the periodic task and the one after a start may meet).
    running: AtomicBool,
    /// When the last pass was asked for, to notice a gap: a process that was paused
    /// (SIGSTOP, a suspended VM) was asked about nothing meanwhile, and must not take that
    /// silence for "nobody replicates here any more".
    last_pass: Mutex<Option<Instant>>,
    /// The periodic pass's period.
    period: Duration,
    /// When the node's maintenance last ran (see [`Replicated::heartbeat`]).
    beat: Mutex<Option<Instant>>,
}

impl Replicated {
    pub(crate) fn new(anti_entropy_interval: Duration) -> Replicated {
        Replicated {
            window: anti_entropy_interval * KEEP_INTERVALS,
            asked: Mutex::default(),
            armed: Mutex::default(),
            running: AtomicBool::new(false),
            last_pass: Mutex::default(),
            period: anti_entropy_interval * GC_EVERY_INTERVALS,
            beat: Mutex::default(),
        }
    }

    /// Called by every stabilize round. A gap longer than `timeout` since the previous
    /// round means this process did not run for longer than its peers wait before they
    /// presume it dead (a SIGSTOP, a suspended VM, a starved machine): they may have dropped
    /// it from their replica sets and stopped asking it about their ranges, so the GC waits
    /// a whole window again before it reads that silence as "not a replica any more".
    pub(crate) fn heartbeat(&self, now: Instant, timeout: Duration) {
        let mut beat = self.beat.lock().unwrap_or_else(|e| e.into_inner());
        let gap = beat.map(|t| now.saturating_duration_since(t));
        *beat = Some(now);
        drop(beat);
        if gap.is_some_and(|g| g > timeout) && self.armed_at().is_some() {
            self.arm(now);
        }
    }

    fn armed_at(&self) -> Option<Instant> {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a pass at `now`. After a gap of more than two periods since the previous one
    /// (the node was paused or starved), re-arms instead: the GC waits a whole window again,
    /// so its predecessors can ask about their ranges first. Says whether a pass may run.
    fn pass(&self, now: Instant) -> bool {
        let mut last = self.last_pass.lock().unwrap_or_else(|e| e.into_inner());
        let gap = last.map(|t| now.saturating_duration_since(t));
        *last = Some(now);
        drop(last);
        if gap.is_some_and(|g| g > self.period * 2) {
            self.arm(now);
            return false;
        }
        true
    }

    /// Notes that a peer asked for the digests of `(from, to]` at `now`.
    pub(crate) fn asked(&self, from: Id, to: Id, now: Instant) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.retain(|_, at| now.saturating_duration_since(*at) <= self.window);
        asked.insert((from, to), now);
    }

    /// The ranges asked about within the window before `now`.
    fn recent(&self, now: Instant) -> Vec<(Id, Id)> {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) <= self.window)
            .map(|(r, _)| *r)
            .collect()
    }

    pub(crate) fn arm(&self, now: Instant) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    /// Whether the node has served (since it was armed) for the whole window.
    fn due(&self, now: Instant) -> bool {
        self.armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| now.saturating_duration_since(t) >= self.window)
    }
}

/// Clears `running` however a pass ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Node {
    /// Called when the node starts serving (a start, a cold start, a `Kv.Join`): arms the
    /// replica GC and runs its first pass as soon as it may, in a task named `rehome` (it is
    /// what sends a restarted node's stale entries to where they now belong).
    pub(crate) fn spawn_rehome(self: &Arc<Self>) {
        self.replicated.arm(Instant::now());
        let node = self.clone();
        let token = self.tasks.token().clone();
        let wait = self.replicated.window;
        let span = tracing::info_span!("task", name = "rehome", node = %self.me.addr);
        self.tasks.spawn("rehome", span, async move {
            tokio::select! {
                _ = token.cancelled() => return Ok(()),
                _ = tokio::time::sleep(wait) => {}
            }
            tokio::select! {
                _ = token.cancelled() => {}
                r = node.replica_gc_once() => match r? {
                    0 => {}
                    n => info!(entries = n, "sent entries to their replicas and dropped them here"),
                }
            }
            Ok(())
        });
    }

    /// One GC pass over the whole store; returns how many entries it handed away.
    pub(crate) async fn replica_gc_once(&self) -> Result<usize, NodeError> {
        let now = Instant::now();
        if !self.replicated.pass(now) || !self.life.is_serving() || !self.replicated.due(now) {
            return Ok(0);
        }
        if self.replicated.running.swap(true, Ordering::SeqCst) {
            return Ok(0);
        }
        let _running = Running(&self.replicated.running);
        let own = {
            let st = self.state();
            match st.predecessor() {
                Some(p) if !st.is_alone() => (p.id, self.me.id),
                _ => return Ok(0),
            }
        };
        let keep = self.replicated.recent(now);
        let me = self.me.id;
        let mut after = None;
        let mut moved = 0;
        // The owner and replica set of the last foreign entry, and the ids they cover
        // ((lo, owner]: no member lies between an id and its owner).
        let mut cached: Option<(Id, Id, Vec<Peer>)> = None;
        loop {
            if !self.life.is_serving() {
                break;
            }
            let page = self.local.scan(me, me, after.clone(), PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some((last.id, last.key.clone()));
            // Foreign entries of this page, grouped by owner in ring order.
            let mut groups: Vec<(Vec<Peer>, Vec<Entry>)> = Vec::new();
            let mut group_owner = None;
            for e in page {
                let kept = between_right(e.id, own.0, own.1)
                    || keep.iter().any(|&(a, b)| between_right(e.id, a, b));
                if kept {
                    continue;
                }
                if !cached
                    .as_ref()
                    .is_some_and(|(lo, owner, _)| between_right(e.id, *lo, *owner))
                {
                    cached = match self.replicas_of_key(e.id).await {
                        Ok((owner, set)) => {
                            let lo = self.space().distance(Id::from_u64(1), e.id);
                            Some((lo, owner.id, set))
                        }
                        Err(err) => {
                            debug!(id = %e.id, error = %err, "replica GC: no replica set; the entry stays");
                            None
                        }
                    };
                }
                let Some((_, owner, set)) = &cached else {
                    continue;
                };
                // Our own view says we replicate it after all: keep it.
                if set.iter().any(|p| p.id == me) {
                    continue;
                }
                if group_owner != Some(*owner) {
                    groups.push((set.clone(), Vec::new()));
                    group_owner = Some(*owner);
                }
                if let Some((_, entries)) = groups.last_mut() {
                    entries.push(e);
                }
            }
            for (set, entries) in groups {
                moved += self.hand_to_replicas(&set, entries).await?;
            }
        }
        if moved > 0 {
            debug!(
                entries = moved,
                "replica GC handed entries to their replica sets"
            );
        }
        Ok(moved)
    }

    /// The owner of `id` and its replica set, from the owner's own successor list.
    async fn replicas_of_key(&self, id: Id) -> Result<(Peer, Vec<Peer>), NodeError> {
        let (owner, _) = self.lookup(id).await?;
        let set = self.replicas_of(&owner).await?;
        Ok((owner, set))
    }

    /// Pushes `entries` to every member of `set`; once all acknowledged them, drops exactly
    /// these versions here. Returns how many were dropped (0 if a member failed).
    async fn hand_to_replicas(
        &self,
        set: &[Peer],
        entries: Vec<Entry>,
    ) -> Result<usize, NodeError> {
        let wire: Vec<_> = entries.iter().map(convert::entry).collect();
        for p in set {
            let sent = futures::stream::iter(wire.clone());
            match self.peers.push_entries(p, sent).await {
                Ok(n) if n == wire.len() as u64 => {}
                Ok(n) => {
                    warn!(peer = %p.addr, acknowledged = n, sent = wire.len(), "replica GC: push partly acknowledged; the entries stay");
                    return Ok(0);
                }
                Err(e) => {
                    debug!(peer = %p.addr, error = %e, "replica GC: push failed; the entries stay");
                    return Ok(0);
                }
            }
        }
        let n = entries.len();
        self.metrics.handoff(Handoff::RehomeOut, n as u64);
        let versions = entries
            .into_iter()
            .map(|e| (e.id, e.key, e.record.version))
            .collect();
        self.local.remove(versions).await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_ranges_are_kept_for_the_window_only() {
        let r = Replicated::new(Duration::from_secs(10));
        let t0 = Instant::now();
        r.asked(Id::from_u64(1), Id::from_u64(5), t0);
        r.asked(
            Id::from_u64(5),
            Id::from_u64(9),
            t0 + Duration::from_secs(20),
        );
        assert_eq!(r.recent(t0 + Duration::from_secs(30)).len(), 2);
        assert_eq!(
            r.recent(t0 + Duration::from_secs(31)),
            vec![(Id::from_u64(5), Id::from_u64(9))]
        );
        // Not armed: never due; armed: due after the window.
        assert!(!r.due(t0));
        r.arm(t0);
        assert!(!r.due(t0 + Duration::from_secs(29)));
        assert!(r.due(t0 + Duration::from_secs(30)));
    }

    /// A pass after a gap of more than two periods (a paused process) does not run and
    /// re-arms the window; regular passes run once the window has passed.
    #[test]
    fn a_gap_between_passes_rearms_the_window() {
        let interval = Duration::from_secs(1);
        let r = Replicated::new(interval);
        let t0 = Instant::now();
        r.arm(t0);
        let period = interval * GC_EVERY_INTERVALS;
        assert!(r.pass(t0 + period));
        assert!(r.due(t0 + period));
        // A maintenance gap longer than the timeout re-arms too.
        r.heartbeat(t0 + period, Duration::from_secs(2));
        r.heartbeat(
            t0 + period + Duration::from_millis(250),
            Duration::from_secs(2),
        );
        assert!(r.due(t0 + period + Duration::from_millis(250)));
        let woke = t0 + period + Duration::from_secs(5);
        r.heartbeat(woke, Duration::from_secs(2));
        assert!(!r.due(woke + interval));
        assert!(r.due(woke + interval * KEEP_INTERVALS));
        // Paused for ten periods: the next pass is refused and the window starts again.
        let resumed = t0 + period * 11;
        assert!(!r.pass(resumed));
        assert!(!r.due(resumed + interval));
        assert!(r.pass(resumed + period));
        assert!(r.due(resumed + period));
    }
}
