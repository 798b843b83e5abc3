//! The ceiling: a bare tonic server for the `dht.v1.Kv` service, an in-memory map behind it and
//! nothing else (no ring, no routing, no replication, no storage engine, no metrics).
//!
//! It exists so that the ring's throughput can be reported as a fraction of what this machine
//! can do with gRPC at all: `scripts/bench-ring.sh` benchmarks it in the same run as the rings,
//! with the same client (`dhtctl bench`), message sizes and concurrency, and divides the rings'
//! figures by its own. The server is built like dhtd's (`crates/dht-node/src/node.rs`: TCP
//! no-delay, the same message size limits, tonic's default HTTP/2 settings, a multi-threaded
//! tokio runtime) so the comparison is fair.
//!
//!   cargo run --release --example ceiling -p dhtd -- [--bind 127.0.0.1:0]
//!
//! Prints `listening on ADDR` on stdout once bound. `Put`, `Get` and `NodeInfo` (enough for
//! `dhtctl info` as a readiness check) are served; every other method is unimplemented.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use clap::Parser;
use dht_proto::v1 as pb;
use dht_proto::v1::kv_server::{Kv, KvServer};
use tonic::{Request, Response, Status, Streaming};

#[derive(Parser, Debug)]
#[command(about = "A bare gRPC Kv server: the ceiling that scripts/bench-ring.sh divides by")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
}

/// Shards of the map, so concurrent requests rarely wait on one lock.
const SHARDS: usize = 16;

struct Ceiling {
    addr: String,
    /// Each key's reply to a Get, ready to clone (the value's bytes are shared, not copied).
    shards: Vec<Mutex<HashMap<Vec<u8>, pb::GetReply>>>,
    /// The version of the last write.
    clock: AtomicU64,
}

impl Ceiling {
    fn shard(&self, key: &[u8]) -> &Mutex<HashMap<Vec<u8>, pb::GetReply>> {
        // FNV-1a: cheap, and spreads keys that differ in a few digits.
        let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        &self.shards[(h % SHARDS as u64) as usize]
    }
}

fn unimplemented<T>(what: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "the ceiling server has no {what}"
    )))
}

#[tonic::async_trait]
impl Kv for Ceiling {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutReply>, Status> {
        let req = req.into_inner();
        let version = Some(pb::Version {
            hlc: self.clock.fetch_add(1, Ordering::Relaxed) + 1,
            node: 0,
        });
        let stored = pb::GetReply {
            found: true,
            value: req.value,
            version,
            ..Default::default()
        };
        self.shard(&req.key)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(req.key.to_vec(), stored);
        Ok(Response::new(pb::PutReply {
            version,
            ..Default::default()
        }))
    }

    async fn put_many(
        &self,
        _req: Request<Streaming<pb::PutRequest>>,
    ) -> Result<Response<pb::PutManyReply>, Status> {
        unimplemented("PutMany")
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetReply>, Status> {
        let key = req.into_inner().key;
        let found = self
            .shard(&key)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key[..])
            .cloned();
        Ok(Response::new(found.unwrap_or_default()))
    }

    async fn delete(
        &self,
        _req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteReply>, Status> {
        unimplemented("Delete")
    }

    async fn lookup(
        &self,
        _req: Request<pb::LookupRequest>,
    ) -> Result<Response<pb::LookupReply>, Status> {
        unimplemented("Lookup")
    }

    async fn node_info(
        &self,
        _req: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoReply>, Status> {
        let keys = self
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len() as u64)
            .sum();
        Ok(Response::new(pb::NodeInfoReply {
            self_: Some(pb::NodeRef {
                addr: self.addr.clone(),
                ..Default::default()
            }),
            hash_size: 160,
            keys,
            replication_factor: 1,
            version: format!("ceiling {}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        }))
    }

    async fn join(
        &self,
        _req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        unimplemented("Join")
    }

    async fn leave(
        &self,
        _req: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveReply>, Status> {
        unimplemented("Leave")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;

    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    let svc = KvServer::new(Ceiling {
        addr: local.to_string(),
        shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        clock: AtomicU64::new(0),
    })
    .max_decoding_message_size(8 * 1024 * 1024)
    .max_encoding_message_size(8 * 1024 * 1024);
    // As dhtd: TCP no-delay on every accepted connection, tonic's default server settings.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut out = std::io::stdout();
    writeln!(out, "listening on {local}")?;
    out.flush()?;
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
