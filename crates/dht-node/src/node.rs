//! The node: shared state, the server, and the lifecycle (join, serve, leave).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dht_core::{ChordConfig, Id, IdSpace, NodeState, Peer};
use dht_proto::v1::kv_server::KvServer;
use dht_proto::v1::peer_server::PeerServer;
use dht_store::{Entry, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::hlc::Hlc;
use crate::pool::PeerPool;
use crate::{NodeConfig, NodeError};

/// A running node. Cheap to share: everything lives behind an `Arc`.
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) chord: ChordConfig,
    pub(crate) me: Peer,
    /// The Chord tables. A std mutex: every critical section is a few table operations and
    /// never spans an `.await`.
    pub(crate) state: Mutex<NodeState>,
    /// Taken shared by every local read or write of owned keys and exclusively whenever the
    /// predecessor changes in a way that hands part of our range away, so a handoff cannot
    /// miss a write that was in flight when ownership moved.
    pub(crate) ownership: tokio::sync::RwLock<()>,
    /// Held shared by a key push arriving at this node, exclusively (briefly) by a leave, so a
    /// leave never scans its store while entries are still arriving. Separate from
    /// `ownership` so a long transfer does not hold up client requests.
    pub(crate) leave_gate: tokio::sync::RwLock<()>,
    /// False while joining (keys not yet received) and once leaving began.
    pub(crate) serving: AtomicBool,
    pub(crate) left: AtomicBool,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) pool: Arc<PeerPool>,
    /// Per-peer batching of forwarded operations.
    pub(crate) coalescer: crate::coalesce::Coalescer,
    pub(crate) hlc: Hlc,
    /// Cancelled to stop the whole node (signal, or a `Leave` request).
    pub(crate) shutdown: CancellationToken,
    /// Cancelled to stop the maintenance tasks (first thing a leave does).
    pub(crate) tasks_stop: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) task_names: Mutex<Vec<&'static str>>,
    /// Metric handles, registered with whatever recorder was installed when the node was made.
    pub(crate) metrics: crate::telemetry::Metrics,
    /// gRPC health, kept in step with `serving` and `left`.
    pub(crate) health: crate::health::Health,
    /// The cold start in progress, if any: what probes answer while we wait.
    pub(crate) cold: crate::coldstart::Board,
}

impl Node {
    pub fn new(
        cfg: NodeConfig,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<Arc<Node>, NodeError> {
        let chord = cfg.chord()?;
        let me = Peer::from_addr(chord.space, &cfg.advertise);
        let state = NodeState::new(chord, me.clone());
        let pool = Arc::new(PeerPool::new(cfg.timeout));
        let tasks_stop = shutdown.child_token();
        let metrics = crate::telemetry::Metrics::new();
        Ok(Arc::new(Node {
            coalescer: crate::coalesce::Coalescer::new(
                pool.clone(),
                tasks_stop.clone(),
                metrics.apply_batch_size.clone(),
            ),
            metrics,
            health: crate::health::Health::new(),
            cold: crate::coldstart::Board::new(),
            pool,
            hlc: Hlc::new(me.id.low_u64()),
            state: Mutex::new(state),
            ownership: tokio::sync::RwLock::new(()),
            leave_gate: tokio::sync::RwLock::new(()),
            serving: AtomicBool::new(true),
            left: AtomicBool::new(false),
            tasks_stop,
            shutdown,
            tasks: TaskTracker::new(),
            task_names: Mutex::new(Vec::new()),
            store,
            chord,
            me,
            cfg,
        }))
    }

    pub fn me(&self) -> &Peer {
        &self.me
    }

    pub fn space(&self) -> IdSpace {
        self.chord.space
    }

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the Chord tables, for `info` and tests.
    pub fn snapshot(&self) -> NodeState {
        self.state().clone()
    }

    pub(crate) fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    /// Serves `listener` until the shutdown token is cancelled, joining the ring through
    /// `bootstrap` first (an empty list, or one naming only this node, starts a new ring; a
    /// list of nodes that are all still waiting starts one by the cold-start rule). On shutdown the node leaves
    /// gracefully: keys to the successor, neighbours relinked. Besides `Peer` and `Kv` the
    /// server answers `grpc.health.v1.Health`, SERVING only between join and leave.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        bootstrap: Vec<String>,
    ) -> Result<(), NodeError> {
        let server_stop = CancellationToken::new();
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let peer_svc = PeerServer::new(crate::service::PeerService(self.clone()))
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024);
        let kv_svc = KvServer::new(crate::service::KvService(self.clone()))
            .max_decoding_message_size(8 * 1024 * 1024)
            .max_encoding_message_size(8 * 1024 * 1024);
        // Not serving until the join below has brought this node its range.
        self.publish_not_serving().await;
        let health_svc = self.health.server();
        let stop = server_stop.clone();
        let server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(peer_svc)
                .add_service(kv_svc)
                .add_service(health_svc)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        });

        let bootstrap: Vec<String> = bootstrap
            .into_iter()
            .filter(|b| *b != self.cfg.advertise)
            .collect();
        // With bootstrap addresses, wait for a ring to join, or start it if the cold-start
        // rule says so (docs/protocol.md, "Cold start"); without, start a new ring.
        if !bootstrap.is_empty() {
            if let Err(e) = self.cold_start(&bootstrap).await {
                server_stop.cancel();
                let _ = server.await;
                return Err(e);
            }
            if self.shutdown.is_cancelled() {
                // Told to stop while still waiting: nothing to hand over, nobody to tell.
                server_stop.cancel();
                let _ = server.await;
                return Ok(());
            }
        }
        self.publish_health().await;
        info!(id = %self.me.id, addr = %self.me.addr, "serving");
        crate::maintenance::spawn_all(&self);
        self.spawn_rehome();

        self.shutdown.cancelled().await;
        if let Err(e) = self.leave().await {
            warn!(error = %e, "leave was cut short; the ring will treat this node as failed");
        }
        self.tasks_stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
        server_stop.cancel();
        match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::Internal(format!("server: {e}"))),
            Err(e) => Err(NodeError::Internal(format!("server task: {e}"))),
        }
    }

    // -------------------------------------------------------------- storage on a blocking thread

    pub(crate) async fn store_apply(&self, entries: Vec<Entry>) -> Result<Vec<bool>, NodeError> {
        blocking(&self.store, move |s| s.apply(&entries)).await
    }

    pub(crate) async fn store_get(&self, id: Id, key: Vec<u8>) -> Result<Option<Entry>, NodeError> {
        blocking(&self.store, move |s| s.get(id, &key)).await
    }

    pub(crate) async fn store_scan(
        &self,
        from: Id,
        to: Id,
        after: Option<(Id, Vec<u8>)>,
        limit: usize,
    ) -> Result<Vec<Entry>, NodeError> {
        blocking(&self.store, move |s| s.scan(from, to, after, limit)).await
    }

    pub(crate) async fn store_remove(
        &self,
        entries: Vec<(Id, Vec<u8>, dht_store::Version)>,
    ) -> Result<usize, NodeError> {
        blocking(&self.store, move |s| s.remove_versions(&entries)).await
    }
}

/// Runs one storage call on a blocking thread: engines block (a durable one waits for its
/// commit), and async tasks must not.
pub(crate) async fn blocking<T, F>(store: &Arc<dyn Store>, call: F) -> Result<T, NodeError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, dht_store::StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(store.as_ref()))
        .await
        .map_err(|e| NodeError::Internal(format!("storage task: {e}")))?
        .map_err(NodeError::from)
}
