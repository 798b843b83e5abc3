//! Ring unification, driven over gRPC (docs/protocol.md, "Ring unification"). The rule is
//! dht-core's (`dht_core::unify`): this module runs its probes, lookups and notices.
//!
//! Every stabilize interval the `rejoin` task probes the passive-list members that are due: a
//! ping (a dead or unreachable member costs that one call; an answer from a new incarnation
//! is a restarted node, logged), then a lookup of this node's id started at that member. The
//! core judges the answer; notices it asks for go out as one-way `Unify` calls, each in its
//! own short task so a partitioned peer never holds up the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dht_core::{Id, Lookup, LookupStep, Notice, Peer, Verdict};
use tracing::{debug, info};

use crate::node::Node;
use crate::routing::MAX_LOOKUP_STEPS;

/// This process's incarnation and the incarnations heard from peers' pings.
pub(crate) struct Incarnations {
    /// When this process started, in ms since the epoch: a node restarted at the same address
    /// answers with a new one.
    pub(crate) mine: u64,
    heard: Mutex<HashMap<Id, u64>>,
}

impl Incarnations {
    pub(crate) fn new() -> Incarnations {
        Incarnations {
            mine: crate::hlc::now_ms(),
            heard: Mutex::default(),
        }
    }

    /// Records `incarnation` for `id`; returns the one heard before if it differs (a restart).
    pub(crate) fn heard(&self, id: Id, incarnation: u64) -> Option<u64> {
        if incarnation == 0 {
            return None;
        }
        let mut m = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: the peers a node pings are its neighbours and its passive list.
        if m.len() > 4096 {
            m.clear();
        }
        m.insert(id, incarnation).filter(|&old| old != incarnation)
    }
}

impl Node {
    /// One round of rejoin probes: every due passive-list member, concurrently.
    pub(crate) async fn rejoin_once(self: &Arc<Self>) {
        if !self.life.is_serving() {
            return;
        }
        let due = {
            let mut st = self.state();
            let due = st.rejoin_due();
            self.metrics.passive_members.set(st.passive().len() as f64);
            due
        };
        let probes = due.into_iter().map(|q| self.rejoin_probe(q));
        futures::future::join_all(probes).await;
    }

    async fn rejoin_probe(self: &Arc<Self>, q: Peer) {
        match self.peers.ping(&q).await {
            Ok(incarnation) => {
                if let Some(old) = self.incarnations.heard(q.id, incarnation) {
                    info!(peer = %q.addr, old, new = incarnation, "a member presumed dead answers: restarted since");
                    self.metrics.rejoin_probe("restarted");
                }
            }
            Err(e) => {
                debug!(peer = %q.addr, error = %e, "rejoin probe: no answer");
                self.metrics.rejoin_probe("unreachable");
                return;
            }
        }
        let me = self.me.id;
        let (l, step) = Lookup::start_via(&self.state(), me, q.clone());
        let (l, owner) = self.lookup_through(l, step).await;
        let (verdict, notices) = self.state().on_rejoin_probe(&q, &l, owner.as_ref());
        match &verdict {
            Verdict::NoAnswer => self.metrics.rejoin_probe("no_answer"),
            Verdict::SameRing => self.metrics.rejoin_probe("same_ring"),
            Verdict::Foreign { owner, adopted } => {
                self.metrics.rejoin_probe("foreign");
                info!(contact = %q.addr, owner = %owner.addr, adopted, "another ring answers: unifying");
            }
        }
        self.send_notices(notices);
    }

    /// The `Unify` handler: the core decides whether to flood and look up; both run in the
    /// background so the caller gets its (empty) answer at once.
    pub(crate) fn on_unify(self: &Arc<Self>, contact: Peer) {
        if !self.life.is_serving() {
            return;
        }
        let on = self.state().on_unify_notice(&contact);
        self.send_notices(on.forward);
        let Some(via) = on.lookup_via else {
            return;
        };
        self.metrics.unify_notices.increment(1);
        let node = self.clone();
        let span = tracing::info_span!("task", name = "unify-lookup", node = %self.me.addr);
        self.tasks.spawn("unify-lookup", span, async move {
            let (l, step) = Lookup::start_via(&node.state(), node.me.id, via.clone());
            let (l, owner) = node.lookup_through(l, step).await;
            let verdict = node.state().on_unify_lookup(&l, owner.as_ref());
            if let Verdict::Foreign { owner, adopted } = verdict {
                info!(contact = %via.addr, owner = %owner.addr, adopted, "unifying with another ring");
            }
            Ok(())
        });
    }

    /// Sends each notice as a one-way `Unify` call in its own task.
    fn send_notices(self: &Arc<Self>, notices: Vec<Notice>) {
        for n in notices {
            let node = self.clone();
            let span = tracing::info_span!("task", name = "unify-notice", node = %self.me.addr);
            self.tasks.spawn("unify-notice", span, async move {
                let token = node.tasks.token().clone();
                tokio::select! {
                    _ = token.cancelled() => {}
                    r = node.peers.unify(&n.to, &n.contact) => {
                        if let Err(e) = r {
                            debug!(to = %n.to.addr, error = %e, "unify notice not delivered");
                        }
                    }
                }
                Ok(())
            });
        }
    }

    /// Drives a lookup that started elsewhere than this node's tables (`Lookup::start_via`):
    /// the lookup and its owner, if found. Unreachable hops only fail this lookup; a member of
    /// another ring is not one of ours to declare dead.
    async fn lookup_through(&self, mut l: Lookup, mut step: LookupStep) -> (Lookup, Option<Peer>) {
        let key = l.key();
        for _ in 0..MAX_LOOKUP_STEPS {
            match step {
                LookupStep::Done { owner, .. } => return (l, Some(owner)),
                LookupStep::Failed { .. } => break,
                LookupStep::Ask(p) => {
                    step = match self.peers.find_step(&p, key).await {
                        Ok(reply) => l.on_reply(&p, reply),
                        Err(_) => l.on_timeout(&p),
                    }
                }
            }
        }
        (l, None)
    }
}

/// Two rings of real nodes in one process become one once a member of one remembers a member
/// of the other; a probe of a member of the node's own ring changes nothing.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dht_core::Peer;

    use crate::test_node::{eventually, TestNode, BOUND};
    use crate::{NodeConfig, Phase};

    fn config() -> NodeConfig {
        NodeConfig {
            timeout: Duration::from_millis(500),
            stabilize_interval: Duration::from_millis(20),
            fix_fingers_interval: Duration::from_millis(50),
            check_predecessor_interval: Duration::from_millis(50),
            expiry_interval: Duration::from_secs(3600),
            shutdown_timeout: Duration::from_secs(2),
            ..NodeConfig::default()
        }
    }

    /// `n` nodes joined through the first one.
    async fn ring(n: usize) -> Vec<TestNode> {
        let first = TestNode::alone(config()).await;
        let boot = vec![first.addr()];
        let mut nodes = vec![first];
        for _ in 1..n {
            let t = TestNode::start(config(), &boot).await;
            let node = t.node.clone();
            eventually("the node joins", BOUND, || node.phase() == Phase::Serving).await;
            nodes.push(t);
        }
        nodes
    }

    /// Every node's successor and predecessor are what the membership of `nodes` gives.
    fn one_ring(nodes: &[&TestNode]) -> bool {
        let mut ids: Vec<Peer> = nodes.iter().map(|t| t.me().clone()).collect();
        ids.sort_by_key(|p| p.id);
        let n = ids.len();
        nodes.iter().all(|t| {
            let i = ids.iter().position(|p| p.id == t.me().id).unwrap();
            let st = t.node.snapshot();
            st.successors().first().map(|p| p.id) == Some(ids[(i + 1) % n].id)
                && st.predecessor().map(|p| p.id) == Some(ids[(i + n - 1) % n].id)
        })
    }

    #[tokio::test]
    async fn two_rings_become_one_once_a_member_remembers_the_other() {
        let a = ring(2).await;
        let b = ring(3).await;
        let (ra, rb): (Vec<&TestNode>, Vec<&TestNode>) = (a.iter().collect(), b.iter().collect());
        eventually("two rings of their own", BOUND, || {
            one_ring(&ra) && one_ring(&rb)
        })
        .await;
        a[0].node.state().remember_bootstraps(&[b[1].me().clone()]);
        let all: Vec<&TestNode> = a.iter().chain(&b).collect();
        eventually("one ring of five", BOUND, || one_ring(&all)).await;
        for t in a.into_iter().chain(b) {
            t.stop().await;
        }
    }

    #[tokio::test]
    async fn a_probe_of_a_member_of_the_same_ring_is_a_false_alarm() {
        let a = ring(3).await;
        let ra: Vec<&TestNode> = a.iter().collect();
        eventually("one ring", BOUND, || one_ring(&ra)).await;
        let other = a[2].me().clone();
        a[0].node
            .state()
            .remember_bootstraps(std::slice::from_ref(&other));
        eventually("the probe forgets the member", BOUND, || {
            !a[0].node.snapshot().passive().contains(other.id)
        })
        .await;
        assert!(one_ring(&ra));
        for t in a {
            t.stop().await;
        }
    }
}
