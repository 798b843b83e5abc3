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
}

pub async fn run(client: &Client, args: BenchArgs) -> anyhow::Result<()> {
    let mut clients = vec![client.clone()];
    for _ in 1..args.connections.max(1) {
        clients.push(Client::connect(client.addr(), Duration::from_secs(10)).await?);
    }
    let run_id = std::process::id();
    let value = Arc::new(vec![b'v'; args.value_size]);
    println!(
        "bench: {} ops, concurrency {}, {}-byte values, via {}",
        args.ops,
        args.concurrency,
        args.value_size,
        client.addr()
    );
    for phase in ["put", "get"] {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..args.concurrency {
            let c = clients[w % clients.len()].clone();
            let next = next.clone();
            let value = value.clone();
            let ops = args.ops;
            workers.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                let mut errors = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        break;
                    }
                    let key = format!("bench-{run_id}-{i:08}");
                    let t = Instant::now();
                    let ok = if phase == "put" {
                        c.put(key.as_bytes(), &value, None).await.is_ok()
                    } else {
                        matches!(c.get(key.as_bytes()).await, Ok(Some(_)))
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
        println!(
            "{phase}: {:>9.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  errors {errors}",
            args.ops as f64 / secs,
            hist.value_at_quantile(0.50) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
            hist.max() as f64 / 1000.0,
        );
    }
    Ok(())
}
