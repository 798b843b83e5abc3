//! A member of the ring as this node knows it: its id and its advertised address.

use std::fmt;
use std::sync::Arc;

use crate::{CoreError, Id, IdSpace};

/// A ring member. The address is shared (`Arc<str>`) because a peer appears in many finger and
/// successor-list slots, and the simulator holds 100,000 of them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub id: Id,
    pub addr: Arc<str>,
}

impl Peer {
    /// A peer whose id is the hash of its address, as every real node's is.
    pub fn from_addr(space: IdSpace, addr: &str) -> Peer {
        Peer {
            id: space.hash(addr.as_bytes()),
            addr: Arc::from(addr),
        }
    }

    /// A peer with an explicit id (the simulator and tests place nodes directly).
    pub fn new(id: Id, addr: impl Into<Arc<str>>) -> Peer {
        Peer {
            id,
            addr: addr.into(),
        }
    }

    /// Checks a peer claimed by the network: its id must be the hash of its address, so that
    /// no node can choose where it sits on the ring.
    pub fn verified(space: IdSpace, id: Id, addr: &str) -> Result<Peer, CoreError> {
        let expected = space.hash(addr.as_bytes());
        if expected != id {
            return Err(CoreError::IdMismatch {
                addr: addr.to_string(),
                claimed: id,
                expected,
            });
        }
        Ok(Peer::new(id, addr))
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.addr, self.id)
    }
}
