//! dhtd: the dht daemon. Reads its configuration, sets up logging and signals, and runs one
//! `dht-node` until SIGINT/SIGTERM, which make it leave the ring gracefully and exit 0.

mod config;
mod exporter;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = config::Args::parse();
    let settings = match config::Settings::load(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dhtd: {e:#}");
            return ExitCode::from(2);
        }
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&settings.log).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dhtd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhtd: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// One exit code per kind of failure: 2 is a bad configuration (above), 3 a leave that did
/// not hand every key over (the ring treats the node as failed; its keys stay in its data
/// directory), 1 anything else (no ring could be joined, storage, the listener).
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<dht_node::NodeError>() {
        Some(dht_node::NodeError::LeaveCutShort(_)) => 3,
        _ => 1,
    }
}

async fn run(mut s: config::Settings) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&s.bind)
        .await
        .with_context(|| format!("cannot listen on {}", s.bind))?;
    let local = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // `--bind HOST:0` picks a free port; advertise the one the kernel chose.
    if s.node.advertise.ends_with(":0") {
        s.node.advertise = local.to_string();
    }
    // One machine-readable line on stdout, for scripts and tests that start nodes on port 0.
    println!("dhtd listening on {local} advertising {}", s.node.advertise);
    // Before the node exists: it registers its metric handles with the recorder of the moment.
    if let Some(addr) = &s.metrics_addr {
        let bound = exporter::install(addr)?;
        // A second stdout line, so `--metrics-addr HOST:0` tells where it went.
        println!("dhtd metrics on http://{bound}/metrics");
        tracing::info!(url = %format!("http://{bound}/metrics"), "serving Prometheus metrics");
    }
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    let store: Arc<dyn dht_store::Store> = match &s.storage {
        config::Storage::Memory => {
            tracing::info!("ephemeral: keys are kept in memory only");
            Arc::new(dht_store::MemoryStore::new())
        }
        config::Storage::Disk { dir, durability } => {
            let opts = dht_store::StoreOptions {
                durability: *durability,
                ..Default::default()
            };
            let dir2 = dir.clone();
            let store =
                tokio::task::spawn_blocking(move || dht_store::RedbStore::open(&dir2, opts))
                    .await
                    .context("storage open task failed")??;
            tracing::info!(data_dir = %dir.display(), ?durability, keys = dht_store::Store::len(&store).unwrap_or(0), "storage opened");
            eprintln!("dhtd: data directory {}", dir.display());
            Arc::new(store)
        }
    };
    // Restarted with its data but no bootstrap list: rejoin the ring this node remembers
    // rather than serve a ring of its own (docs/protocol.md, "Rejoin after a restart").
    if s.bootstrap.is_empty() && !s.new_ring {
        if let Some(file) = &s.node.members_file {
            let remembered = dht_node::remembered::load(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if !remembered.is_empty() {
                tracing::info!(
                    file = %file.display(),
                    members = remembered.len(),
                    "rejoining the remembered ring (start with --new-ring to start a new ring from this data)"
                );
                s.bootstrap = remembered;
            }
        }
    }
    let node =
        dht_node::Node::new(s.node, store, shutdown).context("invalid node configuration")?;
    tracing::info!(
        bind = %s.bind,
        advertise = %node.me().addr,
        id = %node.me().id,
        hash_size = node.space().bits(),
        "dhtd starting"
    );
    node.run(listener, s.bootstrap).await?;
    tracing::info!("dhtd stopped");
    Ok(())
}

fn spawn_signal_handler(token: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: leaving the ring"),
            _ = int.recv() => tracing::info!("SIGINT: leaving the ring"),
        }
        token.cancel();
    });
    Ok(())
}
