//! What travels between simulated nodes and what waits in the event queue: the requests and
//! answers of remote calls, the continuation that tells the caller what to do with an answer,
//! and every kind of event the world dispatches.

use dht_core::{Id, Peer, Probe, Standing, Step};

use crate::coldstart::ColdEvent;
use crate::engine::Time;
use crate::world::Ix;

/// What a remote call asks.
#[derive(Clone, Debug)]
pub(crate) enum Req {
    FindStep(Id),
    GetState,
    Ping,
    /// A waiting node's cold-start probe, with its hearsay of the lowest eligible waiting
    /// node (none when it heard of no eligible one and is not eligible itself).
    ColdProbe {
        lowest: Option<Peer>,
    },
}

/// What a remote call answers.
#[derive(Clone, Debug)]
pub(crate) enum Resp {
    Step(Step),
    State {
        pred: Option<Peer>,
        list: Vec<Peer>,
    },
    Pong,
    /// How the callee stands, and its hearsay when it waits too.
    ColdProbe {
        standing: Standing,
        lowest: Option<Peer>,
    },
}

/// What the caller does with the answer: the continuation of a call.
#[derive(Clone, Debug)]
pub(crate) enum Cont {
    Lookup {
        slot: u32,
        gen: u32,
    },
    /// A `GetState` of stabilize round `epoch`; the node's
    /// [`Stabilize`](dht_core::Stabilize) decides whether a timeout is retried.
    Stabilize {
        epoch: u64,
    },
    /// A liveness ping (the small-ring probe or check predecessor), carrying the core's
    /// [`Probe`], which decides whether a timeout is retried.
    Probe(Probe),
    /// The callee of a rectify from `n` pings its predecessor before replacing it.
    RectifyCheck {
        n: Ix,
    },
    /// A joining node fetches its successor's list.
    JoinState,
    /// A waiting node's cold-start probe, sent in its probe round `round`.
    ColdProbe {
        round: u32,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    Stabilize,
    FixFinger,
}

#[derive(Debug)]
pub(crate) enum Event {
    Request {
        from: Ix,
        to: Ix,
        sent: Time,
        req: Req,
        cont: Cont,
    },
    Reply {
        from: Ix,
        to: Ix,
        resp: Resp,
        cont: Cont,
    },
    Timeout {
        node: Ix,
        peer: Ix,
        cont: Cont,
    },
    /// One-way "I may be your predecessor".
    Rectify {
        from: Ix,
        to: Ix,
    },
    Timer {
        node: Ix,
        kind: TimerKind,
    },
    /// A new node asks a member to find its successor.
    JoinStart {
        node: Ix,
        attempt: u32,
    },
    /// Gives up on a join attempt that has not completed.
    JoinCheck {
        node: Ix,
        attempt: u32,
    },
    /// The bootstrap's answer reaches the joining node.
    JoinFound {
        node: Ix,
        owner: Peer,
    },
    /// Starts one measured lookup and schedules the next.
    LookupSource {
        remaining: u64,
        spacing: Time,
    },
    /// Churn: a random member fails (with `safe`, only one whose death leaves every member a
    /// live successor-list entry: Zave's failure assumption), or a new node joins.
    Kill {
        safe: bool,
    },
    Spawn,
    /// Cold start (`crate::coldstart`): a node boots, or ends a probe round.
    Cold(ColdEvent),
}
