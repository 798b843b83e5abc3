//! Load balance (Chord paper §6.2): keys per node for 10^4 nodes and 10^5..10^6 keys, with no
//! virtual nodes. Ownership is the core's rule (a key belongs to its successor), computed on
//! the membership; no messages are needed.

use clap::Args;

use super::{list, Common};
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::stats::summarize;
use crate::world::World;
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Key counts.
    #[arg(
        long,
        default_value = "100000,200000,300000,400000,500000,600000,700000,800000,900000,1000000"
    )]
    pub keys: String,
}

pub fn load(common: &Common, a: &LoadArgs) -> Result<String, SimError> {
    let keys: Vec<u64> = list(&a.keys, "--keys")?;
    if a.nodes == 0 || keys.iter().any(|&k| k == 0 || k > 100_000_000) {
        return Err(SimError::Arg(
            "--nodes must be positive and --keys in 1..=10^8".into(),
        ));
    }
    let out = Out::new(&common.out)?;
    let cfg = common.sim(common.seed)?;
    let mut w = World::new(cfg.clone())?;
    w.build_ideal(a.nodes);
    let ring = w.member_ids();
    let mut text = format!(
        "{}\n# {} nodes, no virtual nodes; key ids = SHA-1 of \"key-<i>\"\n{:>9} {:>8} {:>5} {:>6} {:>5} {:>9}\n",
        common.describe(&cfg),
        ring.len(),
        "keys",
        "mean",
        "p1",
        "p99",
        "max",
        "p99/mean"
    );
    let (mut rows, mut bars, mut means) = (Vec::new(), Vec::new(), Vec::new());
    let space = cfg.chord.space;
    for &k in &keys {
        let mut per = vec![0u64; ring.len()];
        for i in 0..k {
            let id = space.hash(format!("key-{}-{i}", common.seed).as_bytes());
            per[ring.partition_point(|r| *r < id) % ring.len()] += 1;
        }
        let s = summarize(&mut per);
        text += &format!(
            "{:>9} {:>8.1} {:>5} {:>6} {:>5} {:>9.2}\n",
            k,
            s.mean,
            s.p1,
            s.p99,
            s.max,
            s.p99 / s.mean
        );
        rows.push(vec![
            k.to_string(),
            f(s.mean, 2),
            f(s.p1, 0),
            f(s.p99, 0),
            f(s.max, 0),
        ]);
        let x = k as f64 / 1e5;
        bars.push((x, s.p1, s.mean, s.p99));
        means.push((x, s.mean));
    }
    out.csv("load.csv", &["keys", "mean", "p1", "p99", "max"], &rows)?;
    let ymax = bars.iter().map(|b| b.3).fold(0.0, f64::max) * 1.1;
    plot(
        &out,
        "load.svg",
        &Chart {
            title: &format!("Keys per node, {} nodes (cf. Chord paper §6.2)", ring.len()),
            x: "total keys (× 10^5)",
            y: "keys per node (mean, 1st and 99th percentile)",
            xr: (
                0.0,
                keys.iter().copied().max().unwrap_or(1) as f64 / 1e5 + 1.0,
            ),
            yr: (0.0, ymax),
        },
        &[Series::new("simulated", means, Style::ErrorBars(bars))],
    )?;
    Ok(text)
}
