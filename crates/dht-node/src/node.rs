//! The node: its parts, the server, and `run` (cold start or start, serve, leave, stop).

use std::sync::{Arc, Mutex, MutexGuard};

use dht_core::{ChordConfig, IdSpace, NodeState, Peer};
use dht_proto::v1::kv_server::KvServer;
use dht_proto::v1::peer_server::PeerServer;
use dht_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::hlc::Hlc;
use crate::lifecycle::{Lifecycle, Phase};
use crate::local::Local;
use crate::peers::Peers;
use crate::pool::PeerPool;
use crate::tasks::Tasks;
use crate::{NodeConfig, NodeError};

/// How long the server may take to close its connections once the node stopped.
const SERVER_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// A running node. Cheap to share: everything lives behind an `Arc`. Each field is one role:
/// the Chord tables, where the node is in its life, the calls it makes to peers, the data it
/// stores, its background work, and how it is observed.
pub struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) chord: ChordConfig,
    pub(crate) me: Peer,
    /// The Chord tables. A std mutex: every critical section is a few table operations and
    /// never spans an `.await`.
    pub(crate) state: Mutex<NodeState>,
    /// Waiting, joining, serving, leaving, left: what the services and health ask.
    pub(crate) life: Lifecycle,
    /// Every outbound call to another node.
    pub(crate) peers: Peers,
    /// The local store, its clock and the locks that guard range moves.
    pub(crate) local: Local,
    /// Background tasks, tracked by name.
    pub(crate) tasks: Tasks,
    /// Cancelled to stop the whole node (signal, or a `Leave` request).
    pub(crate) shutdown: CancellationToken,
    /// Metric handles, registered with whatever recorder was installed when the node was made.
    pub(crate) metrics: crate::telemetry::Metrics,
    /// gRPC health, kept in step with the lifecycle.
    pub(crate) health: crate::health::Health,
    /// The cold start in progress, if any: who probed us, what we tell them.
    pub(crate) cold: crate::coldstart::Board,
    /// The ranges this node replicates for its predecessors, as their digest requests tell.
    pub(crate) replicated: crate::replica_gc::Replicated,
    /// The ring's members, kept in the data directory across restarts.
    pub(crate) remembered: crate::remembered::Remembered,
    /// This process's incarnation, and those heard from peers (ring unification).
    pub(crate) incarnations: crate::unify::Incarnations,
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
        let tasks = Tasks::new(shutdown.child_token());
        let metrics = crate::telemetry::Metrics::new();
        let peers = Peers::new(
            me.clone(),
            chord.space,
            PeerPool::new(cfg.timeout),
            tasks.clone(),
            metrics.apply_batch_size.clone(),
        );
        Ok(Arc::new(Node {
            local: Local::new(
                store,
                Hlc::new(me.id.low_u64(), cfg.max_clock_skew.as_millis() as u64),
            ),
            metrics,
            health: crate::health::Health::new(),
            cold: crate::coldstart::Board::new(),
            replicated: crate::replica_gc::Replicated::new(cfg.anti_entropy_interval),
            remembered: crate::remembered::Remembered::new(cfg.members_file.clone()),
            incarnations: crate::unify::Incarnations::new(),
            life: Lifecycle::new(),
            peers,
            tasks,
            state: Mutex::new(state),
            shutdown,
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

    /// Where the node is in its life.
    pub fn phase(&self) -> Phase {
        self.life.phase()
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
        // The server is not one of `tasks`: it must keep answering while the leave hands keys
        // over and after every task stopped, so `run` owns it, stops it last and bounds its
        // drain (`SERVER_DRAIN`).
        let mut server = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(peer_svc)
                .add_service(kv_svc)
                .add_service(health_svc)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        });

        // A list that names this node makes it eligible to start the ring (cold start).
        let listed = bootstrap.contains(&self.cfg.advertise);
        let bootstrap: Vec<String> = bootstrap
            .into_iter()
            .filter(|b| *b != self.cfg.advertise)
            .collect();
        // With bootstrap addresses, wait for a ring to join, or start it if the cold-start
        // rule says so (docs/protocol.md, "Cold start"); without, start a new ring.
        if bootstrap.is_empty() {
            self.life.set(Phase::Serving);
        } else {
            let joined = self.cold_start(&bootstrap, listed).await;
            if joined.is_err() || self.shutdown.is_cancelled() {
                // Refused, gave up, or told to stop while still waiting: nothing to hand
                // over, nobody to tell.
                self.tasks.stop(self.cfg.shutdown_timeout).await;
                server_stop.cancel();
                let _ = tokio::time::timeout(SERVER_DRAIN, &mut server).await;
                server.abort();
                return joined;
            }
        }
        // Probe the bootstrap addresses later too: if they were unreachable (a partition at
        // start), the rings merge once they answer (docs/protocol.md, "Ring unification").
        let listed: Vec<Peer> = bootstrap
            .iter()
            .map(|a| Peer::from_addr(self.space(), a))
            .collect();
        self.state().remember_bootstraps(&listed);
        self.publish_health().await;
        info!(id = %self.me.id, addr = %self.me.addr, "serving");
        crate::maintenance::spawn_all(&self);
        self.spawn_rehome();

        self.shutdown.cancelled().await;
        let result = self.stop_within(self.cfg.shutdown_timeout).await;
        server_stop.cancel();
        // A graceful server stop waits for every connection to close; a peer that hangs
        // (SIGSTOP, a dead host) never closes its own. Give them a moment, then cut them.
        match tokio::time::timeout(SERVER_DRAIN, &mut server).await {
            Ok(Ok(Ok(()))) => result,
            Ok(Ok(Err(e))) => result.and(Err(NodeError::Internal(format!("server: {e}")))),
            Ok(Err(e)) => result.and(Err(NodeError::Internal(format!("server task: {e}")))),
            Err(_) => {
                warn!("connections still open after the shutdown deadline; closing them");
                server.abort();
                result
            }
        }
    }

    /// Leaves the ring and stops every task, all within `deadline` even if a peer hangs;
    /// says what was abandoned. A leave that did not complete is an error: the ring will
    /// treat this node as failed, and the operator should know.
    async fn stop_within(&self, deadline: std::time::Duration) -> Result<(), NodeError> {
        let started = tokio::time::Instant::now();
        let left = match tokio::time::timeout(deadline, self.leave()).await {
            Ok(r) => r,
            Err(_) => Err(NodeError::LeaveCutShort(format!(
                "not finished within the shutdown deadline of {} s",
                deadline.as_secs_f64()
            ))),
        };
        if let Err(e) = &left {
            warn!(error = %e, "leave was cut short; the ring will treat this node as failed");
        }
        let rest = deadline.saturating_sub(started.elapsed());
        let abandoned = self.tasks.stop(rest).await;
        if !abandoned.is_empty() {
            warn!(tasks = %abandoned.join(", "), "shutdown deadline passed; abandoned these tasks");
        }
        left
    }
}
