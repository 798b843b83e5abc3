//! Replica placement: which members hold a key (docs/protocol.md, "Replication").
//!
//! A key's replica set is its owner followed by the next `factor − 1` distinct members of the
//! owner's successor list; on a ring smaller than the factor, every member. A coordinator
//! computes the set from its own tables when they reach that far ([`replicas_from_view`]) and
//! otherwise hands the request to the owner, whose successor list always does.

use crate::{Id, NodeState, Peer};

/// The owner plus the next `factor − 1` distinct members of its successor list (docs/architecture.md,
/// Identifiers and ownership). Fewer when the ring is smaller than the factor.
pub fn replica_set(owner: &Peer, owner_successors: &[Peer], factor: usize) -> Vec<Peer> {
    let mut out = vec![owner.clone()];
    for p in owner_successors {
        if out.len() >= factor {
            break;
        }
        if !out.iter().any(|q| q.id == p.id) {
            out.push(p.clone());
        }
    }
    out.truncate(factor.max(1));
    out
}

/// The replica set of the keys this node owns: itself, then the next `factor − 1` members of
/// its own successor list.
pub fn own_replicas(state: &NodeState, factor: usize) -> Vec<Peer> {
    replica_set(state.me(), state.successors(), factor)
}

/// The replica set of `key` as this node's own tables tell it, or `None` when they do not
/// reach far enough (the owner lies beyond the successor list, or too near its end).
///
/// The owner comes from [`NodeState::owner_hint`]; the members after it are the rest of our
/// successor list, and when the list is shorter than its capacity it holds the whole ring,
/// so it continues with this node and the list's head. A guess like the hint itself: the
/// coordinator asks the owner to confirm its ownership on every write.
pub fn replicas_from_view(state: &NodeState, key: Id, factor: usize) -> Option<Vec<Peer>> {
    let factor = factor.max(1);
    let owner = state.owner_hint(key)?;
    let list = state.successors();
    if owner.id == state.id() {
        let whole_ring = list.len() < state.config().successors;
        if list.len() + 1 < factor && !whole_ring {
            return None;
        }
        return Some(own_replicas(state, factor));
    }
    let i = list.iter().position(|p| p.id == owner.id)?;
    let mut after: Vec<Peer> = list[i + 1..].to_vec();
    let whole_ring = list.len() < state.config().successors;
    if whole_ring {
        after.push(state.me().clone());
        after.extend(list[..i].iter().cloned());
    } else if after.len() + 1 < factor {
        return None;
    }
    Some(replica_set(&owner, &after, factor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChordConfig, IdSpace};

    fn ring_state(me: u64, ring: &[u64], r: usize) -> NodeState {
        let cfg = ChordConfig::new(16, 1024)
            .unwrap()
            .with_successors(r)
            .unwrap();
        let peers: Vec<Peer> = ring
            .iter()
            .map(|&v| Peer::new(Id::from_u64(v), format!("n{v}")))
            .collect();
        let mut st = NodeState::new(cfg, Peer::new(Id::from_u64(me), format!("n{me}")));
        st.set_ideal(&peers);
        st
    }

    #[test]
    fn view_gives_the_owners_set_or_nothing() {
        let _ = IdSpace::new(16).unwrap();
        let ring = [100, 200, 300, 400, 500, 600];
        let st = ring_state(100, &ring, 4);
        let ids = |v: Vec<Peer>| v.iter().map(|p| p.id.low_u64()).collect::<Vec<_>>();
        // Owned here: me and my first two successors.
        assert_eq!(
            ids(replicas_from_view(&st, Id::from_u64(50), 3).unwrap()),
            vec![100, 200, 300]
        );
        // Owned by my second successor: it and the next two.
        assert_eq!(
            ids(replicas_from_view(&st, Id::from_u64(250), 3).unwrap()),
            vec![300, 400, 500]
        );
        // Owned by my last successor: the list does not reach its successors.
        assert_eq!(replicas_from_view(&st, Id::from_u64(450), 3), None);
        // Beyond the list: unknown.
        assert_eq!(replicas_from_view(&st, Id::from_u64(550), 3), None);
    }

    #[test]
    fn small_ring_wraps_to_every_member() {
        let st = ring_state(200, &[100, 200, 300], 4);
        let ids = |v: Vec<Peer>| v.iter().map(|p| p.id.low_u64()).collect::<Vec<_>>();
        assert_eq!(
            ids(replicas_from_view(&st, Id::from_u64(250), 3).unwrap()),
            vec![300, 100, 200]
        );
        assert_eq!(
            ids(replicas_from_view(&st, Id::from_u64(50), 5).unwrap()),
            vec![100, 200, 300]
        );
    }

    #[test]
    fn replica_set_is_owner_then_distinct_successors() {
        let p = |v: u64| Peer::new(Id::from_u64(v), format!("n{v}"));
        let set = replica_set(&p(1), &[p(2), p(2), p(3), p(4)], 3);
        assert_eq!(set, vec![p(1), p(2), p(3)]);
        assert_eq!(replica_set(&p(1), &[], 3), vec![p(1)]);
    }
}
