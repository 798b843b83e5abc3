//! Versions you can trust (issue 9, item 3), through real processes: no program that speaks
//! the `Peer` service can plant a version from the future, and a write is acknowledged only
//! once it is the newest version on the replicas that acknowledged it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dht_proto::v1 as pb;
use dht_proto::v1::peer_client::PeerClient;

use crate::harness::ring;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn entry(key: &str, value: &str, hlc: u64) -> pb::Entry {
    pb::Entry {
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        version: Some(pb::Version { hlc, node: 7 }),
        deleted: false,
        expires_at_ms: 0,
    }
}

async fn peer(addr: &str) -> PeerClient<tonic::transport::Channel> {
    PeerClient::connect(format!("http://{addr}"))
        .await
        .expect("connect to the Peer service")
}

fn reason(r: &pb::OpResult) -> pb::Reason {
    r.detail.clone().unwrap_or_default().reason()
}

/// The measurement of the issue: an `Apply` or `PushEntries` carrying `hlc = 2^63` used to be
/// stored, after which every `put` of the key was acknowledged and had no effect. Now every
/// path refuses it, and the key stays writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_from_the_future_are_refused_on_every_path() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let nodes = ring(3, &[]).await;
        let c = nodes[0].client().await;
        c.put(b"k7", b"before", None).await.expect("put");
        let future = 1u64 << 63;
        for n in &nodes {
            let mut p = peer(&n.addr).await;
            // A replica write, a forwarded (coordinated) write: both refused, naming why.
            for replica in [true, false] {
                let reply = p
                    .apply(pb::ApplyRequest {
                        ops: vec![pb::Op {
                            op: Some(pb::op::Op::Put(entry("k7", "planted", future))),
                            replica,
                            ..Default::default()
                        }],
                    })
                    .await
                    .expect("apply answers")
                    .into_inner();
                let r = &reply.results[0];
                // A forwarded write reaches a node that may not own the key: then it is
                // refused for that first, and the owner refuses it for the version.
                if !replica && reason(r) == pb::Reason::NotOwner {
                    continue;
                }
                assert_eq!(reason(r), pb::Reason::ClockSkew, "{} {r:?}", n.addr);
                assert_ne!(r.code, 0);
            }
            // A transfer: the entry is dropped, not stored.
            let pushed = p
                .push_entries(futures::stream::iter(vec![entry("k7", "pushed", future)]))
                .await;
            assert!(pushed.is_ok(), "push answered: {pushed:?}");
        }
        for n in &nodes {
            let local = n.client().await.get_local(b"k7").await.expect("local read");
            let local = local.expect("k7 stored on every replica of a 3-node ring");
            assert_eq!(local.value.as_deref(), Some(&b"before"[..]), "{}", n.addr);
            assert!(local.version.0 < future);
        }
        // The key is still writable, through every node.
        for (i, n) in nodes.iter().enumerate() {
            let c = n.client().await;
            let v = format!("after-{i}");
            c.put(b"k7", v.as_bytes(), None).await.expect("put");
            let got = c.get(b"k7").await.expect("get").expect("found");
            assert_eq!(got.value, v.as_bytes());
        }
    })
    .await
    .expect("test exceeded its time bound");
}

/// A replica that holds a newer version of a key (a peer whose clock runs ahead, within the
/// allowed skew) refuses an older write and names its version; the coordinator stamps the
/// write again above it, so the put that is acknowledged is the value every later read
/// returns, on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_put_is_the_newest_version_on_its_replicas() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let nodes = ring(3, &[]).await;
        // 20 s ahead of our clock: within the default 60 s skew.
        let ahead = (now_ms() + 20_000) << 16;
        let mut p = peer(&nodes[1].addr).await;
        let reply = p
            .apply(pb::ApplyRequest {
                ops: vec![pb::Op {
                    op: Some(pb::op::Op::Put(entry("skewed", "from-a-fast-clock", ahead))),
                    replica: true,
                    ..Default::default()
                }],
            })
            .await
            .expect("apply")
            .into_inner();
        assert_eq!(reply.results[0].code, 0, "{:?}", reply.results[0]);

        let c = nodes[0].client().await;
        let w = c
            .put_with(b"skewed", b"client", None, dht_client::Quorum::All)
            .await
            .expect("put with every replica");
        assert!(w.version > ahead, "restamped above the newer version");
        assert_eq!(w.acks, 3);
        for n in &nodes {
            let local = n
                .client()
                .await
                .get_local(b"skewed")
                .await
                .expect("local read")
                .expect("stored");
            assert_eq!(local.value.as_deref(), Some(&b"client"[..]), "{}", n.addr);
        }
        let got = c.get(b"skewed").await.expect("get").expect("found");
        assert_eq!(got.value, b"client");
    })
    .await
    .expect("test exceeded its time bound");
}
