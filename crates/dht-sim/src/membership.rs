//! Membership: creating nodes, joining them to the ring, failing them, and the fast build
//! that installs ideal tables.
//!
//! A node's id is the SHA-1 of its address, as a real node's is. Failures are silent: a dead
//! node stops answering and forgets its own calls, and the others learn of it only through
//! timeouts, as in `dhtd`.

use rand::RngExt;

use dht_core::{NodeState, Peer};

use crate::engine::Time;
use crate::world::{Event, Ix, Purpose, SimNode, World};

impl World {
    /// Creates a node with a fresh address (not yet a member). Its id is the SHA-1 of that
    /// address, like a real node's; with a small `hash_size` an address whose id is taken is
    /// skipped (docs/protocol.md: a colliding node is refused).
    pub fn add_node(&mut self) -> Ix {
        let space = self.cfg.chord.space;
        loop {
            let name = self.next_name;
            self.next_name += 1;
            let addr = format!("s{}-n{}:4000", self.cfg.seed, name);
            let me = Peer::from_addr(space, &addr);
            if self.by_id.contains_key(&me.id) {
                continue;
            }
            let ix = self.nodes.len() as Ix;
            self.by_id.insert(me.id, ix);
            self.nodes.push(SimNode {
                state: NodeState::new(self.cfg.chord, me),
                alive: true,
                joined: false,
                stabilize: None,
                stab_epoch: 0,
                finger_busy: false,
                timers_armed: false,
                join_attempt: 0,
                pos: None,
            });
            return ix;
        }
    }

    /// How many more distinct ids the space can hold (small spaces fill up).
    pub fn room(&self) -> u128 {
        let bits = self.cfg.chord.space.bits();
        let cap = if bits >= 100 {
            u128::MAX
        } else {
            1u128 << bits
        };
        cap.saturating_sub(self.by_id.len() as u128)
    }

    fn fault(&mut self, what: &str, ix: Ix) {
        if self.faults.len() == 1000 {
            self.faults.pop_front();
        }
        let line = format!(
            "  t={:.3}ms {what} {:?}",
            self.q.now() as f64 / 1000.0,
            self.nodes[ix as usize].state.me()
        );
        self.faults.push_back(line);
    }

    /// The injected faults, for a caller that wants to forget the build's joins.
    pub fn faults_mut(&mut self) -> &mut std::collections::VecDeque<String> {
        &mut self.faults
    }

    /// The injected faults, one per line.
    pub fn faults_text(&self) -> String {
        self.faults.iter().map(|l| format!("{l}\n")).collect()
    }

    pub(crate) fn make_member(&mut self, ix: Ix) {
        self.fault("joined", ix);
        let n = &mut self.nodes[ix as usize];
        n.joined = true;
        if n.pos.is_none() {
            n.pos = Some(self.members.len());
            self.members.push(ix);
            self.live.insert(n.state.id(), ix);
        }
        if self.maintenance {
            self.arm(ix);
        }
    }

    /// A node fails silently: it stops answering, and its own calls are forgotten.
    pub fn kill(&mut self, ix: Ix) {
        let node = &mut self.nodes[ix as usize];
        if !node.alive {
            return;
        }
        node.alive = false;
        node.stabilize = None;
        let id = node.state.id();
        if let Some(pos) = node.pos.take() {
            self.members.swap_remove(pos);
            if let Some(&moved) = self.members.get(pos) {
                self.nodes[moved as usize].pos = Some(pos);
            }
            self.live.remove(&id);
        }
        // Lookups it was driving end with it; a measured one is no longer outstanding.
        for slot in 0..self.lookups.len() {
            if self.lookups[slot].as_ref().is_some_and(|r| r.origin == ix) {
                if let Some(run) = self.lookups[slot].take() {
                    if matches!(run.purpose, Purpose::Measure) {
                        self.outstanding -= 1;
                    }
                    self.free_slots.push(slot as u32);
                }
            }
        }
        self.record("kill", ix, ix);
        self.fault("killed", ix);
    }

    /// A uniformly random live member.
    pub fn random_member(&mut self) -> Option<Ix> {
        if self.members.is_empty() {
            return None;
        }
        let k = self.rng.random_range(0..self.members.len());
        Some(self.members[k])
    }

    /// Nodes alive and still joining.
    pub fn pending_joins(&self) -> usize {
        self.nodes.iter().filter(|n| n.alive && !n.joined).count()
    }

    /// Schedules one churn event (a random member fails, or a new node joins) at `delay`.
    pub fn schedule_churn(&mut self, delay: Time, join: bool, safe: bool) {
        self.q.after(
            delay,
            if join {
                Event::Spawn
            } else {
                Event::Kill { safe }
            },
        );
    }

    /// Whether killing `victim` leaves every other live member (joined or joining) at least
    /// one live entry in its successor list: the failure assumption of Zave's proof.
    pub fn kill_is_safe(&self, victim: Ix) -> bool {
        let vid = self.nodes[victim as usize].state.id();
        self.nodes.iter().enumerate().all(|(i, n)| {
            if !n.alive || i as Ix == victim || n.state.successors().is_empty() {
                return true;
            }
            n.state.successors().iter().any(|p| {
                p.id != vid
                    && self
                        .by_id
                        .get(&p.id)
                        .is_some_and(|&j| self.nodes[j as usize].alive)
            })
        })
    }

    /// Installs the ideal tables on every member at once: the fast build mode, through the
    /// core's own `NodeState::set_ideal` (O(r + log² N) per node).
    pub fn install_ideal(&mut self) {
        let ring = self.ring();
        for p in &ring {
            let ix = self.by_id[&p.id];
            self.nodes[ix as usize].state.set_ideal(&ring);
        }
    }

    /// Builds `n` members with ideal tables (`--build ideal`).
    pub fn build_ideal(&mut self, n: usize) {
        for _ in 0..n {
            if self.room() == 0 {
                break;
            }
            let ix = self.add_node();
            self.make_member(ix);
        }
        self.install_ideal();
    }
}

#[cfg(test)]
mod tests {
    use crate::world::tests::cfg;
    use crate::world::World;
    use dht_core::{Id, NodeState};

    #[test]
    fn the_fast_build_installs_the_cores_ideal_tables() {
        let mut w = World::new(cfg(3)).unwrap();
        w.build_ideal(200);
        let ring = w.ring();
        for p in &ring {
            let mut want = NodeState::new(w.cfg.chord, p.clone());
            want.set_ideal(&ring);
            let got = w.state(w.ix_of(p.id).unwrap());
            assert_eq!(got.successors(), want.successors());
            assert_eq!(got.predecessor(), want.predecessor());
            let f = |s: &NodeState| -> Vec<Option<Id>> {
                (0..32).map(|i| s.fingers().get(i).map(|p| p.id)).collect()
            };
            assert_eq!(f(got), f(&want));
        }
        assert!(w.is_ideal(true));
    }
}
