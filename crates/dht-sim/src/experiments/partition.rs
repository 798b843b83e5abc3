//! Partition risk at small N: 64 nodes, half fail at once, successor lists of r = 3, 6, 12.
//!
//! A survivor loses all r successors with probability about 2^-r, and then the ring cannot
//! heal: the survivor ends up alone or pointing backwards. With 32 survivors the chance that
//! some survivor does is 1 − (1 − 2^-r)^32: about 99%, 40% and 1%. The simulator kills the
//! nodes, runs stabilize, and counts a run as broken when an invariant fails or the ring is
//! not ideal (successors and predecessors) after the given rounds. It also counts, from the
//! membership alone, the runs in which some survivor lost all r successors.

use clap::Args;

use super::{list, Common};
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::world::World;
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct PartitionArgs {
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,
    /// Fraction that fails at once.
    #[arg(long, default_value_t = 0.5)]
    pub fail: f64,
    /// Successor-list lengths.
    #[arg(long, default_value = "3,6,12")]
    pub rs: String,
    /// Runs per r (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 200)]
    pub runs: u64,
    /// Stabilize rounds after the failure.
    #[arg(long, default_value_t = 30)]
    pub rounds: u64,
}

/// One run: (some survivor lost all r successors, the ring broke).
fn run(common: &Common, seed: u64, r: usize, a: &PartitionArgs) -> Result<(bool, bool), SimError> {
    let mut c = common.clone();
    c.successors = Some(r);
    let mut w = World::new(c.sim(seed)?)?;
    w.build_ideal(a.nodes);
    let ring = w.member_ids();
    let victims = ((ring.len() as f64) * a.fail).round() as usize;
    for _ in 0..victims.min(ring.len() - 1) {
        if let Some(ix) = w.random_member() {
            w.kill(ix);
        }
    }
    let alive = |id| w.ix_of(id).is_some_and(|ix| w.is_alive(ix));
    let n = ring.len();
    let lost_all =
        (0..n).any(|i| alive(ring[i]) && (1..=r.min(n - 1)).all(|k| !alive(ring[(i + k) % n])));
    w.set_maintenance(true);
    let mut broken = false;
    for _ in 0..a.rounds {
        w.run_rounds(1);
        if w.check().is_err() {
            broken = true;
            break;
        }
    }
    broken |= !w.is_ideal(false);
    Ok((lost_all, broken))
}

pub fn partition_risk(common: &Common, a: &PartitionArgs) -> Result<String, SimError> {
    let rs: Vec<usize> = list(&a.rs, "--rs")?;
    if !(0.0..1.0).contains(&a.fail) || a.nodes < 2 || a.runs == 0 {
        return Err(SimError::Arg(
            "--fail must be in [0, 1), --nodes ≥ 2, --runs ≥ 1".into(),
        ));
    }
    let out = Out::new(&common.out)?;
    let cfg = common.sim(common.seed)?;
    let survivors = a.nodes as f64 - (a.nodes as f64 * a.fail).round();
    let mut text = format!(
        "{}\n# {} nodes, {:.0}% fail at once, {} runs per r, {} stabilize rounds after\n{:>4} {:>11} {:>11} {:>9}\n",
        common.describe(&cfg),
        a.nodes,
        a.fail * 100.0,
        a.runs,
        a.rounds,
        "r",
        "arithmetic",
        "lost_all_r",
        "broken"
    );
    let (mut rows, mut sim_pts, mut th_pts) = (Vec::new(), Vec::new(), Vec::new());
    for &r in &rs {
        let (mut lost, mut broke) = (0u64, 0u64);
        for k in 0..a.runs {
            let (l, b) = run(common, common.seed + k, r, a)?;
            lost += l as u64;
            broke += b as u64;
        }
        let p_one = a.fail.powi(r as i32);
        let theory = 1.0 - (1.0 - p_one).powf(survivors);
        let (lf, bf) = (lost as f64 / a.runs as f64, broke as f64 / a.runs as f64);
        text += &format!("{r:>4} {theory:>11.3} {lf:>11.3} {bf:>9.3}\n");
        rows.push(vec![
            r.to_string(),
            f(theory, 4),
            f(lf, 4),
            f(bf, 4),
            a.runs.to_string(),
        ]);
        sim_pts.push((r as f64, bf));
        th_pts.push((r as f64, theory));
    }
    out.csv(
        "partition-risk.csv",
        &["r", "arithmetic", "lost_all_r", "broken", "runs"],
        &rows,
    )?;
    let xmax = rs.iter().copied().max().unwrap_or(12) as f64 + 1.0;
    plot(
        &out,
        "partition-risk.svg",
        &Chart {
            title: &format!(
                "Ring breaks: {} nodes, {:.0}% fail at once",
                a.nodes,
                a.fail * 100.0
            ),
            x: "successor-list length r",
            y: "fraction of runs",
            xr: (0.0, xmax),
            yr: (0.0, 1.05),
        },
        &[
            Series::new("simulated: ring broken", sim_pts, Style::Points),
            Series::new("1 − (1 − p^r)^survivors", th_pts, Style::Dashed),
        ],
    )?;
    Ok(text)
}
