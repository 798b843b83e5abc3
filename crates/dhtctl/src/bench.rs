//! `dhtctl bench`: a load generator that prints figures; it is a benchmark, never a test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dht_client::Client;
use hdrhistogram::Histogram;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Keys to write, then read back.
    #[arg(long, default_value_t = 10_000)]
    pub ops: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Connections to open (requests are spread over them).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Write through the streaming bulk path (PutMany), this many keys per stream; latencies
    /// are then per stream, not per key. 0 = one Put per key.
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Key size in bytes (keys are zero-padded numbers).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Gets to issue in the read phase (default: --ops), at random over the written keys.
    #[arg(long)]
    pub reads: Option<usize>,
}

fn key(run: u32, i: usize, size: usize) -> Vec<u8> {
    let s = format!(
        "b{run:x}-{i:0>width$}",
        width = size.saturating_sub(10).max(1)
    );
    let mut k = s.into_bytes();
    k.resize(size.max(k.len()), b'_');
    k
}

pub async fn run(client: &Client, args: BenchArgs) -> anyhow::Result<()> {
    let mut clients = vec![client.clone()];
    for _ in 1..args.connections.max(1) {
        clients.push(Client::connect(client.addr(), Duration::from_secs(10)).await?);
    }
    let run_id = std::process::id();
    if args.key_size < 12 {
        anyhow::bail!("--key-size must be at least 12 bytes");
    }
    let value = Arc::new(vec![b'v'; args.value_size]);
    out!(
        "bench: {} ops, concurrency {}, {}-byte values, via {}",
        args.ops,
        args.concurrency,
        args.value_size,
        client.addr()
    );
    for phase in ["put", "get"] {
        let total = if phase == "get" {
            args.reads.unwrap_or(args.ops)
        } else {
            args.ops
        };
        let batch = if phase == "put" { args.batch } else { 0 };
        let step = batch.max(1);
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..args.concurrency {
            let c = clients[w % clients.len()].clone();
            let next = next.clone();
            let value = value.clone();
            let (ops, written, key_size) = (total, args.ops, args.key_size);
            workers.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                let mut errors = 0u64;
                // A cheap per-worker generator for the random read order (xorshift).
                let mut x = (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                loop {
                    let i = next.fetch_add(step, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let t = Instant::now();
                    let ok = if batch > 0 {
                        let end = (i + batch).min(ops);
                        let v = value.clone();
                        let items: Vec<(Vec<u8>, Vec<u8>)> = (i..end)
                            .map(|j| (key(run_id, j, key_size), v.to_vec()))
                            .collect();
                        c.put_many(items).await.is_ok()
                    } else if phase == "put" {
                        c.put(&key(run_id, i, key_size), &value, None).await.is_ok()
                    } else {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let j = (x % written as u64) as usize;
                        matches!(c.get(&key(run_id, j, key_size)).await, Ok(Some(_)))
                    };
                    h.record(t.elapsed().as_micros().max(1) as u64)?;
                    if !ok {
                        errors += 1;
                    }
                }
                anyhow::Ok((h, errors))
            }));
        }
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut errors = 0;
        for w in workers {
            let (h, e) = w.await??;
            hist.add(h)?;
            errors += e;
        }
        let secs = started.elapsed().as_secs_f64();
        let unit = if batch > 0 {
            format!(" (latency per {batch}-key stream)")
        } else {
            String::new()
        };
        out!(
            "{phase}: {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {errors}{unit}",
            total as f64 / secs,
            hist.value_at_quantile(0.50) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.max() as f64 / 1000.0,
        );
    }
    Ok(())
}
