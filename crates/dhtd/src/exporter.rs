//! The Prometheus endpoint: installs the `metrics` recorder that `dht-node` records into, and
//! the exporter's own HTTP listener that serves it as `GET /metrics` (text format).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Installs the global recorder and serves it on `addr`; returns the address actually bound.
/// Must run inside the tokio runtime (the listener and the recorder's upkeep are spawned on
/// it) and before the node is created (the node registers its metric handles once, with
/// whatever recorder is installed then).
///
/// The exporter binds its listener itself and does not say which port it got, so the address
/// is resolved here first: bind, read the port, release it, and hand the exact address over.
/// That is what makes port 0 usable. Should another process grab the port in the
/// microseconds between, the exporter's bind fails and dhtd exits naming the address, rather
/// than serving metrics somewhere nobody looks.
pub fn install(addr: &str) -> Result<SocketAddr> {
    let probe = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot serve metrics on {addr}"))?;
    let local = probe
        .local_addr()
        .context("cannot read the bound metrics address")?;
    drop(probe);
    let mut builder = PrometheusBuilder::new().with_http_listener(local);
    // Real histograms (with buckets), not the exporter's default summaries: buckets can be
    // summed across the nodes of a ring, quantiles cannot.
    for (name, buckets) in dht_node::telemetry::HISTOGRAM_BUCKETS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
            .with_context(|| format!("histogram buckets of {name}"))?;
    }
    builder
        .install()
        .with_context(|| format!("cannot serve metrics on {local}"))?;
    Ok(local)
}
