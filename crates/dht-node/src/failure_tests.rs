//! Failure paths of a node, in process: a real [`Node`] served on a loopback port, and fake
//! peers (tonic servers implementing `Peer`) whose every answer the test scripts: refuse with a
//! chosen code and typed reason, hang, or answer wrongly.
//!
//! Every wait is bounded (`tokio::time::timeout`) and every condition is polled until it holds
//! rather than assumed after a fixed sleep; every test stops its node and its fake servers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dht_core::{Id, IdSpace, Peer};
use dht_proto::v1 as pb;
use dht_proto::v1::peer_server::{Peer as PeerRpc, PeerServer};
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::convert::node_ref;
use crate::test_node::{bounded, eventually, TestNode, BOUND};
use crate::{NodeConfig, NodeError, Phase};

/// The ring of every test: the default 160-bit space.
const BITS: u32 = 160;
/// The per-call timeout of the node under test.
const TIMEOUT: Duration = Duration::from_millis(300);

fn space() -> IdSpace {
    IdSpace::new(BITS).expect("valid hash size")
}

/// Short timeouts and fast maintenance.
fn config() -> NodeConfig {
    NodeConfig {
        hash_size: BITS,
        timeout: TIMEOUT,
        stabilize_interval: Duration::from_millis(20),
        fix_fingers_interval: Duration::from_millis(50),
        check_predecessor_interval: Duration::from_millis(50),
        expiry_interval: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_secs(2),
        ..NodeConfig::default()
    }
}

/// As [`config`], but the periodic maintenance never runs during a test (the node's id is
/// chosen so that no task's first run is due at once): the test drives the tables itself.
fn quiet() -> NodeConfig {
    let never = Duration::from_secs(1_000_000);
    NodeConfig {
        stabilize_interval: never,
        fix_fingers_interval: never,
        check_predecessor_interval: never,
        ..config()
    }
}

// ------------------------------------------------------------------ fake peers

type Reply<T> = Pin<Box<dyn Future<Output = Result<T, Status>> + Send>>;
/// A scripted answer: the request and how many calls of this method came before it.
type Handler<Q, R> = Arc<dyn Fn(Q, usize) -> Reply<R> + Send + Sync>;
type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::Entry, Status>> + Send>>;

/// What a fake peer answers, method by method; an unscripted method answers UNIMPLEMENTED.
#[derive(Default, Clone)]
struct Script {
    find_step: Option<Handler<pb::FindStepRequest, pb::FindStepReply>>,
    find_successor: Option<Handler<pb::FindSuccessorRequest, pb::FindSuccessorReply>>,
    get_state: Option<Handler<pb::GetStateRequest, pb::GetStateReply>>,
    notify: Option<Handler<pb::NotifyRequest, pb::NotifyReply>>,
    ping: Option<Handler<pb::PingRequest, pb::PingReply>>,
    fetch_range: Option<Handler<pb::FetchRangeRequest, EntryStream>>,
    apply: Option<Handler<pb::ApplyRequest, pb::ApplyReply>>,
}

fn handler<Q, R, F, Fut>(f: F) -> Option<Handler<Q, R>>
where
    F: Fn(Q, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Status>> + Send + 'static,
{
    Some(Arc::new(move |q, n| Box::pin(f(q, n))))
}

/// Never answers.
async fn hang<R>() -> Result<R, Status> {
    std::future::pending().await
}

/// A refusal as a dht node sends it: a code, and the typed reason in the status details.
fn refusal(code: Code, reason: pb::Reason) -> Status {
    let detail = pb::ErrorDetail {
        reason: reason as i32,
        from_node: true,
        ..Default::default()
    };
    Status::with_details(
        code,
        format!("scripted refusal ({reason:?})"),
        detail.encode_to_vec().into(),
    )
}

/// One failed operation of an `Apply` batch, as a dht node reports it.
fn failed_op(code: Code, reason: pb::Reason) -> pb::OpResult {
    pb::OpResult {
        error: format!("scripted failure ({reason:?})"),
        code: code as i32,
        detail: Some(pb::ErrorDetail {
            reason: reason as i32,
            from_node: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A successful operation: a put echoes its entry, a get finds nothing.
fn ok_op(op: &pb::Op) -> pb::OpResult {
    pb::OpResult {
        entry: match &op.op {
            Some(pb::op::Op::Put(e)) => Some(pb::Entry {
                version: Some(pb::Version { hlc: 1, node: 1 }),
                ..e.clone()
            }),
            _ => None,
        },
        ..Default::default()
    }
}

fn op_key(op: &pb::Op) -> Vec<u8> {
    match &op.op {
        Some(pb::op::Op::Put(e)) => e.key.to_vec(),
        Some(pb::op::Op::Get(g)) => g.key.to_vec(),
        None => Vec::new(),
    }
}

fn get_op(key: &[u8]) -> pb::Op {
    pb::Op {
        op: Some(pb::op::Op::Get(pb::GetOp {
            key: key.to_vec().into(),
        })),
        ..Default::default()
    }
}

fn state_reply(me: &Peer, pred: Option<&Peer>, successors: &[Peer]) -> pb::GetStateReply {
    pb::GetStateReply {
        self_: Some(node_ref(me)),
        predecessor: pred.map(node_ref),
        successors: successors.iter().map(node_ref).collect(),
        hash_size: BITS,
    }
}

/// Calls received, by method.
#[derive(Default)]
struct Calls(Mutex<HashMap<&'static str, usize>>);

impl Calls {
    /// Counts a call; returns how many of this method came before it.
    fn next(&self, method: &'static str) -> usize {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(method).or_default();
        *n += 1;
        *n - 1
    }

    fn get(&self, method: &str) -> usize {
        self.0.lock().unwrap().get(method).copied().unwrap_or(0)
    }
}

struct FakeService {
    script: Arc<Mutex<Script>>,
    calls: Arc<Calls>,
}

impl FakeService {
    async fn dispatch<Q, R>(
        &self,
        method: &'static str,
        pick: impl FnOnce(&Script) -> Option<Handler<Q, R>>,
        req: Q,
    ) -> Result<Response<R>, Status> {
        let n = self.calls.next(method);
        let h = pick(&self.script.lock().unwrap());
        match h {
            Some(h) => h(req, n).await.map(Response::new),
            None => Err(Status::unimplemented(format!("{method} not scripted"))),
        }
    }
}

#[tonic::async_trait]
impl PeerRpc for FakeService {
    async fn find_step(
        &self,
        req: Request<pb::FindStepRequest>,
    ) -> Result<Response<pb::FindStepReply>, Status> {
        self.dispatch("find_step", |s| s.find_step.clone(), req.into_inner())
            .await
    }

    async fn find_successor(
        &self,
        req: Request<pb::FindSuccessorRequest>,
    ) -> Result<Response<pb::FindSuccessorReply>, Status> {
        self.dispatch(
            "find_successor",
            |s| s.find_successor.clone(),
            req.into_inner(),
        )
        .await
    }

    async fn get_state(
        &self,
        req: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::GetStateReply>, Status> {
        self.dispatch("get_state", |s| s.get_state.clone(), req.into_inner())
            .await
    }

    async fn notify(
        &self,
        req: Request<pb::NotifyRequest>,
    ) -> Result<Response<pb::NotifyReply>, Status> {
        self.dispatch("notify", |s| s.notify.clone(), req.into_inner())
            .await
    }

    async fn ping(&self, req: Request<pb::PingRequest>) -> Result<Response<pb::PingReply>, Status> {
        self.dispatch("ping", |s| s.ping.clone(), req.into_inner())
            .await
    }

    async fn leave_notice(
        &self,
        _req: Request<pb::LeaveNoticeRequest>,
    ) -> Result<Response<pb::LeaveNoticeReply>, Status> {
        self.calls.next("leave_notice");
        Ok(Response::new(pb::LeaveNoticeReply {}))
    }

    type FetchRangeStream = EntryStream;

    async fn fetch_range(
        &self,
        req: Request<pb::FetchRangeRequest>,
    ) -> Result<Response<EntryStream>, Status> {
        self.dispatch("fetch_range", |s| s.fetch_range.clone(), req.into_inner())
            .await
    }

    async fn push_entries(
        &self,
        _req: Request<Streaming<pb::Entry>>,
    ) -> Result<Response<pb::PushEntriesReply>, Status> {
        self.calls.next("push_entries");
        Err(Status::unimplemented("push_entries not scripted"))
    }

    async fn apply(
        &self,
        req: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyReply>, Status> {
        self.dispatch("apply", |s| s.apply.clone(), req.into_inner())
            .await
    }

    async fn unify(
        &self,
        _req: Request<pb::UnifyRequest>,
    ) -> Result<Response<pb::UnifyReply>, Status> {
        self.calls.next("unify");
        Ok(Response::new(pb::UnifyReply {}))
    }

    /// Answers as a node without anti-entropy would: a join then pulls its whole range.
    async fn digest(
        &self,
        _req: Request<pb::DigestRequest>,
    ) -> Result<Response<pb::DigestReply>, Status> {
        self.calls.next("digest");
        Err(Status::unimplemented("digest not scripted"))
    }
}

/// A fake peer: a `Peer` server on a real port, whose id is the hash of that address.
struct FakePeer {
    peer: Peer,
    addr: String,
    script: Arc<Mutex<Script>>,
    calls: Arc<Calls>,
    server: JoinHandle<()>,
}

impl FakePeer {
    /// A fake on 127.0.0.1.
    async fn start() -> FakePeer {
        FakePeer::start_where("127.0.0.1:0", |_| true).await
    }

    /// A fake listening on `bind` (port 0), advertised as 127.0.0.1:port, on a port whose
    /// peer satisfies `fits` (to place it on the ring where a test needs it).
    async fn start_where(bind: &str, fits: impl Fn(&Peer) -> bool) -> FakePeer {
        let (listener, addr) = loop {
            let l = TcpListener::bind(bind).await.expect("bind");
            let addr = format!("127.0.0.1:{}", l.local_addr().expect("local addr").port());
            if fits(&Peer::from_addr(space(), &addr)) {
                break (l, addr);
            }
        };
        let script: Arc<Mutex<Script>> = Arc::default();
        let calls: Arc<Calls> = Arc::default();
        let svc = FakeService {
            script: script.clone(),
            calls: calls.clone(),
        };
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(PeerServer::new(svc))
                .serve_with_incoming(incoming)
                .await;
        });
        FakePeer {
            peer: Peer::from_addr(space(), &addr),
            addr,
            script,
            calls,
            server,
        }
    }

    /// Changes the script (also while the fake serves).
    fn script(&self, edit: impl FnOnce(&mut Script)) {
        edit(&mut self.script.lock().unwrap());
    }

    fn calls(&self, method: &str) -> usize {
        self.calls.get(method)
    }

    /// Answers `GetState` and `Notify` like a lone member (no predecessor, no successors).
    fn answer_as_lone_member(&self) {
        let me = self.peer.clone();
        self.script(|s| {
            s.get_state = handler(move |_, _| {
                let r = state_reply(&me, None, &[]);
                async move { Ok(r) }
            });
            s.notify = handler(|_, _| async { Ok(pb::NotifyReply {}) });
        });
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The clockwise position of `id` seen from `from`, as a fraction of the circle.
fn arc(from: Id, id: Id) -> f64 {
    space().distance(from, id).fraction(BITS)
}

/// Keys whose ids lie in (from, to], `n` of them.
fn keys_in(from: Id, to: Id, n: usize) -> Vec<Vec<u8>> {
    let sp = space();
    (0u64..)
        .map(|i| format!("key-{i}").into_bytes())
        .filter(|k| dht_core::interval::between_right(sp.hash(k), from, to))
        .take(n)
        .collect()
}

// ------------------------------------------------------------------ 1. join retry

/// A bootstrap that first refuses (UNAVAILABLE / NOT_SERVING, to the cold-start probe and
/// then to the join's lookup) keeps the node waiting and retrying, never exiting; once the
/// bootstrap answers, the node joins, pulls its range and serves.
#[tokio::test]
async fn join_retries_through_a_bootstrap_that_refuses_then_answers() {
    let pulled: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let boot = FakePeer::start().await;
    let me_b = boot.peer.clone();
    boot.answer_as_lone_member();
    boot.script(|s| {
        let me = me_b.clone();
        s.ping = handler(move |_, n| {
            let node = node_ref(&me);
            async move {
                if n < 3 {
                    return Err(refusal(Code::Unavailable, pb::Reason::NotServing));
                }
                Ok(pb::PingReply {
                    node: Some(node),
                    hash_size: BITS,
                    standing: pb::Standing::Member as i32,
                    ..Default::default()
                })
            }
        });
        let me = me_b.clone();
        s.find_successor = handler(move |_, n| {
            let owner = node_ref(&me);
            async move {
                if n < 2 {
                    return Err(refusal(Code::Unavailable, pb::Reason::NotServing));
                }
                Ok(pb::FindSuccessorReply {
                    owner: Some(owner),
                    hops: 0,
                })
            }
        });
        // A key inside the asked range: the joining node keeps only those.
        let asked = pulled.clone();
        s.fetch_range = handler(move |req: pb::FetchRangeRequest, _| {
            let (from, to) = (
                Id::from_slice(&req.from).expect("id"),
                Id::from_slice(&req.to).expect("id"),
            );
            let key = keys_in(from, to, 1).remove(0);
            *asked.lock().expect("lock") = Some(key.clone());
            async move {
                let e = pb::Entry {
                    key: key.into(),
                    value: b"v".to_vec().into(),
                    version: Some(pb::Version { hlc: 7, node: 1 }),
                    ..Default::default()
                };
                Ok(Box::pin(futures::stream::iter([Ok(e)])) as EntryStream)
            }
        });
    });

    let t = TestNode::start(config(), std::slice::from_ref(&boot.addr)).await;
    // While the bootstrap refuses the probes, the node waits (NOT_SERVING), it does not exit.
    eventually("two refused probes", BOUND, || boot.calls("ping") >= 2).await;
    let phase = t.node.phase();
    assert!(
        matches!(phase, Phase::Waiting | Phase::Joining),
        "{phase:?} while the bootstrap refuses"
    );
    assert!(
        !t.run_finished(),
        "the node gave up while its bootstrap refused"
    );

    let n = t.node.clone();
    eventually("the node joins and serves", BOUND, || {
        n.phase() == Phase::Serving
    })
    .await;
    assert!(!t.run_finished());
    assert!(boot.calls("ping") >= 4, "probes: {}", boot.calls("ping"));
    assert!(
        boot.calls("find_successor") >= 3,
        "the join's lookup was not retried: {}",
        boot.calls("find_successor")
    );
    let snap = t.node.snapshot();
    assert_eq!(snap.successors().first(), Some(&boot.peer));
    assert!(
        boot.calls("notify") >= 1,
        "the join never notified its successor"
    );
    // The range pulled from the successor arrived.
    let key = pulled
        .lock()
        .expect("lock")
        .clone()
        .expect("a range was fetched");
    let got = t
        .node
        .local
        .get(space().hash(&key), key)
        .await
        .expect("store read");
    assert_eq!(got.and_then(|e| e.record.value), Some(b"v".to_vec()));
    t.stop().await;
}

/// The bootstrap names a successor whose `GetState` never answers: every join attempt times
/// out, the join fails, and the node is back where it was (alone, serving) with no pointer of
/// the failed join left behind.
#[tokio::test]
async fn join_fails_and_resets_when_the_successor_hangs_in_get_state() {
    let succ = FakePeer::start().await;
    succ.script(|s| s.get_state = handler(|_, _| hang()));
    let boot = FakePeer::start().await;
    let owner = node_ref(&succ.peer);
    boot.script(|s| {
        s.find_successor = handler(move |_, _| {
            let owner = owner.clone();
            async move {
                Ok(pb::FindSuccessorReply {
                    owner: Some(owner),
                    hops: 1,
                })
            }
        })
    });
    let t = TestNode::alone(config()).await;

    let started = Instant::now();
    let r = bounded(
        "a join through a hanging successor",
        BOUND,
        t.node.join(std::slice::from_ref(&boot.addr)),
    )
    .await;
    match r {
        Err(NodeError::Peer { addr, .. }) => assert_eq!(addr, succ.addr),
        other => panic!("expected the successor's timeout, got {other:?}"),
    }
    // Retried (a timeout is transient), and each attempt bounded by the timeout.
    let attempts = succ.calls("get_state");
    assert!(attempts >= 2, "the join was not retried");
    assert!(started.elapsed() >= TIMEOUT * attempts as u32);
    assert_eq!(succ.calls("fetch_range"), 0);
    assert_eq!(succ.calls("notify"), 0);
    let snap = t.node.snapshot();
    assert!(
        snap.is_alone(),
        "half-set successors: {:?}",
        snap.successors()
    );
    assert!(snap.predecessor().is_none());
    assert_eq!(t.node.phase(), Phase::Serving);
    t.stop().await;
}

// ------------------------------------------------------------------ 2. an aborted join

/// A successor whose `FetchRange` stream sends one entry and then breaks (the successor died
/// mid-transfer); the first transfer stalls until `release` is notified. And a bootstrap whose
/// lookup names that successor.
async fn breaking_successor() -> (FakePeer, FakePeer, Arc<tokio::sync::Notify>) {
    let succ = FakePeer::start().await;
    succ.answer_as_lone_member();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    succ.script(|s| {
        s.fetch_range = handler(move |_, n| {
            let gate = gate.clone();
            async move {
                let first = futures::stream::iter([Ok(pb::Entry {
                    key: b"half-way".to_vec().into(),
                    value: b"v".to_vec().into(),
                    version: Some(pb::Version { hlc: 1, node: 1 }),
                    ..Default::default()
                })]);
                // The first transfer stalls until the test has looked, then breaks; the
                // retries break at once.
                let death = futures::stream::once(async move {
                    if n == 0 {
                        gate.notified().await;
                    }
                    Err(Status::unavailable("successor died mid-transfer"))
                });
                Ok(Box::pin(first.chain(death)) as EntryStream)
            }
        });
    });
    let boot = FakePeer::start().await;
    let owner = node_ref(&succ.peer);
    boot.script(|s| {
        s.find_successor = handler(move |_, _| {
            let owner = owner.clone();
            async move {
                Ok(pb::FindSuccessorReply {
                    owner: Some(owner),
                    hops: 1,
                })
            }
        })
    });
    (succ, boot, release)
}

/// Runs a join (as `Kv.Join` does on a running lone node) through a successor that dies
/// mid-transfer; checks the node mid-join and after the join failed.
async fn join_through_a_breaking_successor(cfg: NodeConfig) {
    let (succ, boot, release) = breaking_successor().await;
    let t = TestNode::alone(cfg).await;

    let node = t.node.clone();
    let bootstrap = vec![boot.addr.clone()];
    let join = tokio::spawn(async move { node.join(&bootstrap).await });
    eventually("the range transfer starts", BOUND, || {
        succ.calls("fetch_range") >= 1
    })
    .await;
    // Mid-join: joining, with the successor set for the transfer.
    assert_eq!(t.node.phase(), Phase::Joining);
    assert_eq!(t.node.snapshot().successors().first(), Some(&succ.peer));
    release.notify_one();

    let r = bounded("the broken join", BOUND, join)
        .await
        .expect("join task");
    match r {
        Err(NodeError::Peer { addr, status }) => {
            assert_eq!(addr, succ.addr);
            assert_eq!(status.code(), Code::Unavailable);
        }
        other => panic!("expected the broken transfer, got {other:?}"),
    }
    assert!(succ.calls("fetch_range") >= 2, "the join was not retried");
    let snap = t.node.snapshot();
    assert!(
        snap.is_alone(),
        "half-set successors: {:?}",
        snap.successors()
    );
    assert!(snap.predecessor().is_none());
    assert_eq!(t.node.phase(), Phase::Serving);
    // Nobody told the successor we precede it: it would hand us a range we never received
    // and then count on us for it, while we went back to being alone.
    assert_eq!(
        succ.calls("notify"),
        0,
        "the successor of a failed join was notified"
    );
    t.stop().await;
}

/// The successor dies while the joining node pulls its range (the `FetchRange` stream ends
/// with an error): the join fails, the successor pointer set for the transfer is taken back,
/// and the successor is never notified. Maintenance is quiet here: this is the join alone.
#[tokio::test]
async fn join_whose_range_transfer_breaks_fails_cleanly() {
    join_through_a_breaking_successor(quiet()).await;
}

/// The same failed join on a node whose maintenance runs (every 20 ms), as on a lone running
/// node told to join (`Kv.Join`, `dhtctl join`): stabilize must not act on the successor the
/// join set for its transfer.
#[tokio::test]
async fn stabilize_leaves_a_join_in_progress_alone() {
    join_through_a_breaking_successor(config()).await;
}

// ------------------------------------------------------------------ 3. lookups that fail

/// Two peers that send the lookup to each other (and to themselves) in a cycle: the lookup
/// asks each once and fails with `LookupFailed`, it does not go round.
#[tokio::test]
async fn lookup_through_peers_pointing_in_a_cycle_fails_without_asking_twice() {
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let (mut x, mut y) = (FakePeer::start().await, FakePeer::start().await);
    if arc(me.id, y.peer.id) < arc(me.id, x.peer.id) {
        std::mem::swap(&mut x, &mut y);
    }
    // Clockwise: me, x, y, key (just before me).
    let key = space().add(me.id, space().max_id());
    let (px, py) = (x.peer.clone(), y.peer.clone());
    let answer = move |ask: Vec<Peer>| {
        handler(move |_: pb::FindStepRequest, _| {
            let closer = ask.iter().map(node_ref).collect();
            async move {
                Ok(pb::FindStepReply {
                    closer,
                    ..Default::default()
                })
            }
        })
    };
    x.script(|s| s.find_step = answer(vec![py.clone(), px.clone()]));
    y.script(|s| s.find_step = answer(vec![px.clone(), py.clone()]));
    t.node.state().join(&x.peer, &[]);

    let r = bounded("a lookup through a cycle", BOUND, t.node.lookup(key)).await;
    assert!(
        matches!(r, Err(NodeError::LookupFailed(k)) if k == key),
        "{r:?}"
    );
    assert_eq!(x.calls("find_step"), 1);
    assert_eq!(y.calls("find_step"), 1);
    t.stop().await;
}

/// A peer whose answer names a member whose id is not the hash of its address (garbage): the
/// answer counts as no answer, and the lookup fails rather than follow it.
#[tokio::test]
async fn lookup_answer_naming_a_forged_peer_counts_as_no_answer() {
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let x = FakePeer::start().await;
    let key = space().add(me.id, space().max_id());
    x.script(|s| {
        s.find_step = handler(|_, _| async {
            Ok(pb::FindStepReply {
                owner: Some(pb::NodeRef {
                    id: vec![0x42; 20].into(),
                    addr: "127.0.0.1:1".into(),
                }),
                ..Default::default()
            })
        })
    });
    t.node.state().join(&x.peer, &[]);
    let r = bounded("a lookup through a forger", BOUND, t.node.lookup(key)).await;
    assert!(matches!(r, Err(NodeError::LookupFailed(_))), "{r:?}");
    assert_eq!(x.calls("find_step"), 1);
    t.stop().await;
}

/// A peer names more candidates than a lookup may ask, each of which fails: the lookup stops
/// at `MAX_LOOKUP_STEPS` asks and fails, bounded, rather than work through them all.
#[tokio::test]
async fn lookup_stops_at_its_step_cap() {
    use crate::routing::MAX_LOOKUP_STEPS;
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let key = space().add(me.id, space().max_id());
    // The first hop, in the first half of the circle after us, so that plenty of ids lie
    // between it and the key.
    let first = FakePeer::start_where("127.0.0.1:0", |p| arc(me.id, p.id) < 0.5).await;
    // Every other candidate is this one server, reached under many loopback addresses (so
    // many ids); it fails every call as a dead peer would (no node detail).
    let dead = FakePeer::start_where("0.0.0.0:0", |_| true).await;
    dead.script(|s| {
        s.find_step = handler(|_, _| async { Err(Status::unavailable("scripted: gone")) })
    });
    let port = dead.addr.rsplit(':').next().unwrap().to_string();
    let want = MAX_LOOKUP_STEPS + 50;
    let candidates: Vec<pb::NodeRef> = (0u32..)
        .map(|i| format!("127.0.{}.{}:{port}", i / 250, i % 250 + 1))
        .map(|a| Peer::from_addr(space(), &a))
        .filter(|p| dht_core::interval::between_open(p.id, first.peer.id, key))
        .take(want)
        .map(|p| node_ref(&p))
        .collect();
    first.script(|s| {
        s.find_step = handler(move |_, _| {
            let closer = candidates.clone();
            async move {
                Ok(pb::FindStepReply {
                    closer,
                    ..Default::default()
                })
            }
        })
    });
    t.node.state().join(&first.peer, &[]);

    let r = bounded(
        "a lookup with too many candidates",
        BOUND,
        t.node.lookup(key),
    )
    .await;
    assert!(matches!(r, Err(NodeError::LookupFailed(_))), "{r:?}");
    assert_eq!(first.calls("find_step"), 1);
    assert_eq!(dead.calls("find_step"), MAX_LOOKUP_STEPS - 1);
    t.stop().await;
}

// ------------------------------------------------------------------ 4. the routing deadline

/// The owner the tables predict refuses every operation with NOT_OWNER: routing retries, and
/// gives up with `NoOwner` after about the configured timeout, not before, not much after.
#[tokio::test]
async fn route_gives_up_with_no_owner_after_the_timeout() {
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let owner = FakePeer::start_where("127.0.0.1:0", |p| arc(me.id, p.id) > 0.05).await;
    owner.script(|s| {
        s.apply = handler(|req: pb::ApplyRequest, _| async move {
            let results = req
                .ops
                .iter()
                .map(|_| failed_op(Code::FailedPrecondition, pb::Reason::NotOwner))
                .collect();
            Ok(pb::ApplyReply { results })
        })
    });
    t.node.state().join(&owner.peer, &[]);
    let key = keys_in(me.id, owner.peer.id, 1).remove(0);

    let started = Instant::now();
    let r = bounded(
        "routing to a refusing owner",
        BOUND,
        t.node.route(&key, get_op(&key)),
    )
    .await;
    let took = started.elapsed();
    match r {
        Err(NodeError::NoOwner { id, timeout_ms }) => {
            assert_eq!(id, space().hash(&key));
            assert_eq!(timeout_ms, TIMEOUT.as_millis() as u64);
        }
        other => panic!("expected NoOwner, got {other:?}"),
    }
    // The last backoff step is at most 100 ms, so it gives up within that of the deadline.
    assert!(
        took >= TIMEOUT - Duration::from_millis(100),
        "gave up after {took:?}"
    );
    assert!(
        took < TIMEOUT + Duration::from_secs(2),
        "gave up after {took:?}"
    );
    assert!(
        owner.calls("apply") >= 3,
        "retried {} times",
        owner.calls("apply")
    );
    t.stop().await;
}

// ------------------------------------------------------------------ 5. a batch failing midway

/// Connects a `Kv` client to the node.
async fn kv(t: &TestNode) -> pb::kv_client::KvClient<tonic::transport::Channel> {
    pb::kv_client::KvClient::connect(format!("http://{}", t.me().addr))
        .await
        .expect("connect to the node")
}

fn puts(keys: &[Vec<u8>]) -> Vec<pb::PutRequest> {
    keys.iter()
        .map(|k| pb::PutRequest {
            key: k.clone().into(),
            value: b"v".to_vec().into(),
            ttl_ms: 0,
            ..Default::default()
        })
        .collect()
}

/// A `PutMany` whose owner stores some operations of the batch and refuses others with
/// retryable reasons (NOT_OWNER, OVERLOADED): exactly the refused ones are routed again, and
/// the call reports every put stored. A non-retryable failure (INVALID_ARGUMENT) ends the
/// call with that error at once, without retries.
#[tokio::test]
async fn batch_failing_midway_reroutes_the_retryable_and_returns_the_fatal() {
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let owner = FakePeer::start_where("127.0.0.1:0", |p| arc(me.id, p.id) > 0.05).await;
    t.node.state().join(&owner.peer, &[]);
    let keys = keys_in(me.id, owner.peer.id, 6);
    // Refused once each: keys 1 (not owner) and 4 (overloaded).
    let refuse: HashMap<Vec<u8>, pb::Reason> = HashMap::from([
        (keys[1].clone(), pb::Reason::NotOwner),
        (keys[4].clone(), pb::Reason::Overloaded),
    ]);
    let batches: Arc<Mutex<Vec<Vec<Vec<u8>>>>> = Arc::default();
    let seen = batches.clone();
    owner.script(|s| {
        s.apply = handler(move |req: pb::ApplyRequest, _| {
            let mut seen = seen.lock().unwrap();
            let first_time = |k: &Vec<u8>| !seen.iter().flatten().any(|s| s == k);
            let results = req
                .ops
                .iter()
                .map(|op| match refuse.get(&op_key(op)) {
                    Some(&reason) if first_time(&op_key(op)) => {
                        let code = match reason {
                            pb::Reason::Overloaded => Code::ResourceExhausted,
                            _ => Code::FailedPrecondition,
                        };
                        failed_op(code, reason)
                    }
                    _ => ok_op(op),
                })
                .collect();
            seen.push(req.ops.iter().map(op_key).collect());
            async move { Ok(pb::ApplyReply { results }) }
        })
    });

    let mut client = kv(&t).await;
    let reply = bounded(
        "a PutMany with refusals",
        BOUND,
        client.put_many(tokio_stream::iter(puts(&keys))),
    )
    .await
    .expect("PutMany")
    .into_inner();
    assert_eq!(reply.stored, keys.len() as u64);
    {
        let batches = batches.lock().unwrap();
        assert_eq!(batches[0], keys, "one batch to the predicted owner first");
        let mut again: Vec<Vec<u8>> = batches[1..].iter().flatten().cloned().collect();
        again.sort();
        let mut want = vec![keys[1].clone(), keys[4].clone()];
        want.sort();
        assert_eq!(
            again, want,
            "exactly the refused operations were routed again"
        );
    }

    // Now the owner rejects one operation outright.
    let calls_before = owner.calls("apply");
    let fatal = keys[3].clone();
    owner.script(|s| {
        s.apply = handler(move |req: pb::ApplyRequest, _| {
            let results = req
                .ops
                .iter()
                .map(|op| {
                    if op_key(op) == fatal {
                        failed_op(Code::InvalidArgument, pb::Reason::Unspecified)
                    } else {
                        ok_op(op)
                    }
                })
                .collect();
            async move { Ok(pb::ApplyReply { results }) }
        })
    });
    let err = bounded(
        "a PutMany with a fatal failure",
        BOUND,
        client.put_many(tokio_stream::iter(puts(&keys))),
    )
    .await
    .expect_err("a put the owner rejected must fail the call");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        owner.calls("apply"),
        calls_before + 1,
        "nothing routed again"
    );
    t.stop().await;
}

// ------------------------------------------------------------------ 6. confirm-once

/// A successor whose `GetState` fails once (it hangs past the timeout) and then answers stays
/// in the successor list after a stabilize round; one whose `GetState` fails twice is removed
/// (and remembered dead) after one round.
#[tokio::test]
async fn stabilize_removes_a_successor_only_after_a_confirmed_failure() {
    let t = TestNode::alone(quiet()).await;

    // Fails once, then answers.
    let flaky = FakePeer::start().await;
    flaky.answer_as_lone_member();
    let me_f = flaky.peer.clone();
    flaky.script(|s| {
        s.get_state = handler(move |_, n| {
            let r = state_reply(&me_f, None, &[]);
            async move {
                if n == 0 {
                    return hang().await;
                }
                Ok(r)
            }
        })
    });
    t.node.state().join(&flaky.peer, &[]);
    bounded("a stabilize round", BOUND, t.node.stabilize_once()).await;
    assert_eq!(flaky.calls("get_state"), 2, "the failure was not confirmed");
    let snap = t.node.snapshot();
    assert_eq!(snap.successors().first(), Some(&flaky.peer));
    assert!(!snap.is_known_dead(flaky.peer.id));

    // Fails twice: gone after one round.
    let dead = FakePeer::start().await;
    dead.answer_as_lone_member();
    dead.script(|s| {
        s.get_state = handler(|_, _| async { Err(Status::unavailable("scripted: gone")) })
    });
    t.node.state().reset();
    t.node.state().join(&dead.peer, &[]);
    bounded("a stabilize round", BOUND, t.node.stabilize_once()).await;
    assert_eq!(dead.calls("get_state"), 2);
    let snap = t.node.snapshot();
    assert!(
        !snap.successors().contains(&dead.peer),
        "{:?}",
        snap.successors()
    );
    assert!(snap.is_known_dead(dead.peer.id));
    t.stop().await;
}

// ------------------------------------------------------------------ 7. result-count mismatch

/// An owner that answers a coalesced `Apply` batch with fewer results than operations: every
/// caller whose operation was in that batch gets an error, none hangs and none is told its
/// operation succeeded; a routed request gets the error at once (it is not retried).
#[tokio::test]
async fn apply_answering_fewer_results_fails_every_caller_of_the_batch() {
    let t = TestNode::alone(quiet()).await;
    let me = t.me().clone();
    let owner = FakePeer::start_where("127.0.0.1:0", |p| arc(me.id, p.id) > 0.05).await;
    let sizes: Arc<Mutex<Vec<usize>>> = Arc::default();
    let seen = sizes.clone();
    owner.script(|s| {
        s.apply = handler(move |req: pb::ApplyRequest, _| {
            seen.lock().unwrap().push(req.ops.len());
            let results: Vec<pb::OpResult> = req.ops.iter().skip(1).map(ok_op).collect();
            async move { Ok(pb::ApplyReply { results }) }
        })
    });
    t.node.state().join(&owner.peer, &[]);
    let keys = keys_in(me.id, owner.peer.id, 5);

    // All five are queued before the owner's sender runs (one current-thread runtime), so
    // they travel as one batch.
    let calls = keys
        .iter()
        .map(|k| t.node.peers.apply_one(&owner.peer, get_op(k)));
    let results = bounded(
        "callers of a mismatched batch",
        BOUND,
        futures::future::join_all(calls),
    )
    .await;
    for r in &results {
        assert!(matches!(r, Err(NodeError::Internal(_))), "{r:?}");
    }
    assert_eq!(*sizes.lock().unwrap(), vec![keys.len()]);

    // Through routing: the read's quorum (both members of this two-node ring) fails at once
    // with the count of replicas that answered; it is not retried until the deadline (that
    // would be NoOwner).
    let r = bounded(
        "routing to a miscounting owner",
        BOUND,
        t.node.route(&keys[0], get_op(&keys[0])),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(NodeError::Quorum {
                answered: 1,
                needed: 2,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(sizes.lock().unwrap().len(), 2, "sent once, not retried");
    t.stop().await;
}
