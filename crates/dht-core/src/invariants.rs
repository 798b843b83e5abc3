//! Zave's invariants of a Chord ring, as pure functions over a snapshot of node states.
//!
//! The simulator (and any test that holds every node's state) hands in the states of the live
//! members; an entry of a successor list that names no state in the snapshot is a dead node.
//! The definitions follow Zave, "Reasoning about identifier spaces: how to make Chord correct"
//! (IEEE TSE 2017), as stated in docs/protocol.md:
//!
//! - a member's *best successor* is the first live entry of its successor list (itself when
//!   the list is empty: a lone node); the best-successor graph has one out-edge per member;
//! - **AtLeastOneRing**: that graph has a cycle; **AtMostOneRing**: it has only one;
//! - **OrderedRing**: along the cycle, no ring member lies strictly between two consecutive
//!   ones (the cycle goes round the circle exactly once, in identifier order);
//! - **ConnectedAppendages**: every member off the ring reaches it;
//! - **OrderedSuccessorLists**: every list is strictly increasing clockwise from its owner;
//! - **AloneOnlyInRingOfOne** (ours, not Zave's): a member with an empty list believes it is
//!   alone, which is its own ring of one. Zave's graph properties accept that even among many
//!   members, since everyone else then reaches it as an appendage; but a legitimate lone node
//!   is one nobody knows a member beyond: while the first node of a ring is still alone, every
//!   list was copied from its (empty) one and ends at it. So a lone member is a violation when
//!   another member's list names a live member after it.
//!
//! [`check_ideal`] tests the stronger state that stabilization must reach once joins and
//! failures stop. These are checks, not rules: nothing here changes a node.

use std::fmt;

use crate::{successor_in, FingerTable, Id, NodeState, Peer};

/// The first property a snapshot breaks, naming a node that shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A successor list holds its owner, a duplicate, or entries out of clockwise order.
    OrderedSuccessorLists { node: Id, list: Vec<Id> },
    /// No cycle: following best successors never comes back.
    AtLeastOneRing,
    /// More than one cycle; `node` is on a second one.
    AtMostOneRing { rings: usize, node: Id },
    /// `node`'s best successor on the ring skips the ring member `skipped`.
    OrderedRing {
        node: Id,
        successor: Id,
        skipped: Id,
    },
    /// `node` is off the ring and its walk dead-ends at `dead_end`, a member whose successor
    /// list holds no live member.
    ConnectedAppendages { node: Id, dead_end: Id },
    /// `node` believes it is alone (an empty list) although `witness` lists the live member
    /// `beyond` after it: the ring has more than one member.
    AloneOnlyInRingOfOne { node: Id, witness: Id, beyond: Id },
}

impl Violation {
    /// Zave's name of the property.
    pub fn property(&self) -> &'static str {
        match self {
            Violation::OrderedSuccessorLists { .. } => "OrderedSuccessorLists",
            Violation::AtLeastOneRing => "AtLeastOneRing",
            Violation::AtMostOneRing { .. } => "AtMostOneRing",
            Violation::OrderedRing { .. } => "OrderedRing",
            Violation::ConnectedAppendages { .. } => "ConnectedAppendages",
            Violation::AloneOnlyInRingOfOne { .. } => "AloneOnlyInRingOfOne",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::OrderedSuccessorLists { node, list } => {
                write!(f, "OrderedSuccessorLists: {node:?} holds {list:?}")
            }
            Violation::AtLeastOneRing => write!(f, "AtLeastOneRing: no member is on a cycle"),
            Violation::AtMostOneRing { rings, node } => {
                write!(
                    f,
                    "AtMostOneRing: {rings} rings; {node:?} is on a second one"
                )
            }
            Violation::OrderedRing {
                node,
                successor,
                skipped,
            } => write!(
                f,
                "OrderedRing: {node:?} -> {successor:?} skips ring member {skipped:?}"
            ),
            Violation::ConnectedAppendages { node, dead_end } => write!(
                f,
                "ConnectedAppendages: {node:?} never reaches the ring (dead end at {dead_end:?})"
            ),
            Violation::AloneOnlyInRingOfOne {
                node,
                witness,
                beyond,
            } => write!(
                f,
                "AloneOnlyInRingOfOne: {node:?} believes it is alone, but {witness:?} lists the live member {beyond:?} after it"
            ),
        }
    }
}

/// The shape of a snapshot that satisfies every invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingShape {
    pub members: usize,
    /// Members on the ring; the others are appendages (typically nodes still joining).
    pub ring: usize,
}

/// Sorts the snapshot by id so that membership is a binary search.
fn sorted<'a>(live: &[&'a NodeState]) -> Vec<&'a NodeState> {
    let mut v = live.to_vec();
    v.sort_by_key(|s| s.id());
    v
}

/// Checks Zave's five properties over the live members `live` (any order, one state each).
/// An empty snapshot is trivially fine.
pub fn check_ring(live: &[&NodeState]) -> Result<RingShape, Violation> {
    let nodes = sorted(live);
    let n = nodes.len();
    if n == 0 {
        return Ok(RingShape {
            members: 0,
            ring: 0,
        });
    }
    let ids: Vec<Id> = nodes.iter().map(|s| s.id()).collect();
    let index = |id: Id| ids.binary_search(&id).ok();

    for s in &nodes {
        let space = s.space();
        let mut last = Id::ZERO;
        for p in s.successors() {
            let d = space.distance(s.id(), p.id);
            if d <= last {
                return Err(Violation::OrderedSuccessorLists {
                    node: s.id(),
                    list: s.successors().iter().map(|p| p.id).collect(),
                });
            }
            last = d;
        }
    }

    // A lone member (empty list) that another member's list passes.
    for s in &nodes {
        let list = s.successors();
        if let Some(k) = list
            .iter()
            .position(|p| index(p.id).is_some_and(|j| nodes[j].successors().is_empty()))
        {
            if let Some(beyond) = list[k + 1..].iter().find(|p| index(p.id).is_some()) {
                return Err(Violation::AloneOnlyInRingOfOne {
                    node: list[k].id,
                    witness: s.id(),
                    beyond: beyond.id,
                });
            }
        }
    }

    // Best successor of each member; None = every entry is dead (a dead end).
    let best: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if s.successors().is_empty() {
                Some(i)
            } else {
                s.successors().iter().find_map(|p| index(p.id))
            }
        })
        .collect();

    // Cycles of the functional graph: colour 0 = unseen, 1 = on the current walk, 2 = done.
    let mut colour = vec![0u8; n];
    let mut on_ring = vec![false; n];
    let mut cycles: Vec<usize> = Vec::new();
    for start in 0..n {
        let mut walk = Vec::new();
        let mut cur = Some(start);
        while let Some(c) = cur {
            if colour[c] != 0 {
                if colour[c] == 1 {
                    // A new cycle: the walk from c's first appearance.
                    let from = walk.iter().position(|&w| w == c).unwrap_or(0);
                    for &w in &walk[from..] {
                        on_ring[w] = true;
                    }
                    cycles.push(c);
                }
                break;
            }
            colour[c] = 1;
            walk.push(c);
            cur = best[c];
        }
        for w in walk {
            colour[w] = 2;
        }
    }
    match cycles.len() {
        0 => return Err(Violation::AtLeastOneRing),
        1 => {}
        k => {
            return Err(Violation::AtMostOneRing {
                rings: k,
                node: ids[cycles[1]],
            })
        }
    }

    // OrderedRing: each ring member's best successor is the next ring member by id.
    let ring: Vec<usize> = (0..n).filter(|&i| on_ring[i]).collect();
    for (k, &i) in ring.iter().enumerate() {
        let next = ring[(k + 1) % ring.len()];
        let got = best[i].unwrap_or(i);
        if got != next {
            return Err(Violation::OrderedRing {
                node: ids[i],
                successor: ids[got],
                skipped: ids[next],
            });
        }
    }

    // ConnectedAppendages: with exactly one cycle, a walk either reaches it or dead-ends.
    for i in 0..n {
        let mut cur = i;
        let mut steps = 0;
        while !on_ring[cur] && steps <= n {
            match best[cur] {
                Some(b) => cur = b,
                None => {
                    return Err(Violation::ConnectedAppendages {
                        node: ids[i],
                        dead_end: ids[cur],
                    })
                }
            }
            steps += 1;
        }
    }
    Ok(RingShape {
        members: n,
        ring: ring.len(),
    })
}

/// What keeps a snapshot from being ideal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotIdeal {
    Successors { node: Id },
    Predecessor { node: Id },
    Finger { node: Id, index: usize },
}

impl fmt::Display for NotIdeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotIdeal::Successors { node } => write!(f, "{node:?}: successor list is not ideal"),
            NotIdeal::Predecessor { node } => write!(f, "{node:?}: predecessor is not ideal"),
            NotIdeal::Finger { node, index } => write!(f, "{node:?}: finger {index} is not ideal"),
        }
    }
}

/// docs/protocol.md "Ideal": every successor list holds exactly the next min(r, N−1) members, every
/// predecessor is the true one (none for a lone node), and, with `fingers`, every finger is
/// the member that succeeds its start.
pub fn check_ideal(live: &[&NodeState], fingers: bool) -> Result<(), NotIdeal> {
    let nodes = sorted(live);
    let n = nodes.len();
    let ring: Vec<Peer> = nodes.iter().map(|s| s.me().clone()).collect();
    for (i, s) in nodes.iter().enumerate() {
        let r = s.config().successors;
        let want = (1..n).take(r).map(|k| ring[(i + k) % n].id);
        if !want.eq(s.successors().iter().map(|p| p.id)) {
            return Err(NotIdeal::Successors { node: s.id() });
        }
        let pred = (n > 1).then(|| ring[(i + n - 1) % n].id);
        if s.predecessor().map(|p| p.id) != pred {
            return Err(NotIdeal::Predecessor { node: s.id() });
        }
        if fingers {
            let space = s.space();
            for f in 0..space.bits() as usize {
                let owner = successor_in(&ring, space.finger_start(s.id(), f as u32)).id;
                let want = (owner != s.id()).then_some(owner);
                if s.fingers().get(f).map(|p| p.id) != want {
                    return Err(NotIdeal::Finger {
                        node: s.id(),
                        index: f,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The reference finger table of a member, for callers that compare tables wholesale.
pub fn ideal_fingers(s: &NodeState, ring: &[Peer]) -> FingerTable {
    FingerTable::ideal(s.space(), s.id(), ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChordConfig, Peer};

    fn ring(ids: &[u64], r: usize) -> Vec<NodeState> {
        let cfg = ChordConfig::new(8, 64).unwrap().with_successors(r).unwrap();
        let peers: Vec<Peer> = ids
            .iter()
            .map(|&v| Peer::new(Id::from_u64(v), format!("n{v}")))
            .collect();
        peers
            .iter()
            .map(|p| {
                let mut s = NodeState::new(cfg, p.clone());
                s.set_ideal(&peers);
                s
            })
            .collect()
    }

    fn refs(v: &[NodeState]) -> Vec<&NodeState> {
        v.iter().collect()
    }

    #[test]
    fn an_ideal_ring_satisfies_every_invariant() {
        let nodes = ring(&[10, 50, 90, 130, 200], 3);
        assert_eq!(
            check_ring(&refs(&nodes)),
            Ok(RingShape {
                members: 5,
                ring: 5
            })
        );
        assert_eq!(check_ideal(&refs(&nodes), true), Ok(()));
    }

    #[test]
    fn losing_r_consecutive_members_breaks_the_ring() {
        // Zave's assumption: no member loses all r successors. Kill 50 and 90 with r = 2.
        let nodes = ring(&[10, 50, 90, 130, 200], 2);
        let live: Vec<&NodeState> = nodes
            .iter()
            .filter(|s| ![50, 90].contains(&s.id().low_u64()))
            .collect();
        let v = check_ring(&live).unwrap_err();
        assert_eq!(v.property(), "AtLeastOneRing", "{v}");
    }

    #[test]
    fn a_dead_end_appendage_is_reported() {
        // 10 -> 50 -> 90 -> 10 is a ring; 130 (r = 1) points only at the dead 200.
        let mut nodes = ring(&[10, 50, 90, 130, 200], 1);
        nodes.pop();
        nodes[2].join(&Peer::new(Id::from_u64(10), "n10"), &[]);
        let v = check_ring(&refs(&nodes)).unwrap_err();
        assert_eq!(
            v,
            Violation::ConnectedAppendages {
                node: Id::from_u64(130),
                dead_end: Id::from_u64(130)
            }
        );
    }

    #[test]
    fn a_ring_that_skips_a_member_is_unordered() {
        // The cycle 10 -> 90 -> 50 -> 10 laps the circle twice: 10 -> 90 skips 50.
        let mut nodes = ring(&[10, 50, 90], 1);
        let p = |v: u64| Peer::new(Id::from_u64(v), format!("n{v}"));
        nodes[0].join(&p(90), &[]);
        nodes[2].join(&p(50), &[]);
        nodes[1].join(&p(10), &[]);
        let v = check_ring(&refs(&nodes)).unwrap_err();
        assert_eq!(v.property(), "OrderedRing", "{v}");
    }

    #[test]
    fn two_rings_are_reported() {
        let mut nodes = ring(&[10, 50, 90, 130], 1);
        let p = |v: u64| Peer::new(Id::from_u64(v), format!("n{v}"));
        nodes[0].join(&p(50), &[]);
        nodes[1].join(&p(10), &[]);
        nodes[2].join(&p(130), &[]);
        nodes[3].join(&p(90), &[]);
        let v = check_ring(&refs(&nodes)).unwrap_err();
        assert_eq!(v.property(), "AtMostOneRing", "{v}");
    }

    #[test]
    fn a_stale_predecessor_is_not_ideal() {
        let mut nodes = ring(&[10, 50, 90], 2);
        let pred = nodes[1].predecessor().cloned().unwrap();
        nodes[1].on_predecessor_dead(&pred);
        assert_eq!(
            check_ideal(&refs(&nodes), false),
            Err(NotIdeal::Predecessor {
                node: Id::from_u64(50)
            })
        );
        assert!(check_ring(&refs(&nodes)).is_ok());
    }
    #[test]
    fn a_member_reset_to_alone_in_a_ring_of_several_is_a_violation() {
        // An empty list is legitimate only in a ring of one: 10 still lists 90 and then 130,
        // so 90 cannot be alone. Zave's five properties alone accept this state (90 is a ring
        // of one and every other member an appendage that reaches it).
        let mut nodes = ring(&[10, 50, 90, 130, 200], 3);
        nodes[2].reset();
        assert_eq!(
            check_ring(&refs(&nodes)),
            Err(Violation::AloneOnlyInRingOfOne {
                node: Id::from_u64(90),
                witness: Id::from_u64(10),
                beyond: Id::from_u64(130),
            })
        );
    }

    #[test]
    fn a_ring_of_one_and_its_first_joiners_may_be_alone() {
        // A lone node is a ring of one.
        let nodes = ring(&[10], 3);
        assert_eq!(
            check_ring(&refs(&nodes)),
            Ok(RingShape {
                members: 1,
                ring: 1
            })
        );
        // The first node of a ring stays alone until it stabilizes; meanwhile joiners point at
        // it, directly or through each other, and their lists end at it (copied from its own).
        let p = |v: u64| Peer::new(Id::from_u64(v), format!("n{v}"));
        let mut nodes = ring(&[10, 50, 90], 3);
        nodes[0].reset();
        nodes[1].join(&p(90), &[p(10)]);
        nodes[2].join(&p(10), &[]);
        assert_eq!(
            check_ring(&refs(&nodes)),
            Ok(RingShape {
                members: 3,
                ring: 1
            })
        );
    }
}
