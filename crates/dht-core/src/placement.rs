//! Replica placement: which members hold a key.

use crate::Peer;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Id;

    #[test]
    fn replica_set_is_owner_then_distinct_successors() {
        let p = |v: u64| Peer::new(Id::from_u64(v), format!("n{v}"));
        let set = replica_set(&p(1), &[p(2), p(2), p(3), p(4)], 3);
        assert_eq!(set, vec![p(1), p(2), p(3)]);
        assert_eq!(replica_set(&p(1), &[], 3), vec![p(1)]);
    }
}
