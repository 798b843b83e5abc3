//! The drivers of the core's multi-step exchanges: lookups, stabilize rounds, rectify, joins.
//!
//! Each function feeds one answer (or timeout) into the core state machine it belongs to and
//! performs the step the core returns, as `dht-node`'s maintenance tasks do over gRPC.

use dht_core::{Lookup, LookupStep, Peer, ProbeStep, Rectify, Stabilize, StabilizeStep};

use crate::world::{
    Cont, Event, Ix, LookupResult, LookupRun, Outcome, Purpose, Req, Resp, TimerKind, World,
};

impl World {
    fn peer(&self, ix: Ix) -> Peer {
        self.nodes[ix as usize].state.me().clone()
    }

    pub(crate) fn on_reply(&mut self, me: Ix, from: Ix, resp: Resp, cont: Cont) {
        let from_peer = self.peer(from);
        match (cont, resp) {
            (Cont::Lookup { slot, gen }, Resp::Step(step)) => {
                if let Some(run) = self.lookup_mut(slot, gen) {
                    let next = run.lookup.on_reply(&from_peer, step);
                    self.advance_lookup(slot, next);
                }
            }
            (Cont::Stabilize { epoch, .. }, Resp::State { pred, list }) => {
                let node = &mut self.nodes[me as usize];
                if node.stab_epoch != epoch {
                    return;
                }
                if let Some(mut st) = node.stabilize.take() {
                    let step = st.on_state(&mut node.state, &from_peer, pred, &list);
                    self.drive_stabilize(me, st, step);
                }
            }
            (Cont::RectifyCheck { n }, Resp::Pong) => {
                let n_peer = self.peer(n);
                self.nodes[me as usize]
                    .state
                    .rectify_after_check(&n_peer, &from_peer, true);
            }
            (Cont::JoinState, Resp::State { list, .. }) => {
                let node = &mut self.nodes[me as usize];
                if node.joined {
                    return;
                }
                node.state.join(&from_peer, &list);
                self.record("joined", me, from);
                self.make_member(me);
                self.begin_stabilize(me);
            }
            (Cont::ColdProbe { round }, Resp::ColdProbe { standing, lowest }) => {
                self.on_cold_reply(me, round, Some((from_peer, standing, lowest)))
            }
            (Cont::Probe(_), _) => {}
            (cont, resp) => debug_assert!(false, "reply {resp:?} does not fit {cont:?}"),
        }
    }

    pub(crate) fn on_timeout(&mut self, me: Ix, peer: Ix, cont: Cont) {
        let peer_p = self.peer(peer);
        match cont {
            Cont::Lookup { slot, gen } => {
                let origin_state = &mut self.nodes[me as usize].state;
                origin_state.on_peer_dead(&peer_p);
                if let Some(run) = self.lookup_mut(slot, gen) {
                    let next = run.lookup.on_timeout(&peer_p);
                    self.advance_lookup(slot, next);
                }
            }
            Cont::Stabilize { epoch } => {
                let node = &mut self.nodes[me as usize];
                if node.stab_epoch != epoch {
                    return;
                }
                if let Some(mut st) = node.stabilize.take() {
                    let step = st.on_timeout(&mut node.state, &peer_p);
                    self.drive_stabilize(me, st, step);
                }
            }
            Cont::Probe(mut probe) => {
                let state = &mut self.nodes[me as usize].state;
                if let ProbeStep::Retry(p) = probe.on_timeout(state) {
                    self.call(me, &p, Req::Ping, Cont::Probe(probe));
                }
            }
            Cont::RectifyCheck { n } => {
                let n_peer = self.peer(n);
                self.nodes[me as usize]
                    .state
                    .rectify_after_check(&n_peer, &peer_p, false);
            }
            // A probe that is not answered is simply not heard.
            Cont::ColdProbe { round } => self.on_cold_reply(me, round, None),
            Cont::JoinState => {
                // The successor died before answering: start over after a round.
                let attempt = self.nodes[me as usize].join_attempt;
                self.q.after(
                    self.cfg.stabilize_every,
                    Event::JoinStart {
                        node: me,
                        attempt: attempt + 1,
                    },
                );
            }
        }
    }

    pub(crate) fn on_rectify(&mut self, from: Ix, to: Ix) {
        let n = self.peer(from);
        if let Rectify::CheckPredecessor(p) = self.nodes[to as usize].state.rectify(&n) {
            self.call(to, &p, Req::Ping, Cont::RectifyCheck { n: from });
        }
    }

    pub(crate) fn on_timer(&mut self, node: Ix, kind: TimerKind) {
        let n = &mut self.nodes[node as usize];
        if !n.alive || !n.joined {
            n.timers_armed = false;
            return;
        }
        if !self.maintenance {
            n.timers_armed = false;
            return;
        }
        match kind {
            TimerKind::Stabilize => {
                let every = self.cfg.stabilize_every;
                self.q.after(every, Event::Timer { node, kind });
                self.begin_stabilize(node);
                let n = &mut self.nodes[node as usize];
                let probes = [n.state.next_probe(), n.state.check_predecessor()];
                for probe in probes.into_iter().flatten() {
                    let p = probe.peer().clone();
                    self.call(node, &p, Req::Ping, Cont::Probe(probe));
                }
            }
            TimerKind::FixFinger => {
                let every = self.cfg.fix_fingers_every;
                self.q.after(every, Event::Timer { node, kind });
                if !n.finger_busy {
                    n.finger_busy = true;
                    let (i, target) = n.state.next_finger();
                    self.start_lookup(node, target, Purpose::Finger(i));
                }
            }
        }
    }

    /// Begins a stabilize round unless one is still waiting for an answer.
    pub(crate) fn begin_stabilize(&mut self, node: Ix) {
        let n = &mut self.nodes[node as usize];
        if n.stabilize.is_some() {
            return;
        }
        n.stab_epoch += 1;
        let (st, step) = Stabilize::begin(&mut n.state);
        self.drive_stabilize(node, st, step);
    }

    /// Performs the step the node's stabilize round asks for: a `GetState` call (a first try
    /// or the core's one retry alike), the rectify that ends the round, or nothing.
    fn drive_stabilize(&mut self, node: Ix, st: Stabilize, step: StabilizeStep) {
        let n = &mut self.nodes[node as usize];
        n.stabilize = None;
        match step {
            StabilizeStep::Query(p) | StabilizeStep::Retry(p) => {
                let epoch = n.stab_epoch;
                n.stabilize = Some(st);
                self.call(node, &p, Req::GetState, Cont::Stabilize { epoch });
            }
            StabilizeStep::Notify(s) => {
                if let Some(to) = self.ix_of(s.id) {
                    self.send(|| Event::Rectify { from: node, to });
                }
            }
            StabilizeStep::Done => {}
        }
    }

    fn lookup_mut(&mut self, slot: u32, gen: u32) -> Option<&mut LookupRun> {
        self.lookups
            .get_mut(slot as usize)
            .and_then(|r| r.as_mut())
            .filter(|r| r.gen == gen)
    }

    /// Starts a lookup of `key` driven by `origin`.
    pub(crate) fn start_lookup(&mut self, origin: Ix, key: dht_core::Id, purpose: Purpose) {
        let (lookup, step) = Lookup::start(&self.nodes[origin as usize].state, key);
        self.lookup_gen = self.lookup_gen.wrapping_add(1);
        let run = LookupRun {
            origin,
            lookup,
            purpose,
            started: self.q.now(),
            gen: self.lookup_gen,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.lookups[s as usize] = Some(run);
                s
            }
            None => {
                self.lookups.push(Some(run));
                (self.lookups.len() - 1) as u32
            }
        };
        self.advance_lookup(slot, step);
    }

    fn advance_lookup(&mut self, slot: u32, step: LookupStep) {
        let Some(run) = self.lookups[slot as usize].as_ref() else {
            return;
        };
        let (origin, gen) = (run.origin, run.gen);
        match step {
            LookupStep::Ask(p) => self.call(
                origin,
                &p,
                Req::FindStep(run.lookup.key()),
                Cont::Lookup { slot, gen },
            ),
            LookupStep::Done { owner, hops } => self.finish_lookup(slot, Some(owner), hops),
            LookupStep::Failed { hops } => self.finish_lookup(slot, None, hops),
        }
    }

    fn finish_lookup(&mut self, slot: u32, owner: Option<Peer>, hops: u32) {
        let Some(run) = self.lookups[slot as usize].take() else {
            return;
        };
        self.free_slots.push(slot);
        let origin = run.origin;
        match run.purpose {
            Purpose::Measure => {
                let outcome = match &owner {
                    None => Outcome::Failed,
                    Some(o) => match self.ix_of(o.id) {
                        Some(ix) if !self.nodes[ix as usize].alive => Outcome::DeadOwner,
                        Some(ix) if self.true_owner(run.lookup.key()) == Some(ix) => Outcome::Ok,
                        _ => Outcome::WrongOwner,
                    },
                };
                self.results.push(LookupResult {
                    key: run.lookup.key(),
                    hops,
                    timeouts: run.lookup.timeouts(),
                    outcome,
                    latency: self.q.now() - run.started,
                });
                self.outstanding -= 1;
            }
            Purpose::Finger(i) => {
                let n = &mut self.nodes[origin as usize];
                n.finger_busy = false;
                match owner {
                    Some(o) => n.state.set_finger(i, &o),
                    None => n.state.skip_finger(i),
                }
            }
            Purpose::Join(joiner) => {
                if let Some(owner) = owner {
                    self.send(|| Event::JoinFound {
                        node: joiner,
                        owner,
                    });
                }
            }
        }
    }

    /// A new node starts joining through a random member (or founds the ring if there is none).
    pub fn start_join(&mut self, node: Ix) {
        self.start_join_after(node, 0);
    }

    /// The same, `delay` µs from now.
    pub fn start_join_after(&mut self, node: Ix, delay: crate::engine::Time) {
        self.q.after(delay, Event::JoinStart { node, attempt: 1 });
    }

    pub(crate) fn on_join_start(&mut self, node: Ix, attempt: u32) {
        let n = &mut self.nodes[node as usize];
        if !n.alive || n.joined || attempt <= n.join_attempt {
            return;
        }
        n.join_attempt = attempt;
        if self.cold.has(node) {
            // The cold-start rule, not a random member, decides what a failed join leads to.
            self.cold_join_failed(node);
            return;
        }
        let Some(via) = self.random_member() else {
            // The first node is a ring of one.
            self.make_member(node);
            return;
        };
        self.join_via(node, via, attempt);
    }

    /// Join attempt `attempt` of `node` through the member `via`, which looks up the node's
    /// successor; a check gives up on the attempt if it has not completed in 5 rounds.
    pub(crate) fn join_via(&mut self, node: Ix, via: Ix, attempt: u32) {
        let id = self.nodes[node as usize].state.id();
        self.record("join-via", node, via);
        self.start_lookup(via, id, Purpose::Join(node));
        self.q.after(
            5 * self.cfg.stabilize_every,
            Event::JoinCheck { node, attempt },
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::world::tests::cfg;
    use crate::world::{Outcome, World};

    #[test]
    fn lookups_on_an_ideal_ring_all_find_the_true_owner() {
        let mut w = World::new(cfg(5)).unwrap();
        w.build_ideal(300);
        let res = w.run_lookups(2_000, 1_000);
        assert_eq!(res.len(), 2_000);
        assert!(res.iter().all(|r| r.outcome == Outcome::Ok));
    }

    #[test]
    fn a_ring_built_by_joins_becomes_ideal() {
        let mut w = World::new(cfg(9)).unwrap();
        w.set_maintenance(true);
        for _ in 0..40 {
            let ix = w.add_node();
            w.start_join(ix);
            w.run_rounds(1);
        }
        let mut rounds = 0;
        while !w.is_ideal(true) {
            w.run_rounds(1);
            rounds += 1;
            assert!(w.check().is_ok(), "{:?}", w.check());
            assert!(rounds < 100, "not ideal after {rounds} rounds");
        }
        assert_eq!(w.len(), 40);
    }
}
