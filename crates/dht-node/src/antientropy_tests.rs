//! Anti-entropy, joins and the replica GC between real nodes in one process
//! (docs/protocol.md, "Anti-entropy"): each node a real [`Node`] on a loopback port with a
//! memory store. Tests write straight into one node's store (`local.store.apply`), so the
//! other replicas miss entries or hold older versions, and then watch the stores converge
//! with no client read or write at all. Every wait is bounded and polled.

use std::time::Duration;

use dht_core::interval::between_right;
use dht_core::{IdSpace, Peer};
use dht_proto::v1 as pb;
use dht_store::{Entry, Record, Version};
use prost::Message;

use crate::hlc::now_ms;
use crate::test_node::TestNode;
use crate::{NodeConfig, Phase};

const BOUND: Duration = Duration::from_secs(30);

fn space() -> IdSpace {
    IdSpace::default()
}

/// Fast maintenance; anti-entropy every `ae`, with replication factor `r`.
fn config(r: u32, ae: Duration) -> NodeConfig {
    NodeConfig {
        replication_factor: r,
        anti_entropy_interval: ae,
        timeout: Duration::from_millis(500),
        stabilize_interval: Duration::from_millis(20),
        fix_fingers_interval: Duration::from_millis(50),
        check_predecessor_interval: Duration::from_millis(50),
        expiry_interval: Duration::from_secs(3600),
        shutdown_timeout: Duration::from_secs(2),
        ..NodeConfig::default()
    }
}

/// Reads and writes straight into a node's own store, past every protocol path.
trait Direct {
    fn get(&self, key: &[u8]) -> Option<Entry>;
    fn put(&self, e: &Entry);
}

impl Direct for TestNode {
    fn get(&self, key: &[u8]) -> Option<Entry> {
        self.store()
            .get(space().hash(key), key)
            .expect("store read")
    }

    fn put(&self, e: &Entry) {
        self.store()
            .apply(std::slice::from_ref(e))
            .expect("store write");
    }
}

async fn eventually(what: &str, f: impl FnMut() -> bool) {
    crate::test_node::eventually(what, BOUND, f).await
}

/// A ring of `n` nodes: the first alone, the others joining through it one at a time; waits
/// until every predecessor and first successor is right.
async fn ring(n: usize, cfg: NodeConfig) -> Vec<TestNode> {
    let first = TestNode::start(cfg.clone(), &[]).await;
    let boot = vec![first.addr()];
    let mut nodes = vec![first];
    for _ in 1..n {
        let t = TestNode::start(cfg.clone(), &boot).await;
        let node = t.node.clone();
        eventually("the node joins", || node.phase() == Phase::Serving).await;
        nodes.push(t);
    }
    nodes.sort_by_key(|t| t.node.me().id);
    let ids: Vec<Peer> = nodes.iter().map(|t| t.node.me().clone()).collect();
    eventually("a stable ring", || {
        nodes.iter().enumerate().all(|(i, t)| {
            let st = t.node.snapshot();
            let pred = &ids[(i + ids.len() - 1) % ids.len()];
            let succ = &ids[(i + 1) % ids.len()];
            st.predecessor().map(|p| p.id) == Some(pred.id)
                && st.successors().first().map(|p| p.id) == Some(succ.id)
        })
    })
    .await;
    nodes
}

/// The index (in `nodes`, sorted by id) of the owner of `key`.
fn owner(nodes: &[TestNode], key: &[u8]) -> usize {
    let id = space().hash(key);
    nodes.iter().position(|t| t.node.me().id >= id).unwrap_or(0)
}

/// A key owned by node `i`, distinct for each `tag`.
fn key_of(nodes: &[TestNode], i: usize, tag: &str) -> Vec<u8> {
    (0..)
        .map(|n| format!("{tag}-{n}").into_bytes())
        .find(|k| owner(nodes, k) == i)
        .expect("some key")
}

/// An entry written `age_ms` ago by writer `node`; `None` is a tombstone.
fn entry(key: &[u8], value: Option<&str>, age_ms: u64, node: u64) -> Entry {
    Entry {
        id: space().hash(key),
        key: key.to_vec(),
        record: Record {
            value: value.map(|v| v.as_bytes().to_vec()),
            version: Version {
                hlc: (now_ms() - age_ms) << Version::LOGICAL_BITS,
                node,
            },
            expires_at_ms: None,
        },
    }
}

fn holds(t: &TestNode, e: &Entry) -> bool {
    t.get(&e.key).is_some_and(|got| got.record == e.record)
}

/// Entries written to one replica only, and versions that differ between replicas, converge
/// on every replica with no client request: the newest version everywhere, a tombstone
/// winning over an older value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_converge_without_reads_and_newest_wins() {
    let nodes = ring(3, config(3, Duration::from_millis(150))).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // On the owner only.
    let only_owner = entry(&key_of(&nodes, 0, "only-owner"), Some("v"), 5_000, 1);
    a.put(&only_owner);
    // On a replica only (a write the owner missed).
    let only_replica = entry(&key_of(&nodes, 1, "only-replica"), Some("v"), 5_000, 1);
    a.put(&only_replica);
    // The owner holds an older value than a replica.
    let k = key_of(&nodes, 2, "older-on-owner");
    c.put(&entry(&k, Some("old"), 9_000, 1));
    let newer = entry(&k, Some("new"), 4_000, 2);
    a.put(&newer);
    // A tombstone on one replica, an older value on the two others.
    let k = key_of(&nodes, 0, "deleted");
    a.put(&entry(&k, Some("old"), 9_000, 1));
    b.put(&entry(&k, Some("old"), 9_000, 1));
    let tomb = entry(&k, None, 3_000, 3);
    c.put(&tomb);

    let all = [&only_owner, &only_replica, &newer, &tomb];
    eventually(
        "every replica holds the newest version of every key",
        || nodes.iter().all(|t| all.iter().all(|e| holds(t, e))),
    )
    .await;
    let moved: u64 = nodes
        .iter()
        .map(|t| {
            let s = t.node.metrics.anti_entropy.totals();
            s.pulled + s.pushed
        })
        .sum();
    assert!(moved >= 4, "entries moved: {moved}");
}

/// Once the replicas agree, a round exchanges digests only: nothing is pulled or pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_replicas_exchange_only_digests() {
    let nodes = ring(3, config(3, Duration::from_millis(100))).await;
    for i in 0..60 {
        let k = format!("same-{i}").into_bytes();
        let e = entry(&k, Some("v"), 5_000, 1);
        for t in &nodes {
            t.put(&e);
        }
    }
    // A round under way while the entries were written may still have moved some.
    let rounds = |n: &TestNode| n.node.metrics.anti_entropy.totals().rounds;
    let started: Vec<u64> = nodes.iter().map(rounds).collect();
    eventually("two rounds after the writes", || {
        nodes.iter().zip(&started).all(|(t, s)| rounds(t) >= s + 2)
    })
    .await;
    let before: Vec<_> = nodes
        .iter()
        .map(|t| t.node.metrics.anti_entropy.totals())
        .collect();
    eventually("three more rounds on every node", || {
        nodes
            .iter()
            .zip(&before)
            .all(|(t, b)| t.node.metrics.anti_entropy.totals().rounds >= b.rounds + 3)
    })
    .await;
    for (t, b) in nodes.iter().zip(&before) {
        let now = t.node.metrics.anti_entropy.totals();
        assert_eq!(
            (now.pulled, now.pushed, now.differing),
            (b.pulled, b.pushed, b.differing),
            "identical stores moved entries"
        );
        assert!(now.digest_bytes > b.digest_bytes, "no digests exchanged");
    }
}

/// A joining node receives every entry of its range from its successor before it serves,
/// through the digest exchange alone (anti-entropy rounds are too rare to help here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_receives_its_range_before_serving() {
    let cfg = config(2, Duration::from_secs(3600));
    let nodes = ring(2, cfg.clone()).await;
    let written: Vec<Entry> = (0..300)
        .map(|i| entry(format!("join-{i}").as_bytes(), Some("v"), 5_000, 1))
        .collect();
    for e in &written {
        let o = owner(&nodes, &e.key);
        nodes[o].put(e);
    }
    let joiner = TestNode::start(cfg, &[nodes[0].addr()]).await;
    let node = joiner.node.clone();
    eventually("the joiner serves and knows its predecessor", || {
        node.phase() == Phase::Serving && node.snapshot().predecessor().is_some()
    })
    .await;
    let pred = joiner
        .node
        .snapshot()
        .predecessor()
        .expect("a predecessor")
        .id;
    let me = joiner.node.me().id;
    let mine: Vec<&Entry> = written
        .iter()
        .filter(|e| between_right(e.id, pred, me))
        .collect();
    assert!(!mine.is_empty(), "no key fell in the joiner's range");
    for e in &mine {
        assert!(
            holds(&joiner, e),
            "the joiner lacks {:?}",
            String::from_utf8_lossy(&e.key)
        );
    }
    // Only its range came over.
    let stored = joiner.store().len().expect("len");
    assert_eq!(stored, mine.len() as u64);
}

/// A copy held by a node that no replica set includes (left over from an old ring) goes to
/// every member of its replica set, newest version winning there, and is dropped here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_nobody_replicates_here_go_to_their_replica_set_and_are_dropped() {
    let nodes = ring(3, config(2, Duration::from_millis(100))).await;
    // With r = 2, a key of node 0 lives on nodes 0 and 1; node 2 never replicates it.
    let k = key_of(&nodes, 0, "stray");
    nodes[0].put(&entry(&k, Some("old"), 9_000, 1));
    let stray = entry(&k, Some("newer"), 4_000, 2);
    nodes[2].put(&stray);
    eventually(
        "the stray copy reached the replica set and left node 2",
        || holds(&nodes[0], &stray) && holds(&nodes[1], &stray) && nodes[2].get(&k).is_none(),
    )
    .await;
    // Node 2's own entries and those it replicates stay.
    let own = entry(&key_of(&nodes, 2, "own"), Some("v"), 5_000, 1);
    let replicated = entry(&key_of(&nodes, 1, "replicated"), Some("v"), 5_000, 1);
    nodes[2].put(&own);
    nodes[2].put(&replicated);
    let gc_rounds = Duration::from_millis(100) * 12;
    tokio::time::sleep(gc_rounds).await;
    assert!(holds(&nodes[2], &own) && holds(&nodes[2], &replicated));
}

/// The exchange a join runs, by itself: a pull brings exactly the peer's entries of the range
/// that this node lacks or holds older, and sends nothing back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_brings_the_range_and_sends_nothing() {
    let nodes = ring(2, config(2, Duration::from_secs(3600))).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    // The range (b, a]: a's own.
    let range = (b.node.me().id, a.node.me().id);
    let theirs: Vec<Entry> = (0..40)
        .map(|i| {
            entry(
                &key_of(&nodes, 0, &format!("theirs-{i}")),
                Some("v"),
                5_000,
                1,
            )
        })
        .collect();
    for e in &theirs {
        b.put(e);
    }
    // Older on a: replaced. Newer on a: kept, and not sent to b.
    a.put(&entry(&theirs[0].key, Some("older"), 9_000, 1));
    let newer = entry(&theirs[1].key, Some("newer"), 1_000, 2);
    a.put(&newer);
    let only_ours = entry(&key_of(&nodes, 0, "only-ours"), Some("v"), 5_000, 1);
    a.put(&only_ours);
    // Outside the range: never pulled.
    let outside = entry(&key_of(&nodes, 1, "outside"), Some("v"), 5_000, 1);
    b.put(&outside);

    let done = a
        .node
        .sync_range(b.node.me(), range, crate::antientropy::Direction::Pull)
        .await
        .expect("sync");
    assert_eq!(done.pushed, 0);
    assert!(done.differing >= 1);
    for e in &theirs[2..] {
        assert!(holds(a, e));
    }
    assert!(holds(a, &theirs[0]));
    assert!(holds(a, &newer));
    assert!(a.get(&outside.key).is_none());
    assert!(b.get(&only_ours.key).is_none());
    assert!(holds(b, &theirs[1]), "a pull changed the peer");
    // Now a second pull finds nothing new to take: only the newer entry and `only_ours`
    // still differ, and what comes over is already older here.
    let again = a
        .node
        .sync_range(b.node.me(), range, crate::antientropy::Direction::Pull)
        .await
        .expect("sync");
    assert_eq!(again.pushed, 0);
    assert!(holds(a, &newer));
}

/// The bytes one round exchanges for a range of 1,000,000 keys that are identical on its
/// replicas: one `DigestRequest` and one `DigestReply` per replica (no entries move), and
/// r − 1 = 2 replicas with the default factor 3. The reply's size depends only on the
/// bucket count, which is at most `DIGEST_BUCKETS` whatever the range and the key count; the
/// worst case is a range needing exactly 2048 buckets (the whole ring). To see the figures:
/// `cargo test -p dht-node --lib bytes_per_round -- --nocapture`.
#[test]
fn bytes_per_round_for_a_million_identical_keys() {
    let space = dht_core::IdSpace::default();
    let me = space.hash(b"me");
    for (what, from) in [
        ("a typical range", space.hash(b"predecessor")),
        ("the worst case", me),
    ] {
        let b = dht_core::digest::Buckets::new(space, from, me, crate::antientropy::DIGEST_BUCKETS);
        let req = pb::DigestRequest {
            from: crate::convert::id_bytes(from),
            to: crate::convert::id_bytes(me),
            buckets: crate::antientropy::DIGEST_BUCKETS,
        };
        // A million keys fill every bucket: every digest non-zero.
        let reply = pb::DigestReply {
            digests: vec![u64::MAX; b.count()],
            entries: 1_000_000,
        };
        let per_replica = req.encoded_len() + reply.encoded_len();
        let per_round = per_replica * 2;
        println!(
            "{what}: {} buckets; request {} B, reply {} B; {per_replica} B per replica, \
             {per_round} B per round with r = 3",
            b.count(),
            req.encoded_len(),
            reply.encoded_len()
        );
        assert!(b.count() > 1024 && b.count() <= 2048);
        assert!(per_round < 1024 * 1024, "{per_round} bytes");
        // fixed64 digests: 8 bytes each, packed, plus a few bytes of framing.
        assert!(reply.encoded_len() >= 8 * b.count());
    }
}
