//! Issue 7: one bootstrap list for every machine. Nodes started together (or in any order)
//! with the same list, their own address included, form one ring; after every node is killed
//! at once and restarted with its data, the ring re-forms and every key reads back; a node
//! whose bootstraps do not answer waits NOT_SERVING (refusing writes) instead of exiting.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dht_client::Client;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::harness::{dhtctl, free_addrs, ring_is_stable, wait_until, Node};
use crate::storage::{assert_latest_everywhere, write_everything};

/// The whole list, comma-separated, as every machine's config would carry it.
fn shared_list(addrs: &[String]) -> String {
    addrs.join(",")
}

/// Starts one node per address, each with the shared list, in the given order.
fn start_all(addrs: &[String], order: &[usize], delays_ms: &[u64]) -> Vec<(usize, Node)> {
    let list = shared_list(addrs);
    let handles: Vec<_> = order
        .iter()
        .zip(delays_ms)
        .map(|(&i, &delay)| {
            let (addr, list) = (addrs[i].clone(), list.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(delay));
                (i, Node::start_at(&addr, &["--bootstrap", &list]))
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("start thread"))
        .collect()
}

/// The nodes in address order, whatever order they were started in.
fn by_address(mut started: Vec<(usize, Node)>) -> Vec<Node> {
    started.sort_by_key(|(i, _)| *i);
    started.into_iter().map(|(_, n)| n).collect()
}

async fn assert_one_ring_serving(nodes: &[Node], what: &str) {
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(Duration::from_secs(60), what, || ring_is_stable(&refs)).await;
    // Every node answers for every key: a write through one reads back through all.
    let key = format!("cold-{}", nodes.len());
    let first = nodes[0].client().await;
    first
        .put(key.as_bytes(), b"formed", None)
        .await
        .unwrap_or_else(|e| panic!("put after {what}: {e}"));
    for n in nodes {
        let got = n.client().await.get(key.as_bytes()).await;
        assert!(
            matches!(&got, Ok(Some(v)) if v.value == b"formed"),
            "{what}: get through {} gave {got:?}",
            n.addr
        );
    }
}

/// A pseudo-random sequence seeded from the clock, printed so a failure can be replayed.
fn delays(n: usize, max_ms: u64) -> Vec<u64> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64
        | 1;
    let out: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % max_ms
        })
        .collect();
    eprintln!("start delays (ms): {out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_started_together_with_one_shared_list_form_one_ring() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let addrs = free_addrs(3);
        let nodes = by_address(start_all(&addrs, &[0, 1, 2], &[0, 0, 0]));
        assert_one_ring_serving(&nodes, "three nodes started together").await;
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_started_together_with_one_shared_list_form_one_ring() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let addrs = free_addrs(5);
        let nodes = by_address(start_all(&addrs, &[0, 1, 2, 3, 4], &[0; 5]));
        assert_one_ring_serving(&nodes, "five nodes started together").await;
        // Exactly one node started the ring; the others joined it.
        let starters = nodes
            .iter()
            .filter(|n| n.log_text().contains("starting the ring"))
            .count();
        assert_eq!(starters, 1, "nodes that started a ring");
    })
    .await
    .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_started_in_reverse_order_with_random_delays_form_one_ring() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let addrs = free_addrs(5);
        let nodes = by_address(start_all(&addrs, &[4, 3, 2, 1, 0], &delays(5, 2000)));
        assert_one_ring_serving(&nodes, "five nodes started in reverse, staggered").await;
    })
    .await
    .expect("test exceeded its time bound");
}

/// The power cut: a ring holding 10,000 keys loses every node at once (SIGKILL); all restart
/// together with their data, in shuffled order, each with the same list. The ring re-forms
/// and every key reads back, with its latest value, through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ring_killed_at_once_and_restarted_together_gives_every_key_back() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let addrs = free_addrs(3);
        let mut nodes = by_address(start_all(&addrs, &[0, 1, 2], &[0, 0, 0]));
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_until(Duration::from_secs(60), "the first ring", || {
            ring_is_stable(&refs)
        })
        .await;
        let mut clients: Vec<Client> = Vec::new();
        for n in &nodes {
            clients.push(n.client().await);
        }
        write_everything(&clients).await;
        drop(clients);

        for n in nodes.iter_mut() {
            n.kill();
        }
        let order = {
            let d = delays(3, 1000);
            let mut o: Vec<usize> = (0..3).collect();
            o.sort_by_key(|&i| d[i]);
            o
        };
        let restarted = Instant::now();
        // Restart in parallel: each restart returns as soon as the node listens.
        std::thread::scope(|s| {
            let mut slots: Vec<Option<&mut Node>> = nodes.iter_mut().map(Some).collect();
            for i in order {
                let n = slots[i].take().expect("each node once");
                s.spawn(move || n.restart(&[]));
            }
        });
        let refs: Vec<&Node> = nodes.iter().collect();
        wait_until(Duration::from_secs(60), "the ring to re-form", || {
            ring_is_stable(&refs)
        })
        .await;
        eprintln!("ring re-formed {:?} after the restart", restarted.elapsed());
        let refs: Vec<&Node> = nodes.iter().collect();
        assert_latest_everywhere(&refs, "after a power cut and a concurrent restart").await;
        eprintln!(
            "every key read back {:?} after the restart",
            restarted.elapsed()
        );
    })
    .await
    .expect("test exceeded its time bound");
}

/// A node whose bootstraps are all down keeps waiting: it stays up, reports NOT_SERVING,
/// refuses writes as unavailable (it does not know what it owns), and says so in its log.
/// When a listed node comes up, the two agree and form a ring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_bootstraps_are_down_waits_not_serving_then_forms_the_ring() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let addrs = free_addrs(2);
        let list = shared_list(&addrs);
        let waiting = Node::start_at(&addrs[0], &["--bootstrap", &list]);
        wait_until(
            Duration::from_secs(30),
            "the waiting line in the log",
            || {
                let found = waiting.log_text().contains("no bootstrap node answers");
                async move { found }
            },
        )
        .await;
        assert_eq!(
            kv_health(&waiting.addr).await,
            ServingStatus::NotServing as i32
        );
        let o = dhtctl(Some(&waiting.addr), &["--timeout", "5", "put", "k", "v"]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "a waiting node must refuse writes as unavailable: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut waiting = waiting;
        assert!(
            waiting.child.try_wait().expect("try_wait").is_none(),
            "the node must keep waiting, not exit"
        );

        let other = Node::start_at(&addrs[1], &["--bootstrap", &list]);
        let nodes = [waiting, other];
        assert_one_ring_serving(&nodes, "the ring after the second node came up").await;
        assert_eq!(
            kv_health(&nodes[0].addr).await,
            ServingStatus::Serving as i32
        );
    })
    .await
    .expect("test exceeded its time bound");
}

/// The gRPC health status of `dht.v1.Kv` at `addr` (-1 if the call fails).
async fn kv_health(addr: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "dht.v1.Kv".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}
