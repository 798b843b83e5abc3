//! Quorums through the real binaries (issue 9, item 2): per-request levels from `dhtctl`,
//! what a put and a get report, and a quorum that cannot be reached is a clear error that
//! says how many replicas answered, never a success.

use std::time::Duration;

use crate::harness::{dhtctl, ring};

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_levels_report_their_counts_and_an_unreachable_quorum_is_unavailable() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let nodes = ring(3, &[]).await;
        let a = nodes[0].addr.as_str();

        let o = dhtctl(Some(a), &["put", "qk", "v1", "--quorum", "all", "--json"]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{err}");
        assert!(
            out.contains("\"acks\":3") && out.contains("\"replicas\":3"),
            "{out}"
        );

        let o = dhtctl(Some(a), &["lookup", "qk", "--json"]);
        let (out, _) = text(&o);
        for n in &nodes {
            assert!(
                out.contains(&n.addr),
                "every node is a replica of a 3-node ring: {out}"
            );
        }

        let c = nodes[1].client().await;
        let r = c
            .get_with(b"qk", dht_client::Quorum::All)
            .await
            .expect("get all");
        assert_eq!((r.answered, r.agreed), (3, 3));
        assert_eq!(r.value.expect("found").value, b"v1");

        // Two replicas stop answering (paused, not yet presumed dead): a write that needs all
        // three cannot succeed, and says how many answered.
        nodes[1].signal("STOP");
        nodes[2].signal("STOP");
        let o = dhtctl(
            Some(a),
            &["--timeout", "10", "put", "qk", "v2", "--quorum", "all"],
        );
        let (_, err) = text(&o);
        nodes[1].signal("CONT");
        nodes[2].signal("CONT");
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains("replicas answered"), "{err}");
        assert!(err.contains("3 needed"), "{err}");

        // A quorum of one through the node that holds the key still answers.
        let o = dhtctl(Some(a), &["get", "qk", "--quorum", "one"]);
        assert!(o.status.success(), "{}", text(&o).1);
        // The bad level is a usage error.
        let o = dhtctl(Some(a), &["get", "qk", "--quorum", "two"]);
        assert_eq!(o.status.code(), Some(2));
    })
    .await
    .expect("test exceeded its time bound");
}
