//! A node restarted with its data but without `--bootstrap` rejoins the ring it remembers
//! (the members kept in its data directory), instead of serving a ring of its own; starting
//! a new ring from old data takes `--new-ring`.

use std::time::Duration;

use crate::harness::{ring, ring_is_stable, wait_until, Node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_without_bootstrap_rejoins_its_remembered_ring() {
    tokio::time::timeout(Duration::from_secs(120), async {
        // The first node was started without --bootstrap: a restart of it used to start a
        // new, separate ring.
        let mut nodes = ring(3, &[]).await;
        let c = nodes[1].client().await;
        for i in 0..50 {
            c.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes(), None)
                .await
                .expect("put");
        }
        let members = nodes[0].data_dir.join(dht_node_members_file());
        wait_until(
            Duration::from_secs(20),
            "the members to be remembered",
            || {
                let members = members.clone();
                async move {
                    std::fs::read_to_string(&members)
                        .map(|t| t.lines().filter(|l| !l.starts_with('#')).count() == 3)
                        .unwrap_or(false)
                }
            },
        )
        .await;

        let mut first = nodes.remove(0);
        first.kill();
        // The others notice and close the ring without it, so nothing in the ring points at
        // the restarted node any more: it must find the ring itself.
        let rest = [&nodes[0], &nodes[1]];
        wait_until(
            Duration::from_secs(30),
            "the others to drop the killed node",
            || ring_is_stable(&rest),
        )
        .await;
        first.restart(&[]);
        let all: Vec<&Node> = std::iter::once(&first).chain(nodes.iter()).collect();
        wait_until(Duration::from_secs(30), "one ring of three again", || {
            ring_is_stable(&all)
        })
        .await;
        let c0 = first.client().await;
        for i in 0..50 {
            let got = c0.get(format!("k{i}").as_bytes()).await.expect("get");
            assert_eq!(
                got.map(|v| v.value),
                Some(format!("v{i}").into_bytes()),
                "k{i} through the restarted node"
            );
        }

        // With --new-ring the remembered members are ignored: the node starts a ring of its
        // own and does not look for them (nothing to probe). The others still remember its
        // address as a member presumed dead, so their probes bring it back: ring unification.
        first.kill();
        wait_until(
            Duration::from_secs(30),
            "the others to drop it again",
            || ring_is_stable(&rest),
        )
        .await;
        first.restart(&["--new-ring"]);
        let info = first.client().await.info().await.expect("info");
        assert!(info.passive.is_empty(), "probing {:?}", info.passive);
        let all: Vec<&Node> = std::iter::once(&first).chain(nodes.iter()).collect();
        wait_until(
            Duration::from_secs(30),
            "the survivors' probes to merge it back",
            || ring_is_stable(&all),
        )
        .await;
    })
    .await
    .expect("test exceeded its time bound");
}

fn dht_node_members_file() -> &'static str {
    // The file name dhtd uses (dht_node::remembered::FILE_NAME); the e2e tests link only the
    // client, so the name is spelled here and checked by the test itself.
    "members"
}
