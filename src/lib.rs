//! The wire protocol of dht, and nothing else.
//!
//! `proto/dht/v1/*.proto` defines two gRPC services in package `dht.v1`: `Peer`, spoken between
//! `dhtd` nodes (routing steps, ring maintenance, key transfer), and `Kv`, spoken by clients
//! (`dhtctl`, `dht-client`). This crate only holds the generated code; conversions to domain
//! types live in `dht-node` and `dht-client`.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("dht.v1");
}
