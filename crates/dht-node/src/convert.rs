//! Every conversion between wire messages and domain types, in one place. Anything that comes
//! off the wire is checked here: ids must be 20 bytes, inside the ring's space, and a peer's id
//! must be the hash of its address.

use dht_core::{Id, IdSpace, Peer, Standing, Step};
use dht_proto::v1 as pb;
use dht_store::{Entry, Record, Version};

use crate::NodeError;

pub fn node_ref(p: &Peer) -> pb::NodeRef {
    pb::NodeRef {
        id: p.id.to_be_bytes().to_vec().into(),
        addr: p.addr.to_string(),
    }
}

pub fn node_refs(ps: &[Peer]) -> Vec<pb::NodeRef> {
    ps.iter().map(node_ref).collect()
}

pub fn peer(space: IdSpace, r: &pb::NodeRef) -> Result<Peer, NodeError> {
    let id = space.check(Id::from_slice(&r.id)?)?;
    Ok(Peer::verified(space, id, &r.addr)?)
}

pub fn opt_peer(space: IdSpace, r: Option<&pb::NodeRef>) -> Result<Option<Peer>, NodeError> {
    r.map(|r| peer(space, r)).transpose()
}

pub fn peers(space: IdSpace, rs: &[pb::NodeRef]) -> Result<Vec<Peer>, NodeError> {
    rs.iter().map(|r| peer(space, r)).collect()
}

pub fn id(space: IdSpace, bytes: &[u8]) -> Result<Id, NodeError> {
    Ok(space.check(Id::from_slice(bytes)?)?)
}

pub fn id_bytes(id: Id) -> prost::bytes::Bytes {
    id.to_be_bytes().to_vec().into()
}

pub fn step(s: &Step) -> pb::FindStepReply {
    match s {
        Step::Owner { owner, successors } => pb::FindStepReply {
            owner: Some(node_ref(owner)),
            closer: vec![],
            successors: node_refs(successors),
        },
        Step::Closer {
            candidates,
            successors,
        } => pb::FindStepReply {
            owner: None,
            closer: node_refs(candidates),
            successors: node_refs(successors),
        },
    }
}

pub fn from_step(space: IdSpace, r: &pb::FindStepReply) -> Result<Step, NodeError> {
    let successors = peers(space, &r.successors)?;
    Ok(match &r.owner {
        Some(o) => Step::Owner {
            owner: peer(space, o)?,
            successors,
        },
        None => Step::Closer {
            candidates: peers(space, &r.closer)?,
            successors,
        },
    })
}

pub fn version(v: Version) -> pb::Version {
    pb::Version {
        hlc: v.hlc,
        node: v.node,
    }
}

pub fn from_version(v: Option<&pb::Version>) -> Version {
    v.map_or(Version::default(), |v| Version {
        hlc: v.hlc,
        node: v.node,
    })
}

pub fn entry(e: &Entry) -> pb::Entry {
    pb::Entry {
        key: e.key.clone().into(),
        value: e.record.value.clone().unwrap_or_default().into(),
        version: Some(version(e.record.version)),
        deleted: e.record.value.is_none(),
        expires_at_ms: e.record.expires_at_ms.unwrap_or(0),
    }
}

/// A wire entry; its id is recomputed from the key, never trusted from the sender.
pub fn from_entry(space: IdSpace, e: pb::Entry) -> Entry {
    Entry {
        id: space.hash(&e.key),
        record: Record {
            value: (!e.deleted).then(|| e.value.to_vec()),
            version: from_version(e.version.as_ref()),
            expires_at_ms: (e.expires_at_ms != 0).then_some(e.expires_at_ms),
        },
        key: e.key.to_vec(),
    }
}

/// A probe's standing. An unset standing comes from a node that predates cold start, which
/// answered only as a member.
pub fn standing(s: i32) -> Standing {
    match pb::Standing::try_from(s) {
        Ok(pb::Standing::Waiting) => Standing::Waiting,
        Ok(pb::Standing::Joining) => Standing::Joining,
        _ => Standing::Member,
    }
}

pub fn standing_to(s: Standing) -> pb::Standing {
    match s {
        Standing::Member => pb::Standing::Member,
        Standing::Waiting => pb::Standing::Waiting,
        Standing::Joining => pb::Standing::Joining,
    }
}
