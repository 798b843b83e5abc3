//! In-process test support shared by the node's test modules: a real [`Node`] served on a
//! loopback port with a memory store, and bounded waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dht_core::{IdSpace, Peer};
use dht_store::{MemoryStore, Store};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Node, NodeConfig, NodeError, Phase};

/// A generous bound on what a test waits for.
pub(crate) const BOUND: Duration = Duration::from_secs(20);

fn space() -> IdSpace {
    IdSpace::new(160).expect("valid hash size")
}

/// Waits until `f` holds, polling; fails the test after `bound`.
pub(crate) async fn eventually(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let polled = tokio::time::timeout(bound, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        polled.is_ok(),
        "timed out after {bound:?} waiting for: {what}"
    );
}

/// Awaits `fut`, failing the test if it takes longer than `bound` (a hang).
pub(crate) async fn bounded<T>(what: &str, bound: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(bound, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {bound:?}"),
    }
}

/// A real node served on 127.0.0.1, stopped (token cancelled, task aborted) when dropped.
pub(crate) struct TestNode {
    pub(crate) node: Arc<Node>,
    shutdown: CancellationToken,
    run: Option<JoinHandle<Result<(), NodeError>>>,
}

impl TestNode {
    /// Binds a loopback port, makes the node (memory store) and runs it with `bootstrap`.
    pub(crate) async fn start(cfg: NodeConfig, bootstrap: &[String]) -> TestNode {
        let (listener, addr) = loop {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = l.local_addr().expect("local addr").to_string();
            // A periodic task's first run is `interval × (id mod 1000) / 1000` after the start:
            // an id ≡ 0 would run `quiet()` maintenance at once.
            if !Peer::from_addr(space(), &addr)
                .id
                .low_u64()
                .is_multiple_of(1000)
            {
                break (l, addr);
            }
        };
        let shutdown = CancellationToken::new();
        let cfg = NodeConfig {
            advertise: addr,
            ..cfg
        };
        let node =
            Node::new(cfg, Arc::new(MemoryStore::new()), shutdown.clone()).expect("node config");
        let run = tokio::spawn(node.clone().run(listener, bootstrap.to_vec()));
        TestNode {
            node,
            shutdown,
            run: Some(run),
        }
    }

    /// A node alone in its own ring, serving.
    pub(crate) async fn alone(cfg: NodeConfig) -> TestNode {
        let t = TestNode::start(cfg, &[]).await;
        let n = t.node.clone();
        eventually("the lone node serves", BOUND, || {
            n.phase() == Phase::Serving
        })
        .await;
        t
    }

    pub(crate) fn me(&self) -> &Peer {
        self.node.me()
    }

    pub(crate) fn addr(&self) -> String {
        self.node.me().addr.to_string()
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.node.local.store
    }

    pub(crate) fn run_finished(&self) -> bool {
        self.run.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Stops the node. Its tables are cleared first: the fakes it knows take no keys, and a
    /// leave that tried to hand them over would only wait for the shutdown deadline.
    pub(crate) async fn stop(mut self) {
        self.node.state().reset();
        self.shutdown.cancel();
        if let Some(h) = self.run.take() {
            let abort = h.abort_handle();
            if tokio::time::timeout(BOUND, h).await.is_err() {
                abort.abort();
                panic!("the node did not stop within {BOUND:?}");
            }
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(h) = &self.run {
            h.abort();
        }
    }
}
