//! Protocol-level tests: a synchronous, in-memory driver runs the real state machines on whole
//! rings, and the assertions are the claims of the Chord paper and of Zave's proofs.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use crate::*;

/// Runs every exchange at once, in order, over a map of nodes; `alive` decides who answers.
struct SyncNet {
    cfg: ChordConfig,
    nodes: BTreeMap<Id, NodeState>,
    alive: BTreeSet<Id>,
    /// A partition: the members of one side; no call crosses between it and the rest.
    cut: Option<BTreeSet<Id>>,
}

impl SyncNet {
    fn new(cfg: ChordConfig) -> SyncNet {
        SyncNet {
            cfg,
            nodes: BTreeMap::new(),
            alive: BTreeSet::new(),
            cut: None,
        }
    }

    fn peer(&self, i: u64) -> Peer {
        Peer::from_addr(
            self.cfg.space,
            &format!("10.0.{}.{}:5000", i / 256, i % 256),
        )
    }

    /// A static ring with every table computed from the membership.
    fn ideal(cfg: ChordConfig, n: u64, fingers: bool) -> SyncNet {
        SyncNet::ideal_salted(cfg, n, fingers, 0)
    }

    /// A static ring whose member addresses also depend on `salt`, so different salts give
    /// different ring geometries of the same size.
    fn ideal_salted(cfg: ChordConfig, n: u64, fingers: bool, salt: u64) -> SyncNet {
        let mut net = SyncNet::new(cfg);
        let mut ring: Vec<Peer> = (0..n)
            .map(|i| {
                if salt == 0 {
                    net.peer(i)
                } else {
                    Peer::from_addr(
                        cfg.space,
                        &format!(
                            "10.{}.{}.{}:{}",
                            salt % 251,
                            i / 256,
                            i % 256,
                            1024 + salt % 60_000
                        ),
                    )
                }
            })
            .collect();
        ring.sort_by_key(|p| p.id);
        ring.dedup_by_key(|p| p.id);
        for p in &ring {
            let mut st = NodeState::new(cfg, p.clone());
            st.set_ideal(&ring);
            if !fingers {
                st.clear_fingers();
            }
            net.alive.insert(p.id);
            net.nodes.insert(p.id, st);
        }
        net
    }

    fn sorted(&self) -> Vec<Peer> {
        self.alive
            .iter()
            .map(|id| self.nodes[id].me().clone())
            .collect()
    }

    /// Whether a call from `from` reaches `to`: it is alive and on the same side of any cut.
    fn reach(&self, from: Id, to: Id) -> bool {
        self.alive.contains(&to)
            && self
                .cut
                .as_ref()
                .is_none_or(|side| side.contains(&from) == side.contains(&to))
    }

    fn lookup(&mut self, from: Id, key: Id) -> LookupStep {
        let (l, step) = Lookup::start(&self.nodes[&from], key);
        self.drive_lookup(from, l, step).1
    }

    fn drive_lookup(
        &mut self,
        from: Id,
        mut l: Lookup,
        mut step: LookupStep,
    ) -> (Lookup, LookupStep) {
        let key = l.key();
        loop {
            match step {
                LookupStep::Ask(p) => {
                    step = if self.reach(from, p.id) {
                        let reply = self.nodes[&p.id].find_step(key);
                        l.on_reply(&p, reply)
                    } else {
                        self.nodes.get_mut(&from).unwrap().on_peer_dead(&p);
                        l.on_timeout(&p)
                    }
                }
                done => return (l, done),
            }
        }
    }

    /// One round of ring unification at every node: probe the due passive-list entries, and
    /// deliver every notice (and the lookups they start) at once.
    fn unify(&mut self) {
        let ids: Vec<Id> = self.alive.iter().copied().collect();
        let mut notices = std::collections::VecDeque::new();
        for id in ids {
            let due = self.nodes.get_mut(&id).unwrap().rejoin_due();
            for q in due {
                let (l, step) = Lookup::start_via(&self.nodes[&id], id, q.clone());
                let (l, done) = self.drive_lookup(id, l, step);
                let owner = match done {
                    LookupStep::Done { owner, .. } => Some(owner),
                    _ => None,
                };
                let node = self.nodes.get_mut(&id).unwrap();
                let (_, sent) = node.on_rejoin_probe(&q, &l, owner.as_ref());
                notices.extend(sent.into_iter().map(|n| (id, n)));
            }
        }
        while let Some((from, n)) = notices.pop_front() {
            if !self.reach(from, n.to.id) {
                continue;
            }
            let on = self
                .nodes
                .get_mut(&n.to.id)
                .unwrap()
                .on_unify_notice(&n.contact);
            notices.extend(on.forward.into_iter().map(|f| (n.to.id, f)));
            if let Some(via) = on.lookup_via {
                let me = n.to.id;
                let (l, step) = Lookup::start_via(&self.nodes[&me], me, via);
                let (l, done) = self.drive_lookup(me, l, step);
                let owner = match done {
                    LookupStep::Done { owner, .. } => Some(owner),
                    _ => None,
                };
                self.nodes
                    .get_mut(&me)
                    .unwrap()
                    .on_unify_lookup(&l, owner.as_ref());
            }
        }
    }

    fn stabilize(&mut self, id: Id) {
        let mut me = self.nodes.remove(&id).unwrap();
        let (mut st, mut step) = Stabilize::begin(&mut me);
        while let StabilizeStep::Query(p) | StabilizeStep::Retry(p) = &step {
            step = match self.nodes.get(&p.id).filter(|_| self.reach(id, p.id)) {
                Some(other) => {
                    let (pred, list) = (other.predecessor().cloned(), other.successors().to_vec());
                    st.on_state(&mut me, &p.clone(), pred, &list)
                }
                None => st.on_timeout(&mut me, &p.clone()),
            };
        }
        if let StabilizeStep::Notify(s) = step {
            let reach = self.reach(id, s.id);
            let cut = self.cut.clone();
            let alive_set = self.alive.clone();
            match self.nodes.get_mut(&s.id).filter(|_| reach) {
                Some(other) => {
                    if let Rectify::CheckPredecessor(p) = other.rectify(me.me()) {
                        let alive = alive_set.contains(&p.id)
                            && cut
                                .as_ref()
                                .is_none_or(|side| side.contains(&s.id) == side.contains(&p.id));
                        other.rectify_after_check(me.me(), &p, alive);
                    }
                }
                None => me.on_peer_dead(&s),
            }
        }
        let probe = me.next_probe();
        self.ping(&mut me, probe);
        let check = me.check_predecessor();
        self.ping(&mut me, check);
        self.nodes.insert(id, me);
    }

    /// Pings the probe's peer until it answers or the core has confirmed its death.
    fn ping(&self, me: &mut NodeState, probe: Option<Probe>) {
        if let Some(mut probe) = probe {
            while !self.reach(me.id(), probe.peer().id) {
                if let ProbeStep::Dead(_) = probe.on_timeout(me) {
                    break;
                }
            }
        }
    }

    fn fix_all_fingers(&mut self, id: Id) {
        for _ in 0..self.cfg.space.bits() {
            let (i, target) = self.nodes.get_mut(&id).unwrap().next_finger();
            match self.lookup(id, target) {
                LookupStep::Done { owner, .. } => {
                    self.nodes.get_mut(&id).unwrap().set_finger(i, &owner)
                }
                _ => self.nodes.get_mut(&id).unwrap().skip_finger(i),
            }
        }
    }

    fn round(&mut self) {
        let ids: Vec<Id> = self.alive.iter().copied().collect();
        for id in ids {
            self.stabilize(id);
        }
    }

    fn join(&mut self, p: Peer, via: Id) {
        let mut st = NodeState::new(self.cfg, p.clone());
        self.alive.insert(p.id);
        match self.lookup(via, p.id) {
            LookupStep::Done { owner, .. } => {
                let list = self.nodes[&owner.id].successors().to_vec();
                st.join(&owner, &list);
            }
            other => panic!("join lookup failed: {other:?}"),
        }
        self.nodes.insert(p.id, st);
        self.stabilize(p.id);
    }

    /// Every live node's successor, list and predecessor are what the membership gives.
    fn is_ideal_ring(&self) -> bool {
        self.is_ideal_among(&self.sorted())
    }

    /// Every live node's successor and predecessor are what the membership gives (lists may
    /// still be short of ideal): Zave's one ring, ordered, with no appendages.
    fn is_one_ring(&self) -> bool {
        let ring = self.sorted();
        let n = ring.len();
        ring.iter().enumerate().all(|(i, p)| {
            let st = &self.nodes[&p.id];
            st.successor().id == ring[(i + 1) % n].id
                && st.predecessor().map(|q| q.id) == Some(ring[(i + n - 1) % n].id)
        })
    }

    /// The members `ring` (sorted by id) form an ideal ring of their own.
    fn is_ideal_among(&self, ring: &[Peer]) -> bool {
        let n = ring.len();
        ring.iter().enumerate().all(|(i, p)| {
            let st = &self.nodes[&p.id];
            let want: Vec<Id> = (1..n.min(self.cfg.successors + 1))
                .map(|k| ring[(i + k) % n].id)
                .collect();
            let got: Vec<Id> = st.successors().iter().map(|q| q.id).collect();
            let pred_ok = if n == 1 {
                st.predecessor().is_none()
            } else {
                st.predecessor().map(|q| q.id) == Some(ring[(i + n - 1) % n].id)
            };
            got == want && pred_ok
        })
    }
}

fn log2(n: usize) -> f64 {
    (n as f64).log2()
}

#[test]
fn lone_node_owns_everything_and_is_its_own_successor() {
    let cfg = ChordConfig::default();
    let me = Peer::from_addr(cfg.space, "127.0.0.1:5000");
    let st = NodeState::new(cfg, me.clone());
    assert_eq!(st.successor(), &me);
    assert!(st.owns(Id::ZERO));
    assert_eq!(
        st.find_step(Id::from_u64(7)),
        Step::Owner {
            owner: me,
            successors: vec![]
        }
    );
}

#[test]
fn three_node_ring_losing_one_keeps_exactly_the_two_survivors() {
    // docs/protocol.md small-ring rule, with the default r (20 for max_nodes = 1024).
    let cfg = ChordConfig::default();
    let mut net = SyncNet::new(cfg);
    let first = net.peer(0);
    net.alive.insert(first.id);
    net.nodes
        .insert(first.id, NodeState::new(cfg, first.clone()));
    for i in 1..3 {
        let p = net.peer(i);
        net.join(p, first.id);
        for _ in 0..3 {
            net.round();
        }
    }
    assert!(net.is_ideal_ring());
    let victim = net.sorted()[1].id;
    net.alive.remove(&victim);
    for _ in 0..4 {
        net.round();
    }
    let survivors: BTreeSet<Id> = net.alive.clone();
    for id in &survivors {
        let st = &net.nodes[id];
        let list: Vec<Id> = st.successors().iter().map(|p| p.id).collect();
        let other: Vec<Id> = survivors.iter().copied().filter(|x| x != id).collect();
        assert_eq!(list, other, "successor list of {id:?}");
        assert_eq!(st.predecessor().map(|p| p.id), other.first().copied());
    }
}

#[test]
fn graceful_leave_relinks_neighbours() {
    let cfg = ChordConfig::default();
    let mut net = SyncNet::ideal(cfg, 5, true);
    let ring = net.sorted();
    let leaving = net.nodes[&ring[2].id].clone();
    let plan = leaving.leave_plan();
    net.alive.remove(&leaving.id());
    let pred = plan.predecessor.unwrap();
    let succ = plan.successor.unwrap();
    net.nodes
        .get_mut(&pred.id)
        .unwrap()
        .on_leave_notice(leaving.me(), &plan.successors, None);
    net.nodes
        .get_mut(&succ.id)
        .unwrap()
        .on_leave_notice(leaving.me(), &[], Some(pred.clone()));
    assert_eq!(net.nodes[&pred.id].successor().id, succ.id);
    assert_eq!(
        net.nodes[&succ.id].predecessor().map(|p| p.id),
        Some(pred.id)
    );
    for _ in 0..3 {
        net.round();
    }
    assert!(net.is_ideal_ring());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Chord §4.3, Theorem 2: with correct fingers every lookup reaches the true successor in
    /// O(log N) hops; here at most 2·⌈log2 N⌉, and on average within 10% of ½·log2 N. The mean
    /// is taken over three random rings of the size, since one ring's geometry alone can sit
    /// further from the expectation than the lookups' own spread.
    #[test]
    fn lookups_with_fingers_are_correct_and_logarithmic(n in 1u64..500, seed in any::<u64>()) {
        let cfg = ChordConfig::default();
        let rings = if n >= 64 { 3 } else { 1 };
        let mut total = 0u64;
        let mut count = 0u64;
        let mut size = 0;
        for r in 0..rings {
            let mut net = SyncNet::ideal_salted(cfg, n, true, seed.wrapping_add(r) | 1);
            let ring = net.sorted();
            size = ring.len();
            let bound = 2 * (log2(size).ceil() as u32).max(1);
            let starts: Vec<Id> = ring.iter().map(|p| p.id).collect();
            let lookups_per_start = if size >= 64 { 3_000 / size + 1 } else { 4 };
            for (s, &start) in starts.iter().enumerate() {
                for j in 0..lookups_per_start {
                    let key = cfg.space.hash(format!("{seed}/{r}/{s}/{j}").as_bytes());
                    match net.lookup(start, key) {
                        LookupStep::Done { owner, hops } => {
                            prop_assert_eq!(owner.id, successor_in(&ring, key).id);
                            prop_assert!(hops <= bound, "{} hops > {} on N = {}", hops, bound, size);
                            total += hops as u64;
                            count += 1;
                        }
                        other => prop_assert!(false, "lookup failed: {:?}", other),
                    }
                }
            }
        }
        if size >= 64 {
            let mean = total as f64 / count as f64;
            let theory = 0.5 * log2(size);
            prop_assert!((mean - theory).abs() <= 0.1 * theory,
                "mean {} vs ½·log2 N = {} on N = {}", mean, theory, size);
        }
    }

    /// Zave: lookups are correct from successor pointers alone.
    #[test]
    fn lookups_without_fingers_are_still_correct(n in 1u64..500, seed in any::<u64>()) {
        let cfg = ChordConfig::default();
        let mut net = SyncNet::ideal(cfg, n, false);
        let ring = net.sorted();
        for (s, p) in ring.iter().enumerate().step_by(7) {
            for j in 0..3 {
                let key = cfg.space.hash(format!("{seed}/{s}/{j}").as_bytes());
                match net.lookup(p.id, key) {
                    LookupStep::Done { owner, .. } => prop_assert_eq!(owner.id, successor_in(&ring, key).id),
                    other => prop_assert!(false, "lookup failed: {:?}", other),
                }
            }
        }
    }

    /// Chord §4.4 / Zave: a ring built by sequential joins converges to correct successors,
    /// successor lists and predecessors after enough stabilize rounds; fingers then converge
    /// too and lookups find the true successor.
    #[test]
    fn sequential_joins_converge(n in 1u64..40, bits in prop_oneof![Just(160u32), 8u32..16], seed in any::<u64>()) {
        let cfg = ChordConfig::new(bits, 64).unwrap();
        let mut net = SyncNet::new(cfg);
        let mut peers: Vec<Peer> = (0..n).map(|i| net.peer(i ^ (seed % 1000) << 8)).collect();
        peers.sort_by_key(|p| p.id.to_be_bytes().iter().rev().copied().collect::<Vec<u8>>());
        peers.dedup_by_key(|p| p.id);
        let mut seen = BTreeSet::new();
        peers.retain(|p| seen.insert(p.id));
        let first = peers[0].clone();
        net.alive.insert(first.id);
        net.nodes.insert(first.id, NodeState::new(cfg, first.clone()));
        for (k, p) in peers.iter().enumerate().skip(1) {
            let via = peers[(seed as usize + k) % k].id;
            net.join(p.clone(), via);
            net.round();
        }
        let mut rounds = 0;
        while !net.is_ideal_ring() {
            net.round();
            rounds += 1;
            prop_assert!(rounds <= 2 * peers.len() + 10, "not ideal after {} rounds", rounds);
        }
        let ids: Vec<Id> = net.alive.iter().copied().collect();
        for id in &ids {
            net.fix_all_fingers(*id);
        }
        let ring = net.sorted();
        for (k, id) in ids.iter().enumerate() {
            let key = cfg.space.hash(format!("k{k}").as_bytes());
            match net.lookup(*id, key) {
                LookupStep::Done { owner, .. } => prop_assert_eq!(owner.id, successor_in(&ring, key).id),
                other => prop_assert!(false, "lookup failed: {:?}", other),
            }
            let ideal = FingerTable::ideal(cfg.space, *id, &ring);
            let got: Vec<Option<Id>> = (0..bits as usize).map(|i| net.nodes[id].fingers().get(i).map(|p| p.id)).collect();
            let want: Vec<Option<Id>> = (0..bits as usize).map(|i| ideal.get(i).map(|p| p.id)).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn a_lookup_skips_a_dead_predecessor_through_the_last_answering_node_s_successors() {
    // Chord §5 (failures): when the key's predecessor p died before anyone stabilized, the
    // node before p still names p; the lookup must move on to p's first live successor.
    let cfg = ChordConfig::default();
    let mut net = SyncNet::ideal(cfg, 64, true);
    let ring = net.sorted();
    let (q, p, s) = (&ring[10], &ring[11], &ring[12]);
    // A key in (p, s]: owned by s, and p is its predecessor.
    let key = cfg.space.add(p.id, Id::from_u64(1));
    assert_eq!(successor_in(&ring, key).id, s.id);
    net.alive.remove(&p.id);
    for start in ring.iter().filter(|n| n.id != p.id).step_by(5) {
        match net.lookup(start.id, key) {
            LookupStep::Done { owner, .. } => assert_eq!(owner.id, s.id, "from {start:?}"),
            other => panic!("lookup from {start:?} failed: {other:?}"),
        }
    }
    let _ = q;
}

/// docs/protocol.md, "Ring unification": a partition splits a ring into two that each repair
/// themselves; once it heals, stabilize alone never merges them, and the unification rule makes
/// one ideal ring again within a few rounds.
#[test]
fn a_healed_partition_becomes_one_ring_again_only_through_unification() {
    let cfg = ChordConfig::new(160, 64).unwrap();
    for (salt, unify) in [(3, true), (5, true), (7, true), (11, false)] {
        let mut net = SyncNet::ideal_salted(cfg, 48, true, salt);
        let ring = net.sorted();
        let side: BTreeSet<Id> = ring.iter().skip(1).step_by(3).map(|p| p.id).collect();
        let (a, b): (Vec<Peer>, Vec<Peer>) =
            ring.iter().cloned().partition(|p| side.contains(&p.id));
        net.cut = Some(side);
        let mut split = 0;
        while !(net.is_ideal_among(&a) && net.is_ideal_among(&b)) {
            split += 1;
            assert!(
                split < 30,
                "salt {salt}: the sides never became rings of their own"
            );
            net.round();
        }
        net.cut = None;
        let (mut rounds, mut one_ring) = (0, None);
        while !net.is_ideal_ring() && rounds < 20 {
            rounds += 1;
            if unify {
                net.unify();
            }
            net.round();
            if one_ring.is_none() && net.is_one_ring() {
                one_ring = Some(rounds);
            }
        }
        if unify {
            assert!(
                net.is_ideal_ring(),
                "salt {salt}: not ideal after 20 rounds"
            );
            let one_ring = one_ring.unwrap();
            assert!(one_ring <= 3, "salt {salt}: {one_ring} rounds to one ring");
            // Lists fill as stabilize copies them back, one entry per round (Chord's own pace).
            assert!(
                rounds <= cfg.successors + 4,
                "salt {salt}: {rounds} rounds to ideal lists"
            );
        } else {
            assert!(!net.is_one_ring(), "stabilize alone merged two rings");
            assert!(net.is_ideal_among(&a) && net.is_ideal_among(&b));
        }
    }
}
