//! Cold start on the virtual network: nodes that share one bootstrap list and start with no
//! ring at all find (or start) one through `dht-core`'s [`ColdStart`] rule.
//!
//! The rule is the core's; this module only does what `dht-node`'s cold start does around it:
//! each round a waiting node probes every list member but itself, plus the `probe` peers the
//! rule named last round; probes it receives count as heard (for two rounds, like the node's
//! inbound window), and answers carry the callee's standing and, when it waits too, its
//! hearsay of the lowest waiting node. It then hands everything heard to
//! [`ColdStart::on_round`]. `Start` makes it a ring of one, exactly as the first node of a
//! protocol-built ring is; `Join` goes through the simulator's protocol join, via the first
//! member named, and a join that fails puts the node back to waiting.
//!
//! When a round ends is the driver's choice, and it matters (see [`Decide`]). There is no
//! back-off when nothing is heard (`dht-node` backs off up to 5 s); a node that is not up
//! yet does not answer, so a probe to it times out (on a LAN it would be refused at once).

use std::collections::BTreeMap;

use dht_core::{ColdStart, ColdStartStep, Heard, Peer, Standing};

use crate::engine::Time;
use crate::world::{Cont, Event, Ix, Req, Resp, World};

/// When a waiting node decides, relative to its probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Decide {
    /// Probe at the start of each stabilize period, decide at its end: a round is exactly
    /// one period, and the answers are up to a period old when the rule sees them.
    #[default]
    Period,
    /// As `dht-node`: decide as soon as every probe is answered or timed out, then wait one
    /// period before the next probes. Answers are fresh; a round is a period plus that wait.
    Answers,
}

/// A cold-start event of one node.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ColdEvent {
    /// The node comes up: it listens, and probes for its first round.
    Boot(Ix),
    /// The node sends its next round's probes.
    Probe(Ix),
    /// The end of a probe round: the node decides.
    Decide(Ix),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not up yet (or never: a dead list member).
    Down,
    Waiting,
    /// Decided to join a member (or started the ring): no longer a candidate.
    Decided,
}

/// One node's cold-start state around the core's rule.
struct ColdNode {
    rule: ColdStart,
    phase: Phase,
    /// Probe rounds begun; answers name the round they belong to.
    round: u32,
    /// This round's probes still unanswered (for [`Decide::Answers`]).
    pending: usize,
    /// Peers the rule asked us to probe besides the list (hearsay of lower nodes).
    extra: Vec<Peer>,
    /// Answers to our probes since the last decision.
    replies: Vec<Heard>,
    /// Probes received, by prober, with when: kept for two rounds, as `dht-node` keeps them.
    inbound: BTreeMap<Ix, (Heard, Time)>,
}

/// Every node's cold-start state, the shared bootstrap list, and who started a ring when.
/// Ordered containers only: iteration order feeds message order, which a seed must replay.
#[derive(Default)]
pub(crate) struct Cold {
    nodes: Vec<Option<ColdNode>>,
    list: Vec<Peer>,
    decide: Decide,
    starts: Vec<(Ix, Time)>,
    probes: u64,
}

impl Cold {
    /// Whether `ix` finds its ring by the cold-start rule.
    pub(crate) fn has(&self, ix: Ix) -> bool {
        self.nodes.get(ix as usize).is_some_and(Option::is_some)
    }

    fn node(&mut self, ix: Ix) -> Option<&mut ColdNode> {
        self.nodes.get_mut(ix as usize).and_then(Option::as_mut)
    }
}

impl World {
    /// Sets the bootstrap list every cold-starting node shares, and when nodes decide.
    pub fn cold_list(&mut self, list: Vec<Peer>, decide: Decide) {
        self.cold.list = list;
        self.cold.decide = decide;
    }

    /// Makes `ix` (a node just added, not a member) a cold-starting node that comes up
    /// `delay` µs from now; until then it answers nothing. With `boot` false it never comes
    /// up (a dead list member).
    pub fn cold_boot_after(&mut self, ix: Ix, delay: Time, boot: bool) {
        let me = self.nodes[ix as usize].state.me().clone();
        let i = ix as usize;
        if self.cold.nodes.len() <= i {
            self.cold.nodes.resize_with(i + 1, || None);
        }
        self.cold.nodes[i] = Some(ColdNode {
            rule: ColdStart::new(me),
            phase: Phase::Down,
            round: 0,
            pending: 0,
            extra: Vec::new(),
            replies: Vec::new(),
            inbound: BTreeMap::new(),
        });
        self.nodes[i].alive = false;
        if boot {
            self.q.after(delay, Event::Cold(ColdEvent::Boot(ix)));
        }
    }

    /// The nodes that started a ring, with when, in order.
    pub fn cold_starts(&self) -> &[(Ix, Time)] {
        &self.cold.starts
    }

    /// Cold-start probes sent so far.
    pub fn cold_probes(&self) -> u64 {
        self.cold.probes
    }

    pub(crate) fn on_cold(&mut self, e: ColdEvent) {
        match e {
            ColdEvent::Boot(ix) => {
                self.nodes[ix as usize].alive = true;
                self.record("cold-boot", ix, ix);
                if let Some(c) = self.cold.node(ix) {
                    c.phase = Phase::Waiting;
                }
                self.cold_probe(ix);
            }
            ColdEvent::Probe(ix) => self.cold_probe(ix),
            ColdEvent::Decide(ix) => self.cold_decide(ix),
        }
    }

    /// How `ix` stands, as its answer to a probe says.
    fn standing(&mut self, ix: Ix) -> (Standing, Option<Peer>) {
        if self.nodes[ix as usize].joined {
            return (Standing::Member, None);
        }
        match self.cold.node(ix) {
            Some(c) if c.phase == Phase::Waiting => (Standing::Waiting, c.rule.lowest().cloned()),
            _ => (Standing::Joining, None),
        }
    }

    /// `to` answers a probe from `from` (a waiting node); a node not yet a member also
    /// remembers it as heard.
    pub(crate) fn on_cold_probe(&mut self, from: Ix, to: Ix, lowest: Option<Peer>) -> Resp {
        let now = self.q.now();
        let prober = self.nodes[from as usize].state.me().clone();
        let joined = self.nodes[to as usize].joined;
        let eligible = self.cold.list.contains(&prober);
        if let Some(c) = self.cold.node(to).filter(|_| !joined) {
            let heard = Heard {
                eligible,
                ..Heard::waiting(prober, lowest)
            };
            c.inbound.insert(from, (heard, now));
        }
        let (standing, lowest) = self.standing(to);
        Resp::ColdProbe { standing, lowest }
    }

    /// The answer to (or, with `None`, the timeout of) a probe `me` sent in round `round`.
    pub(crate) fn on_cold_reply(
        &mut self,
        me: Ix,
        round: u32,
        answer: Option<(Peer, Standing, Option<Peer>)>,
    ) {
        let decide = self.cold.decide;
        let eligible = answer
            .as_ref()
            .is_some_and(|(peer, _, _)| self.cold.list.contains(peer));
        let Some(c) = self.cold.node(me).filter(|c| c.phase == Phase::Waiting) else {
            return;
        };
        if let Some((peer, standing, lowest)) = answer {
            c.replies.push(Heard {
                eligible,
                peer,
                standing,
                lowest,
            });
        }
        if decide == Decide::Answers && round == c.round {
            c.pending -= 1;
            if c.pending == 0 {
                self.q.after(0, Event::Cold(ColdEvent::Decide(me)));
            }
        }
    }

    /// `ix` probes the list (but itself) and the peers the rule named, for one round.
    fn cold_probe(&mut self, ix: Ix) {
        let me = self.nodes[ix as usize].state.id();
        let Some(c) = self.cold.node(ix).filter(|c| c.phase == Phase::Waiting) else {
            return;
        };
        c.round += 1;
        let (round, lowest) = (c.round, c.rule.lowest().cloned());
        let extra = std::mem::take(&mut c.extra);
        let targets: Vec<Peer> = self
            .cold
            .list
            .iter()
            .chain(extra.iter().filter(|p| !self.cold.list.contains(p)))
            .filter(|p| p.id != me)
            .cloned()
            .collect();
        if let Some(c) = self.cold.node(ix) {
            c.pending = targets.len();
        }
        self.cold.probes += targets.len() as u64;
        for p in &targets {
            let req = Req::ColdProbe {
                lowest: lowest.clone(),
            };
            self.call(ix, p, req, Cont::ColdProbe { round });
        }
        match self.cold.decide {
            Decide::Period => {
                let every = self.cfg.stabilize_every;
                self.q.after(every, Event::Cold(ColdEvent::Decide(ix)));
            }
            Decide::Answers if targets.is_empty() => {
                self.q.after(0, Event::Cold(ColdEvent::Decide(ix)));
            }
            Decide::Answers => {}
        }
    }

    /// The end of `ix`'s round: the rule decides from what was heard.
    fn cold_decide(&mut self, ix: Ix) {
        // Only a node the shared list names may start the ring (docs/protocol.md, "Cold start").
        let me_id = self.nodes[ix as usize].state.id();
        let eligible = self.cold.list.iter().any(|p| p.id == me_id);
        let now = self.q.now();
        let every = self.cfg.stabilize_every;
        let decide = self.cold.decide;
        let joined = self.nodes[ix as usize].joined;
        let Some(c) = self.cold.node(ix).filter(|c| c.phase == Phase::Waiting) else {
            return;
        };
        if joined {
            // A join given up on completed after all.
            c.phase = Phase::Decided;
            return;
        }
        let mut heard = std::mem::take(&mut c.replies);
        c.inbound.retain(|_, (_, at)| now - *at <= 2 * every);
        heard.extend(c.inbound.values().map(|(h, _)| h.clone()));
        match c.rule.on_round(&heard, eligible) {
            ColdStartStep::Start => {
                c.phase = Phase::Decided;
                self.cold.starts.push((ix, now));
                self.record("cold-start", ix, ix);
                // A ring of one, as the first node of a protocol-built ring.
                self.make_member(ix);
            }
            ColdStartStep::Join(members) => {
                c.phase = Phase::Decided;
                let via = members.first().and_then(|m| self.ix_of(m.id));
                let n = &mut self.nodes[ix as usize];
                n.join_attempt += 1;
                let attempt = n.join_attempt;
                match via.filter(|&v| self.nodes[v as usize].alive) {
                    Some(v) => self.join_via(ix, v, attempt),
                    // The member is gone: the join fails as its call would, after a timeout.
                    None => self.q.after(
                        self.cfg.timeout,
                        Event::JoinStart {
                            node: ix,
                            attempt: attempt + 1,
                        },
                    ),
                }
            }
            ColdStartStep::Wait { probe } => {
                c.extra = probe;
                match decide {
                    Decide::Period => self.cold_probe(ix),
                    Decide::Answers => self.q.after(every, Event::Cold(ColdEvent::Probe(ix))),
                }
            }
        }
    }

    /// A join the rule decided on did not complete: back to waiting, as `dht-node` does.
    pub(crate) fn cold_join_failed(&mut self, ix: Ix) {
        let joined = self.nodes[ix as usize].joined;
        let Some(c) = self.cold.node(ix).filter(|c| c.phase == Phase::Decided) else {
            return;
        };
        if !joined {
            c.phase = Phase::Waiting;
            c.replies.clear();
            self.record("cold-join-failed", ix, ix);
            self.cold_probe(ix);
        }
    }
}
