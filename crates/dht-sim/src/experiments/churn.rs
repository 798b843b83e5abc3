//! Lookups during continuous joins and failures (cf. Chord paper §6.5): nodes fail and new
//! ones join at a given rate per stabilize interval while lookups keep running.

use clap::Args;
use rand::RngExt;

use super::{build, list, lookup_stats, Common, HOPS};
use crate::experiments::check::check_rounds;
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::world::World;
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct ChurnArgs {
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Joins plus failures per stabilize interval (half of each on average).
    #[arg(long, default_value = "1,2,5,10,20")]
    pub rates: String,
    /// Rounds of warm-up under churn before lookups are measured.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Rounds during which lookups are measured.
    #[arg(long, default_value_t = 20)]
    pub rounds: u64,
    /// Lookups per round.
    #[arg(long, default_value_t = 500)]
    pub lookups: u64,
}

pub fn churn(common: &Common, a: &ChurnArgs) -> Result<String, SimError> {
    let rates: Vec<f64> = list(&a.rates, "--rates")?;
    if rates.iter().any(|r| !(0.0..=1e6).contains(r)) || a.rounds == 0 || a.lookups == 0 {
        return Err(SimError::Arg(
            "--rates must be non-negative, --rounds and --lookups positive".into(),
        ));
    }
    let out = Out::new(&common.out)?;
    let cfg = common.sim(common.seed)?;
    let mut text = format!(
        "{}\n# {HOPS}\n# {} nodes; R joins+failures per stabilize interval; {} lookups/round over {} rounds after {} rounds of warm-up\n",
        common.describe(&cfg),
        a.nodes,
        a.lookups,
        a.rounds,
        a.warmup
    );
    text += &format!(
        "{:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>5} {:>9} {:>8}\n",
        "R", "fail", "no_owner", "dead_own", "wrong_own", "hops", "p99", "timeouts", "members"
    );
    let (mut rows, mut fail_pts, mut hop_pts) = (Vec::new(), Vec::new(), Vec::new());
    for &rate in &rates {
        let mut w = World::new(common.sim(common.seed)?)?;
        build(&mut w, a.nodes, common.build)?;
        w.set_maintenance(true);
        let every = w.cfg.stabilize_every;
        let total = a.warmup + a.rounds;
        for round in 0..total {
            let whole = rate.floor() as u64;
            let extra = u64::from(w.rng.random_bool(rate.fract()));
            for _ in 0..whole + extra {
                let delay = round * every + w.random_delay(every);
                let join = w.rng.random_bool(0.5);
                w.schedule_churn(delay, join, false);
            }
        }
        check_rounds(&mut w, a.warmup, common.check)?;
        let res = w.run_lookups(a.lookups * a.rounds, every / a.lookups);
        let s = lookup_stats(&res);
        let n = s.count.max(1) as f64;
        text += &format!(
            "{:>6.2} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>7.3} {:>5} {:>9.3} {:>8}\n",
            rate,
            s.fail,
            s.failed as f64 / n,
            s.dead_owner as f64 / n,
            s.wrong_owner as f64 / n,
            s.hops.mean,
            s.hops.p99,
            s.mean_timeouts,
            w.len()
        );
        rows.push(vec![
            f(rate, 2),
            s.count.to_string(),
            f(s.fail, 6),
            f(s.failed as f64 / n, 6),
            f(s.dead_owner as f64 / n, 6),
            f(s.wrong_owner as f64 / n, 6),
            f(s.hops.mean, 4),
            f(s.hops.p99, 0),
            f(s.mean_timeouts, 4),
        ]);
        let x = rate / a.nodes as f64;
        fail_pts.push((x, s.fail));
        hop_pts.push((x, s.hops.mean / 10.0));
    }
    out.csv(
        "churn.csv",
        &[
            "rate_per_round",
            "lookups",
            "fail_fraction",
            "no_owner",
            "dead_owner",
            "wrong_owner",
            "mean_hops",
            "p99_hops",
            "mean_timeouts",
        ],
        &rows,
    )?;
    let xmax = fail_pts.iter().map(|p| p.0).fold(0.0, f64::max) * 1.1 + 1e-9;
    let ymax = fail_pts
        .iter()
        .chain(&hop_pts)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        * 1.2
        + 0.01;
    plot(
        &out,
        "churn.svg",
        &Chart {
            title: &format!("Lookups under churn, {} nodes (cf. §6.5)", a.nodes),
            x: "joins+failures per node per stabilize interval",
            y: "fraction failed / (mean hops ÷ 10)",
            xr: (0.0, xmax),
            yr: (0.0, ymax),
        },
        &[
            Series::new("failed lookups", fail_pts, Style::Line),
            Series::new("mean hops ÷ 10", hop_pts, Style::Dashed),
        ],
    )?;
    Ok(text)
}
