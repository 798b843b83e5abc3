//! Simultaneous failures (Chord paper §6.4): a fraction p of the nodes fail at once; lookups
//! right after (no stabilization yet) and after k stabilize rounds.
//!
//! A lookup fails when it runs out of candidates or names a dead or wrong owner. Right after
//! the failure a key's predecessor still lists its dead successor first, so about a fraction p
//! of lookups name a dead owner until stabilize removes it: that is the "before stabilization"
//! row. The paper instead counts a lookup as failed when the key's node failed (the key is
//! lost, no replication), which is also about p; the `keys_lost` column gives that figure.
//!
//! Before stabilization lookups also run out of candidates (`no_owner`): when the key's
//! predecessor c still lists a dead first successor, c answers "ask it" (it is the closest
//! preceding node it knows), the driver's call times out, and no reply ever names the live
//! node after it, because only the driver, not c, learns of the death. Backtracking through
//! earlier candidates then explores many nodes (the high mean hops of that row). One round of
//! stabilize removes the dead successors and both effects vanish.

use clap::Args;

use super::{build, list, lookup_stats, Common, HOPS};
use crate::experiments::check::check_rounds;
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::world::World;
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct FailuresArgs {
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Fractions of nodes that fail at once.
    #[arg(long, default_value = "0.1,0.2,0.3,0.4,0.5")]
    pub fractions: String,
    /// Stabilize rounds after which lookups are measured again (0 = right after the failure).
    #[arg(long, default_value = "0,1,2,5")]
    pub rounds: String,
    /// Lookups per measurement. Before stabilization a lookup may explore hundreds of nodes
    /// (see the module doc), so this is kept modest.
    #[arg(long, default_value_t = 2_000)]
    pub lookups: u64,
}

pub fn failures(common: &Common, a: &FailuresArgs) -> Result<String, SimError> {
    let fractions: Vec<f64> = list(&a.fractions, "--fractions")?;
    let mut rounds: Vec<u64> = list(&a.rounds, "--rounds")?;
    rounds.sort_unstable();
    if fractions.iter().any(|p| !(0.0..1.0).contains(p)) {
        return Err(SimError::Arg("--fractions must lie in [0, 1)".into()));
    }
    let out = Out::new(&common.out)?;
    let cfg = common.sim(common.seed)?;
    let mut text = format!(
        "{}\n# {HOPS}\n# {} nodes; a lookup fails if it names no owner, a dead one or a wrong one; keys_lost = keys whose owner failed\n",
        common.describe(&cfg),
        a.nodes
    );
    text += &format!(
        "{:>5} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>9}\n",
        "p", "rounds", "fail", "no_owner", "dead_own", "wrong_own", "hops", "timeouts", "keys_lost"
    );
    let mut rows = Vec::new();
    let mut series: Vec<Series> = Vec::new();
    for &k in &rounds {
        series.push(Series::new(
            format!("after {k} rounds"),
            Vec::new(),
            Style::Line,
        ));
    }
    for &p in &fractions {
        let mut w = World::new(common.sim(common.seed)?)?;
        build(&mut w, a.nodes, common.build)?;
        let before = w.member_ids();
        let victims = ((a.nodes as f64) * p).round() as usize;
        for _ in 0..victims.min(w.len().saturating_sub(1)) {
            if let Some(ix) = w.random_member() {
                w.kill(ix);
            }
        }
        let mut done = 0u64;
        for (si, &k) in rounds.iter().enumerate() {
            if k > done {
                w.set_maintenance(true);
                check_rounds(&mut w, k - done, common.check)?;
                w.set_maintenance(false);
                w.settle();
                done = k;
            }
            let res = w.run_lookups(a.lookups, 100);
            let s = lookup_stats(&res);
            let lost = res
                .iter()
                .filter(|r| {
                    let i = before.partition_point(|id| *id < r.key);
                    let owner = before[i % before.len()];
                    w.ix_of(owner).is_some_and(|ix| !w.is_alive(ix))
                })
                .count() as f64
                / res.len().max(1) as f64;
            let n = s.count.max(1) as f64;
            text += &format!(
                "{:>5.2} {:>6} {:>9.5} {:>9.5} {:>9.5} {:>9.5} {:>7.3} {:>9.3} {:>9.5}\n",
                p,
                k,
                s.fail,
                s.failed as f64 / n,
                s.dead_owner as f64 / n,
                s.wrong_owner as f64 / n,
                s.hops.mean,
                s.mean_timeouts,
                lost
            );
            rows.push(vec![
                f(p, 2),
                k.to_string(),
                s.count.to_string(),
                f(s.fail, 6),
                f(s.failed as f64 / n, 6),
                f(s.dead_owner as f64 / n, 6),
                f(s.wrong_owner as f64 / n, 6),
                f(s.hops.mean, 4),
                f(s.hops.p99, 0),
                f(s.mean_timeouts, 4),
                f(lost, 6),
            ]);
            series[si].points.push((p, s.fail));
        }
    }
    out.csv(
        "failures.csv",
        &[
            "p",
            "rounds",
            "lookups",
            "fail_fraction",
            "no_owner",
            "dead_owner",
            "wrong_owner",
            "mean_hops",
            "p99_hops",
            "mean_timeouts",
            "keys_lost",
        ],
        &rows,
    )?;
    series.push(Series::new(
        "keys whose node failed (= p)",
        fractions.iter().map(|&p| (p, p)).collect(),
        Style::Dashed,
    ));
    plot(
        &out,
        "failures.svg",
        &Chart {
            title: &format!(
                "Lookup failures after {} nodes fail at once (cf. §6.4)",
                a.nodes
            ),
            x: "fraction of nodes failed",
            y: "fraction of lookups failed",
            xr: (0.0, 0.55),
            yr: (0.0, 0.6),
        },
        &series,
    )?;
    Ok(text)
}
