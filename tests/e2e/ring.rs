//! A working ring: keys put through the client are read back from every node across joins
//! and graceful leaves, and lookups agree with a reference computed from the node ids.

use std::time::Duration;

use dht_client::Client;
use dht_core::{successor_in, IdSpace, Peer};
use futures::stream::{self, StreamExt};

use crate::harness::{dhtctl, ring, ring_is_stable, wait_until, Node};

const KEYS: usize = 1000;

fn key(i: usize) -> String {
    format!("key-{i:04}")
}

fn value(i: usize) -> String {
    format!("value-{i}-{}", i * 7919)
}

async fn put_all(c: &Client) {
    stream::iter(0..KEYS)
        .for_each_concurrent(32, |i| async move {
            c.put(key(i).as_bytes(), value(i).as_bytes(), None)
                .await
                .unwrap_or_else(|e| panic!("put {}: {e}", key(i)));
        })
        .await;
}

/// Reads every key through `c`; returns the keys that were missing or wrong.
async fn missing(c: &Client) -> Vec<String> {
    stream::iter(0..KEYS)
        .map(|i| async move {
            match c.get(key(i).as_bytes()).await {
                Ok(Some(v)) if v.value == value(i).as_bytes() => None,
                other => Some(format!("{} -> {other:?}", key(i))),
            }
        })
        .buffer_unordered(32)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

async fn assert_all_readable_from(nodes: &[&Node]) {
    for n in nodes {
        let c = n.client().await;
        let bad = missing(&c).await;
        assert!(
            bad.is_empty(),
            "via {}: {} keys bad, e.g. {:?}",
            n.addr,
            bad.len(),
            &bad[..bad.len().min(3)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_keep_every_key_through_a_join_and_a_leave() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let mut nodes = ring(5, &[]).await;
        let c = nodes[1].client().await;
        put_all(&c).await;
        assert_all_readable_from(&nodes.iter().collect::<Vec<_>>()).await;

        // Lookups agree with the reference: successor(id(key)) over the node ids.
        let space = IdSpace::default();
        let mut ids: Vec<Peer> = nodes.iter().map(|n| n.peer(space)).collect();
        ids.sort_by_key(|p| p.id);
        for i in (0..KEYS).step_by(37) {
            let want = successor_in(&ids, space.hash(key(i).as_bytes()))
                .addr
                .to_string();
            for n in &nodes {
                let r = n
                    .client()
                    .await
                    .lookup(key(i).as_bytes())
                    .await
                    .expect("lookup");
                assert_eq!(r.owner.addr, want, "lookup of {} via {}", key(i), n.addr);
            }
        }

        // A sixth node joins.
        let boot = nodes[2].addr.clone();
        nodes.push(Node::start(&["--bootstrap", &boot]));
        {
            let refs: Vec<&Node> = nodes.iter().collect();
            wait_until(Duration::from_secs(60), "six-node ring", || {
                ring_is_stable(&refs)
            })
            .await;
            assert_all_readable_from(&refs).await;
        }

        // One node leaves gracefully on SIGTERM and exits 0.
        let mut gone = nodes.remove(3);
        let status = gone.terminate();
        assert!(
            status.success(),
            "SIGTERM exit {status:?}\n{}",
            gone.log_text()
        );
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_until(
            Duration::from_secs(60),
            "five-node ring after the leave",
            || ring_is_stable(&refs),
        )
        .await;
        assert_all_readable_from(&refs).await;
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dhtctl_join_and_leave_move_the_keys() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let a = Node::start(&[]);
        let mut b = Node::start(&[]);
        let ca = a.client().await;
        put_all(&ca).await;

        let out = dhtctl(Some(&b.addr), &["join", &a.addr]);
        assert!(
            out.status.success(),
            "join: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = [&a, &b];
        wait_until(Duration::from_secs(30), "two-node ring", || {
            ring_is_stable(&pair)
        })
        .await;
        let cb = b.client().await;
        assert!(missing(&cb).await.is_empty());
        let info = cb.info().await.expect("info");
        assert!(info.keys > 0, "the joiner received no keys");

        // Joining again is refused: it is already a member.
        let out = dhtctl(Some(&b.addr), &["join", &a.addr]);
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = dhtctl(Some(&b.addr), &["leave"]);
        assert!(
            out.status.success(),
            "leave: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st = b.wait_exit(Duration::from_secs(30));
        assert!(st.success());
        assert!(missing(&ca).await.is_empty());
        assert_eq!(ca.info().await.expect("info").successors.len(), 0);
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_many_streams_keys_to_their_owners() {
    tokio::time::timeout(Duration::from_secs(120), async {
        // One copy per key: with replicas, anti-entropy would (rightly) copy keys to
        // non-owners and the count below would no longer tell how the stream was split.
        let nodes = ring(3, &["--replication-factor", "1"]).await;
        let c = nodes[0].client().await;
        let items: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
            .map(|i| (key(i).into_bytes(), value(i).into_bytes()))
            .collect();
        let stored = c.put_many(items).await.expect("put_many");
        assert_eq!(stored, KEYS as u64);
        assert_all_readable_from(&nodes.iter().collect::<Vec<_>>()).await;
        // Every node holds only keys it owns: the stream was split by owner.
        let total: u64 = futures::future::join_all(
            nodes
                .iter()
                .map(|n| async move { n.client().await.info().await.expect("info").keys }),
        )
        .await
        .into_iter()
        .sum();
        assert_eq!(total, KEYS as u64);
        // A bad entry in the stream fails the call with INVALID_ARGUMENT.
        let bad = vec![(Vec::new(), b"v".to_vec())];
        assert!(matches!(
            c.put_many(bad).await,
            Err(dht_client::ClientError::InvalidArgument(_))
        ));
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_that_joins_sends_keys_it_does_not_own_to_their_owner() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let a = Node::start(&[]);
        let b = Node::start(&[]);
        let (ca, cb) = (a.client().await, b.client().await);
        // Two separate one-node rings, each with its own keys.
        for i in 0..200 {
            ca.put(format!("a-{i}").as_bytes(), b"from-a", None)
                .await
                .expect("put a");
            cb.put(format!("b-{i}").as_bytes(), b"from-b", None)
                .await
                .expect("put b");
        }
        let out = dhtctl(Some(&b.addr), &["join", &a.addr]);
        assert!(
            out.status.success(),
            "join: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pair = [&a, &b];
        wait_until(Duration::from_secs(30), "two-node ring", || {
            ring_is_stable(&pair)
        })
        .await;
        // b's keys that a now owns were sent to a; a's keys that b owns were pulled by b.
        for c in [&ca, &cb] {
            wait_until(Duration::from_secs(30), "every key readable", || async {
                for i in 0..200 {
                    for (k, v) in [(format!("a-{i}"), b"from-a"), (format!("b-{i}"), b"from-b")] {
                        match c.get(k.as_bytes()).await {
                            Ok(Some(got)) if got.value == v => {}
                            _ => return false,
                        }
                    }
                }
                true
            })
            .await;
        }
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_ring_that_loses_a_node_relinks_the_two_survivors() {
    // docs/protocol.md small-ring rule, through real processes: after a crash (SIGKILL, no leave)
    // every successor list holds exactly the two survivors, and they keep serving.
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut nodes = ring(3, &[]).await;
        let mut victim = nodes.remove(1);
        victim.kill();
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_until(Duration::from_secs(60), "the survivors to relink", || {
            ring_is_stable(&refs)
        })
        .await;
        let c = nodes[0].client().await;
        for i in 0..50 {
            c.put(key(i).as_bytes(), value(i).as_bytes(), None)
                .await
                .expect("put after crash");
        }
        for n in &nodes {
            let c = n.client().await;
            for i in 0..50 {
                let v = c
                    .get(key(i).as_bytes())
                    .await
                    .expect("get")
                    .expect("present");
                assert_eq!(v.value, value(i).as_bytes());
            }
        }
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_before_the_ring_noticed_rejoins_instead_of_claiming_everything() {
    // A kill -9 and an immediate restart: the ring still lists the node. It must rejoin at its
    // old place, not start as a ring of one that accepts writes for every key.
    tokio::time::timeout(Duration::from_secs(180), async {
        // Slow maintenance, so that between the kill and the restart nothing can notice the
        // crash: the crashed node's predecessor stabilizes only every 3 s (it would then
        // notify the successor, which would check and replace its dead predecessor), and the
        // successor never runs check-predecessor on its own. Requests may then wait up to 8 s
        // for the ring to converge after the rejoin (routing retries within `timeout`).
        let slow = [
            "--stabilize-interval-ms",
            "3000",
            "--fix-fingers-interval-ms",
            "3000",
            "--check-predecessor-interval-ms",
            "600000",
            // Routing retries while the ring converges, up to this long: more than a round.
            "--timeout",
            "8",
        ];
        let mut nodes = ring(3, &slow).await;
        let c0 = nodes[0].client().await;
        put_all(&c0).await;
        let boot = nodes[0].addr.clone();
        let crashed = nodes[1].addr.clone();
        let mut successor = None;
        for n in &nodes {
            let info = n.client().await.info().await.expect("info");
            if info.predecessor.is_some_and(|p| p.addr == crashed) {
                successor = Some(n.client().await);
            }
        }
        let successor = successor.expect("a stable ring has the node as someone's predecessor");
        nodes[1].kill();
        let pred = successor
            .info()
            .await
            .expect("info")
            .predecessor
            .map(|p| p.addr);
        assert_eq!(
            pred,
            Some(crashed.clone()),
            "the ring noticed the crash before the restart, so this test would not test a \
             restart the ring has not noticed"
        );
        nodes[1].restart(&["--bootstrap", &boot]);
        // dhtd prints its address before it has joined; wait until its tasks run.
        let c1 = nodes[1].client().await;
        let joined = tokio::time::timeout(Duration::from_secs(60), async {
            while !c1.info().await.is_ok_and(|i| !i.tasks.is_empty()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            joined.is_ok(),
            "the restarted node did not join:\n{}",
            nodes[1].log_text()
        );
        let info = c1.info().await.expect("info");
        assert!(
            !info.successors.is_empty(),
            "the restarted node believes it is alone: {info:?}"
        );
        // Writes through the restarted node land at the true owners.
        for i in 0..100 {
            c1.put(key(i).as_bytes(), b"after-restart", None)
                .await
                .expect("put via restarted node");
        }
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_until(Duration::from_secs(60), "the ring to settle", || {
            ring_is_stable(&refs)
        })
        .await;
        for n in &refs {
            let c = n.client().await;
            for i in 0..KEYS {
                let want: Vec<u8> = if i < 100 {
                    b"after-restart".to_vec()
                } else {
                    value(i).into_bytes()
                };
                let got = c.get(key(i).as_bytes()).await.expect("get");
                assert_eq!(
                    got.map(|v| v.value),
                    Some(want),
                    "{} via {}",
                    key(i),
                    n.addr
                );
            }
        }
    })
    .await
    .expect("test exceeded its time bound");
}
