//! gRPC health (`grpc.health.v1.Health`), served on the node's port beside `Peer` and `Kv`.
//!
//! Load balancers, orchestrators and `grpc_health_probe` ask it whether to send clients
//! here. The answer follows the node's lifecycle, not merely whether the port is open:
//! `dht.v1.Kv`, `dht.v1.Peer` and the whole server (`""`) report NOT_SERVING while the node
//! joins (it does not own its range yet) and from the moment a leave starts (it is handing
//! its keys away), and SERVING in between.

use dht_proto::v1::kv_server::KvServer;
use dht_proto::v1::peer_server::PeerServer;
use tonic::server::NamedService;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::node::Node;
use crate::service::{KvService, PeerService};

/// The service names whose status is published: the whole server first, then each service.
const SERVICES: [&str; 3] = [
    "",
    <KvServer<KvService> as NamedService>::NAME,
    <PeerServer<PeerService> as NamedService>::NAME,
];

/// The health service and the handle that updates it.
pub(crate) struct Health {
    reporter: HealthReporter,
    /// Serializes updates: each publishes three statuses, and two interleaved publishers (a
    /// join finishing while a leave starts) could otherwise leave a stale SERVING behind. A
    /// tokio mutex, because the reporter's setters are async.
    publishing: tokio::sync::Mutex<()>,
}

impl Health {
    pub(crate) fn new() -> Health {
        Health {
            reporter: HealthReporter::new(),
            publishing: tokio::sync::Mutex::new(()),
        }
    }

    /// The gRPC service to add to the node's server.
    pub(crate) fn server(&self) -> HealthServer<HealthService> {
        HealthServer::new(HealthService::from_health_reporter(self.reporter.clone()))
    }
}

impl Node {
    /// Publishes whether this node serves its range, as health status and the `dht_serving`
    /// gauge. Reads the flags under the publishing lock, so the last publisher always tells
    /// the current truth.
    pub(crate) async fn publish_health(&self) {
        let _one_at_a_time = self.health.publishing.lock().await;
        let serving = self.life.is_serving();
        self.set_health(serving).await;
    }

    /// Publishes NOT_SERVING regardless of the flags: for the start of [`Node::run`], before
    /// a join has even begun.
    pub(crate) async fn publish_not_serving(&self) {
        let _one_at_a_time = self.health.publishing.lock().await;
        self.set_health(false).await;
    }

    async fn set_health(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in SERVICES {
            self.health.reporter.set_service_status(name, status).await;
        }
        self.metrics.serving.set(if serving { 1.0 } else { 0.0 });
    }

    /// The current health status of `service` (`""` for the whole server), as a client of the
    /// health service would see it.
    #[cfg(test)]
    pub(crate) async fn health_of(&self, service: &str) -> Option<i32> {
        use tonic_health::pb::health_server::Health as _;
        let svc = HealthService::from_health_reporter(self.health.reporter.clone());
        let req = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
            service: service.to_string(),
        });
        svc.check(req).await.ok().map(|r| r.into_inner().status)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokio_util::sync::CancellationToken;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;

    use super::*;
    use crate::NodeConfig;

    #[test]
    fn the_published_names_are_the_proto_service_names() {
        assert_eq!(SERVICES, ["", "dht.v1.Kv", "dht.v1.Peer"]);
    }

    #[tokio::test]
    async fn health_is_serving_once_running_and_not_serving_from_the_start_of_a_leave() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cfg = NodeConfig {
            advertise: listener.local_addr().unwrap().to_string(),
            ..NodeConfig::default()
        };
        let token = CancellationToken::new();
        let node = Node::new(cfg, Arc::new(dht_store::MemoryStore::new()), token.clone()).unwrap();
        // Before `run`, the services are not registered at all.
        assert_eq!(node.health_of("dht.v1.Kv").await, None);
        let running = tokio::spawn(node.clone().run(listener, Vec::new()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.health_of("dht.v1.Kv").await != Some(Wire::Serving as i32) {
            assert!(Instant::now() < deadline, "never reported SERVING");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for name in SERVICES {
            assert_eq!(
                node.health_of(name).await,
                Some(Wire::Serving as i32),
                "{name:?}"
            );
        }
        node.leave().await.unwrap();
        for name in SERVICES {
            assert_eq!(
                node.health_of(name).await,
                Some(Wire::NotServing as i32),
                "{name:?}"
            );
        }
        token.cancel();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("node stops")
            .expect("run task")
            .expect("run ok");
    }
}
