//! The scale run: build a large ring and run many lookups, reporting the path length on
//! stdout and wall time and peak memory on stderr (they vary by machine, stdout must not).

use std::time::Instant;

use clap::Args;

use super::{build, lookup_stats, Common, HOPS};
use crate::world::World;
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct ScaleArgs {
    #[arg(long, default_value_t = 100_000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub lookups: u64,
}

/// Peak resident memory of this process (VmHWM), in KiB, where /proc tells it.
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn scale(common: &Common, a: &ScaleArgs) -> Result<String, SimError> {
    let t0 = Instant::now();
    let cfg = common.sim(common.seed)?;
    let mut w = World::new(cfg.clone())?;
    let b = build(&mut w, a.nodes, common.build)?;
    let built = t0.elapsed();
    let t1 = Instant::now();
    let res = w.run_lookups(a.lookups, 10);
    let looked = t1.elapsed();
    let s = lookup_stats(&res);
    let check = match w.check() {
        Ok(shape) => format!(
            "invariants hold ({} members, {} on the ring)",
            shape.members, shape.ring
        ),
        Err(v) => format!("invariant violated: {v}"),
    };
    eprintln!(
        "scale: build {:.1} s, {} lookups {:.1} s, total {:.1} s wall; peak RSS {} MiB; {} events, {} messages",
        built.as_secs_f64(),
        s.count,
        looked.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        peak_rss_kib().map_or("unknown".to_string(), |k| (k / 1024).to_string()),
        w.counters.events,
        w.counters.messages
    );
    Ok(format!(
        "{}\n# {HOPS}\nbuild: {:?} ({} members{}; all tables ideal: {})\nlookups: {} | mean hops {:.3} | p1 {} | p99 {} | max {} | ½·log2 N {:.3} | failed {}\n{check}\n",
        common.describe(&cfg),
        common.build,
        w.len(),
        if b.rounds > 0 { format!(", {} stabilize rounds of virtual time", b.rounds) } else { String::new() },
        b.ideal,
        s.count,
        s.hops.mean,
        s.hops.p1,
        s.hops.p99,
        s.hops.max,
        0.5 * (w.len() as f64).log2(),
        s.failed + s.dead_owner + s.wrong_owner
    ))
}
