//! Path length (Chord paper §6.3): mean, 1st and 99th percentile of hops against ½·log2 N;
//! its distribution at N = 2^12; and the project's seed table for 20..300 nodes.

use clap::Args;

use super::{build, lookup_stats, Common, LookupStats, HOPS};
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::stats::pdf;
use crate::world::World;
use crate::SimError;

/// Virtual time between two measured lookups: enough to keep a few thousand in flight.
const SPACING: u64 = 100;

/// Builds an `n`-node ring as `--build` says, runs `lookups` random lookups on it (frozen: no
/// maintenance, no failures) and returns their statistics and the raw hop counts.
pub fn measure(
    common: &Common,
    seed: u64,
    n: usize,
    lookups: u64,
) -> Result<(LookupStats, Vec<u64>), SimError> {
    let mut w = World::new(common.sim(seed)?)?;
    build(&mut w, n, common.build)?;
    let res = w.run_lookups(lookups, SPACING);
    let hops = res.iter().map(|r| r.hops as u64).collect();
    Ok((lookup_stats(&res), hops))
}

#[derive(Args, Clone, Debug)]
pub struct PathLengthArgs {
    /// Largest exponent k of N = 2^k (from 2^3).
    #[arg(long, default_value_t = 16)]
    pub max_exp: u32,
    /// Also measure N = 100,000.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub with_100k: bool,
    /// Lookups per network size.
    #[arg(long, default_value_t = 20_000)]
    pub lookups: u64,
}

pub fn path_length(common: &Common, a: &PathLengthArgs) -> Result<String, SimError> {
    if !(3..=20).contains(&a.max_exp) {
        return Err(SimError::Arg(format!(
            "--max-exp {} is out of range 3..=20",
            a.max_exp
        )));
    }
    let out = Out::new(&common.out)?;
    let mut sizes: Vec<usize> = (3..=a.max_exp).map(|k| 1usize << k).collect();
    if a.with_100k {
        sizes.push(100_000);
        sizes.sort_unstable();
    }
    let mut text = format!("{}\n# {HOPS}\n", common.describe(&common.sim(common.seed)?));
    text += &format!(
        "{:>8} {:>7} {:>5} {:>5} {:>10} {:>9}\n",
        "N", "mean", "p1", "p99", "½·log2 N", "failed"
    );
    let mut rows = Vec::new();
    let (mut pts, mut bars, mut theory) = (Vec::new(), Vec::new(), Vec::new());
    for &n in &sizes {
        let (s, _) = measure(common, common.seed, n, a.lookups)?;
        let half_log = 0.5 * (n as f64).log2();
        text += &format!(
            "{:>8} {:>7.3} {:>5} {:>5} {:>10.3} {:>9}\n",
            n,
            s.hops.mean,
            s.hops.p1,
            s.hops.p99,
            half_log,
            s.failed + s.dead_owner + s.wrong_owner
        );
        rows.push(vec![
            n.to_string(),
            f(s.hops.mean, 4),
            f(s.hops.p1, 0),
            f(s.hops.p99, 0),
            f(half_log, 4),
            s.count.to_string(),
            f(s.fail, 6),
        ]);
        let x = (n as f64).log2();
        pts.push((x, s.hops.mean));
        bars.push((x, s.hops.p1, s.hops.mean, s.hops.p99));
        theory.push((x, half_log));
    }
    out.csv(
        "path-length.csv",
        &[
            "N",
            "mean",
            "p1",
            "p99",
            "half_log2_N",
            "lookups",
            "fail_fraction",
        ],
        &rows,
    )?;
    let ymax = bars.iter().map(|b| b.3).fold(0.0, f64::max) + 2.0;
    plot(
        &out,
        "path-length.svg",
        &Chart {
            title: "Path length vs network size (cf. Chord paper §6.3)",
            x: "log2 N",
            y: "hops (mean, 1st and 99th percentile)",
            xr: (2.0, 18.0),
            yr: (0.0, ymax),
        },
        &[
            Series::new("simulated mean, p1..p99", pts, Style::ErrorBars(bars)),
            Series::new("½·log2 N", theory, Style::Dashed),
        ],
    )?;
    Ok(text)
}

#[derive(Args, Clone, Debug)]
pub struct PathPdfArgs {
    #[arg(long, default_value_t = 4096)]
    pub nodes: usize,
    #[arg(long, default_value_t = 100_000)]
    pub lookups: u64,
}

pub fn path_pdf(common: &Common, a: &PathPdfArgs) -> Result<String, SimError> {
    let out = Out::new(&common.out)?;
    let (s, hops) = measure(common, common.seed, a.nodes, a.lookups)?;
    let p = pdf(&hops);
    let mut text = format!(
        "{}\n# {HOPS}\n# N = {}, {} lookups, mean {:.3} (½·log2 N = {:.3})\n{:>5} {:>9}\n",
        common.describe(&common.sim(common.seed)?),
        a.nodes,
        s.count,
        s.hops.mean,
        0.5 * (a.nodes as f64).log2(),
        "hops",
        "pdf"
    );
    let mut rows = Vec::new();
    for (h, v) in p.iter().enumerate() {
        text += &format!("{h:>5} {v:>9.5}\n");
        rows.push(vec![h.to_string(), f(*v, 6)]);
    }
    out.csv("path-pdf.csv", &["hops", "pdf"], &rows)?;
    let ymax = p.iter().copied().fold(0.0, f64::max) * 1.15;
    plot(
        &out,
        "path-pdf.svg",
        &Chart {
            title: &format!("PDF of path length, N = {} (cf. Chord paper §6.3)", a.nodes),
            x: "hops",
            y: "probability",
            xr: (-1.0, p.len() as f64 + 0.5),
            yr: (0.0, ymax.max(0.01)),
        },
        &[Series::new(
            "simulated",
            p.iter().enumerate().map(|(h, &v)| (h as f64, v)).collect(),
            Style::Bars,
        )],
    )?;
    Ok(text)
}

#[derive(Args, Clone, Debug)]
pub struct SeedTableArgs {
    #[arg(long, default_value_t = 10_000)]
    pub lookups: u64,
}

/// The table the project's Python prototype published (100 nodes: 4.15 mean hops against
/// ½·log2 N = 3.32), redone on the real core.
pub fn seed_table(common: &Common, a: &SeedTableArgs) -> Result<String, SimError> {
    let out = Out::new(&common.out)?;
    let mut text = format!(
        "{}\n# {HOPS}\n{:>5} {:>7} {:>10} {:>8}\n",
        common.describe(&common.sim(common.seed)?),
        "N",
        "mean",
        "½·log2 N",
        "ratio"
    );
    let mut rows = Vec::new();
    let (mut pts, mut theory) = (Vec::new(), Vec::new());
    for n in (20..=300).step_by(20) {
        let (s, _) = measure(common, common.seed, n, a.lookups)?;
        let t = 0.5 * (n as f64).log2();
        text += &format!(
            "{:>5} {:>7.3} {:>10.3} {:>8.3}\n",
            n,
            s.hops.mean,
            t,
            s.hops.mean / t
        );
        rows.push(vec![n.to_string(), f(s.hops.mean, 4), f(t, 4)]);
        pts.push((n as f64, s.hops.mean));
        theory.push((n as f64, t));
    }
    out.csv("seed-table.csv", &["N", "mean", "half_log2_N"], &rows)?;
    plot(
        &out,
        "seed-table.svg",
        &Chart {
            title: "Mean hops, 20..300 nodes",
            x: "N",
            y: "mean hops",
            xr: (0.0, 320.0),
            yr: (0.0, 6.0),
        },
        &[
            Series::new("simulated", pts, Style::Points),
            Series::new("½·log2 N", theory, Style::Dashed),
        ],
    )?;
    Ok(text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        c: Common,
    }

    pub(crate) fn common(extra: &[&str]) -> Common {
        let mut args = vec!["t", "--hash-size", "64"];
        args.extend_from_slice(extra);
        T::parse_from(args).c
    }

    /// Chord §6.3: "the mean path length is about ½·log2 N"; at N = 1024 that is 5.0.
    #[test]
    fn mean_path_length_at_1024_nodes_is_within_10_percent_of_half_log2_n() {
        let (s, _) = measure(&common(&[]), 11, 1024, 3_000).unwrap();
        assert_eq!(s.fail, 0.0);
        assert!((s.hops.mean - 5.0).abs() <= 0.5, "mean {}", s.hops.mean);
    }

    #[test]
    fn the_same_seed_gives_the_same_hops_and_another_seed_does_not() {
        let c = common(&["--latency", "1..30", "--loss", "0.05"]);
        let a = measure(&c, 4, 200, 500).unwrap().1;
        let b = measure(&c, 4, 200, 500).unwrap().1;
        let other = measure(&c, 5, 200, 500).unwrap().1;
        assert_eq!(a, b);
        assert_ne!(a, other);
    }
}
