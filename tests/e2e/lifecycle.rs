//! Issue 8, item 7: a stop that cannot finish its leave says so. A node whose successor hangs
//! (SIGSTOP) cannot hand its keys over; on SIGTERM it gives up within its shutdown deadline
//! and exits non-zero with one clear line, instead of exiting 0 as if it had left cleanly.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{ring, Node};

/// Sends `signal` (e.g. "-STOP") to the node's process.
fn signal(node: &Node, signal: &str) {
    let st = Command::new("kill")
        .args([signal, &node.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill {signal} failed");
}

/// Resumes a stopped process when dropped, so a failing assertion never leaves it frozen.
struct Resume<'a>(&'a Node);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_whose_keys_no_successor_accepted_exits_non_zero_within_the_deadline() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let mut nodes = ring(2, &["--shutdown-timeout-s", "6"]).await;
        let c = nodes[0].client().await;
        for i in 0..20 {
            c.put(format!("k{i}").as_bytes(), b"v", None)
                .await
                .unwrap_or_else(|e| panic!("put: {e}"));
        }
        drop(c);
        let (leaver, successor) = nodes.split_at_mut(1);
        signal(&successor[0], "-STOP");
        let _resume = Resume(&successor[0]);
        let began = Instant::now();
        let status = leaver[0].terminate();
        let took = began.elapsed();
        let log = leaver[0].log_text();
        assert_eq!(
            status.code(),
            Some(3),
            "a leave cut short must exit 3, not {status:?}\n{log}"
        );
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("dhtd: leave was cut short"),
            "the last line must say why: {last:?}"
        );
        // Bounded by the deadline (6 s) plus process start-up slack, never by the hung peer.
        assert!(took < Duration::from_secs(60), "stop took {took:?}");
    })
    .await
    .expect("test exceeded its time bound");
}
