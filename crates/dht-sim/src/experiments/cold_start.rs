//! Cold start: N nodes come up together with one shared bootstrap list and no ring; the
//! core's `ColdStart` rule (driven by `crate::coldstart`) must make exactly one of them start
//! the ring, and the protocol's joins and maintenance then make that ring ideal.
//!
//! Per run it measures the round in which the ring was started, how many nodes started one
//! (anything but 1 fails the experiment: two starters make two rings that Chord never
//! merges), the round by which every node that came up is a member, and the rounds until the
//! ring is ideal (successors and predecessors, then fingers too). A round is one stabilize
//! period, counted from the instant the first nodes come up.
//!
//! `--dead F` keeps a fraction F of the list from ever coming up: the lowest-id list members,
//! the nodes the rule would otherwise pick first, so the run shows the rule routing around
//! dead seeds where it matters most.

use clap::Args;
use rand::RngExt;

use super::{list, Common};
use crate::coldstart::Decide;
use crate::engine::Time;
use crate::experiments::check::violation_report;
use crate::report::{f, plot, Chart, Out, Series, Style};
use crate::stats::quantile;
use crate::world::{SimConfig, World};
use crate::SimError;

#[derive(Args, Clone, Debug)]
pub struct ColdStartArgs {
    /// Node counts N, each run bringing up N nodes at once.
    #[arg(long, default_value = "10,1000")]
    pub nodes: String,
    /// Bootstrap list length K, drawn from the seed (default: every node when N ≤ 16, else 8).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Runs per N, with seeds seed, seed+1, ...
    #[arg(long, default_value_t = 3)]
    pub runs: u64,
    /// Fraction of the list that never comes up (the lowest-id members).
    #[arg(long, default_value_t = 0.0)]
    pub dead: f64,
    /// Nodes come up at random offsets within this fraction of a round (0: all at once).
    #[arg(long, default_value_t = 0.0)]
    pub spread: f64,
    /// Rounds after which a run counts as not converged.
    #[arg(long, default_value_t = 5000)]
    pub max_rounds: u64,
    /// When a waiting node decides: at the end of each stabilize period, or as soon as its
    /// probes are answered (as dht-node does).
    #[arg(long, value_enum, default_value_t = Decide::Period)]
    pub decide: Decide,
}

/// The scenario of one run.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub nodes: usize,
    /// Bootstrap list length K.
    pub list: usize,
    /// List members that never come up.
    pub dead: usize,
    /// Fraction of a round over which the nodes come up.
    pub spread: f64,
    pub max_rounds: u64,
    pub decide: Decide,
    /// Check Zave's invariants after every round.
    pub check: bool,
}

/// What one run measured; rounds are `None` when not reached within the cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColdRun {
    /// Nodes that came up (N minus the dead).
    pub live: usize,
    /// Nodes that started a ring.
    pub starts: usize,
    pub first_start: Option<u64>,
    pub all_members: Option<u64>,
    /// Successors, lists and predecessors ideal.
    pub ring_ideal: Option<u64>,
    /// Fingers ideal too.
    pub fingers_ideal: Option<u64>,
    /// Invariant check at the end: `None` if it holds, else the violation.
    pub violation: Option<String>,
    pub probes: u64,
}

impl ColdRun {
    /// A run fails when anything but exactly one node started a ring, or the ring ends broken.
    pub fn failure(&self) -> Option<String> {
        if self.starts > 1 {
            return Some(format!("{} nodes started a ring", self.starts));
        }
        self.violation.clone()
    }
}

/// Default bootstrap list length for `n` nodes.
pub fn default_list(n: usize) -> usize {
    if n <= 16 {
        n
    } else {
        8
    }
}

/// One run: creates the nodes, draws the list, brings the nodes up and runs rounds until the
/// ring is ideal (fingers too), a second node starts a ring, or `max_rounds` pass.
pub fn cold_run(cfg: SimConfig, s: &Scenario) -> Result<ColdRun, SimError> {
    let mut w = World::new(cfg)?;
    w.set_maintenance(true);
    let all: Vec<_> = (0..s.nodes).map(|_| w.add_node()).collect();
    // The list: K nodes drawn from the seed (a partial Fisher–Yates shuffle).
    let mut pick = all.clone();
    for i in 0..s.list {
        let j = w.rng.random_range(i..pick.len());
        pick.swap(i, j);
    }
    pick.truncate(s.list);
    let mut by_id = pick.clone();
    by_id.sort_by_key(|&ix| w.state(ix).id());
    let dead = &by_id[..s.dead];
    let list = pick.iter().map(|&ix| w.state(ix).me().clone()).collect();
    w.cold_list(list, s.decide);
    let every = w.cfg.stabilize_every;
    let spread = (s.spread * every as f64) as Time;
    for &ix in &all {
        let up = !dead.contains(&ix);
        let delay = if up && spread > 0 {
            w.random_delay(spread)
        } else {
            0
        };
        w.cold_boot_after(ix, delay, up);
    }
    let live = s.nodes - s.dead;
    let mut r = ColdRun {
        live,
        starts: 0,
        first_start: None,
        all_members: None,
        ring_ideal: None,
        fingers_ideal: None,
        violation: None,
        probes: 0,
    };
    for round in 1..=s.max_rounds {
        w.run_rounds(1);
        if s.check {
            if let Err(v) = w.check() {
                return Err(SimError::Violation(violation_report(&w, round, &v)));
            }
        }
        r.starts = w.cold_starts().len();
        if r.first_start.is_none() {
            r.first_start = w.cold_starts().first().map(|&(_, t)| t.div_ceil(every));
        }
        if r.starts > 1 {
            break;
        }
        if r.all_members.is_none() && w.len() == live {
            r.all_members = Some(round);
        }
        if r.all_members.is_some() && r.ring_ideal.is_none() && w.is_ideal(false) {
            r.ring_ideal = Some(round);
        }
        if r.ring_ideal.is_some() && w.is_ideal(true) {
            r.fingers_ideal = Some(round);
            break;
        }
    }
    r.violation = w.check().err().map(|v| v.to_string());
    r.probes = w.cold_probes();
    Ok(r)
}

/// One error bar of the plot: (N, min, median, max).
type Bar = (f64, f64, f64, f64);

fn show(v: Option<u64>) -> String {
    v.map_or("never".to_string(), |v| v.to_string())
}

pub fn cold_start(common: &Common, a: &ColdStartArgs) -> Result<String, SimError> {
    let sizes: Vec<usize> = list(&a.nodes, "--nodes")?;
    if sizes.iter().any(|&n| n < 2)
        || a.runs == 0
        || a.seeds == Some(0)
        || !(0.0..1.0).contains(&a.dead)
        || !(0.0..=1.0).contains(&a.spread)
    {
        return Err(SimError::Arg(
            "--nodes ≥ 2, --runs ≥ 1, --seeds ≥ 1, --dead in [0, 1), --spread in [0, 1]".into(),
        ));
    }
    let out = Out::new(&common.out)?;
    let cfg = common.sim(common.seed)?;
    let mut text = format!(
        "{}\n# cold start: N nodes come up {} with one shared bootstrap list of K (drawn from the seed), the {:.0}% lowest-id of which never come up; no ring yet (--build does not apply); nodes decide {}\n# rounds (stabilize periods) from the first node up: first start, every node a member, successors+predecessors ideal, fingers ideal too (cap {})\n",
        common.describe(&cfg),
        if a.spread > 0.0 {
            format!("within {} of a round", a.spread)
        } else {
            "at the same instant".to_string()
        },
        a.dead * 100.0,
        match a.decide {
            Decide::Period => "at the end of each stabilize period",
            Decide::Answers => "once their probes are answered, then wait a period",
        },
        a.max_rounds
    );
    let header = [
        "nodes",
        "seed",
        "list",
        "dead",
        "live",
        "starts",
        "first_start",
        "all_members",
        "ring_ideal",
        "fingers_ideal",
        "probes_per_node",
    ];
    text += &format!(
        "{:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>11} {:>11} {:>10} {:>13} {:>15}\n",
        header[0],
        header[1],
        header[2],
        header[3],
        header[4],
        header[5],
        header[6],
        header[7],
        header[8],
        header[9],
        header[10]
    );
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut summary = String::new();
    let mut series: Vec<(&str, Vec<Bar>)> = vec![
        ("ring started", Vec::new()),
        ("every node a member", Vec::new()),
        ("successors + predecessors ideal", Vec::new()),
        ("fingers ideal too", Vec::new()),
    ];
    for &n in &sizes {
        let k = a.seeds.unwrap_or_else(|| default_list(n)).min(n);
        let dead = (k as f64 * a.dead).round() as usize;
        if dead >= k {
            return Err(SimError::Arg(format!(
                "--dead {} leaves none of the {k} list members up",
                a.dead
            )));
        }
        let sc = Scenario {
            nodes: n,
            list: k,
            dead,
            spread: a.spread,
            max_rounds: a.max_rounds,
            decide: a.decide,
            check: common.check,
        };
        let mut per: [Vec<u64>; 4] = Default::default();
        let mut not_converged = 0;
        for run in 0..a.runs {
            let seed = common.seed + run;
            let r = cold_run(common.sim(seed)?, &sc)
                .map_err(|e| SimError::Violation(format!("{text}{e}")))?;
            let probes = f(r.probes as f64 / r.live as f64, 1);
            text += &format!(
                "{:>6} {:>6} {:>5} {:>5} {:>6} {:>6} {:>11} {:>11} {:>10} {:>13} {:>15}\n",
                n,
                seed,
                k,
                dead,
                r.live,
                r.starts,
                show(r.first_start),
                show(r.all_members),
                show(r.ring_ideal),
                show(r.fingers_ideal),
                probes
            );
            rows.push(vec![
                n.to_string(),
                seed.to_string(),
                k.to_string(),
                dead.to_string(),
                r.live.to_string(),
                r.starts.to_string(),
                show(r.first_start),
                show(r.all_members),
                show(r.ring_ideal),
                show(r.fingers_ideal),
                probes,
            ]);
            if let Some(why) = r.failure() {
                failures.push(format!("N = {n}, seed {seed}: {why}"));
            }
            let got = [r.first_start, r.all_members, r.ring_ideal, r.fingers_ideal];
            for (v, g) in per.iter_mut().zip(got) {
                v.extend(g);
            }
            not_converged += u64::from(r.fingers_ideal.is_none());
        }
        let q = |v: &mut Vec<u64>| -> (f64, f64, f64) {
            v.sort_unstable();
            (
                quantile(v, 0.0),
                quantile(v, 0.5),
                v.last().copied().unwrap_or(0) as f64,
            )
        };
        let mut line = format!("N = {n}, K = {k}:");
        for ((name, pts), v) in series.iter_mut().zip(per.iter_mut()) {
            if v.is_empty() {
                line += &format!(" {name} never;");
                continue;
            }
            let (lo, mid, hi) = q(v);
            line += &format!(" {name} p50 {mid} max {hi};");
            pts.push((n as f64, lo, mid, hi));
        }
        summary += &format!(
            "{line} not converged in {not_converged} of {} runs\n",
            a.runs
        );
    }
    text += &summary;
    out.csv("cold-start.csv", &header, &rows)?;
    let xmax = sizes.iter().copied().max().unwrap_or(10) as f64 * 1.05;
    let ymax = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|b| b.3))
        .fold(1.0, f64::max)
        * 1.1;
    plot(
        &out,
        "cold-start.svg",
        &Chart {
            title: "Cold start: rounds until one ideal ring (min, median, max over runs)",
            x: "nodes N",
            y: "stabilize rounds",
            xr: (0.0, xmax),
            yr: (0.0, ymax),
        },
        &series
            .into_iter()
            .map(|(name, bars)| {
                let mids = bars.iter().map(|b| (b.0, b.2)).collect();
                Series::new(name, mids, Style::ErrorBars(bars))
            })
            .collect::<Vec<_>>(),
    )?;
    if !failures.is_empty() {
        return Err(SimError::Violation(format!(
            "{text}cold start failed:\n  {}",
            failures.join("\n  ")
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::path_length::tests::common;

    fn scenario(list: usize, dead: usize, spread: f64) -> Scenario {
        Scenario {
            nodes: 10,
            list,
            dead,
            spread,
            max_rounds: 300,
            decide: Decide::Period,
            check: true,
        }
    }

    fn one_ideal_ring(r: &ColdRun, bound: u64) {
        assert_eq!(r.failure(), None, "{r:?}");
        assert_eq!(r.starts, 1, "{r:?}");
        assert!(r.fingers_ideal.is_some_and(|k| k <= bound), "{r:?}");
    }

    /// The brief's scenario: ten nodes up at the same instant, every node on the list or
    /// three seeds; exactly one starts the ring and it becomes ideal.
    #[test]
    fn ten_nodes_up_at_once_form_one_ideal_ring() {
        let c = common(&[]);
        for seed in 1..=3 {
            for list in [10, 3] {
                let r = cold_run(c.sim(seed).unwrap(), &scenario(list, 0, 0.0)).unwrap();
                one_ideal_ring(&r, 40);
                assert_eq!(r.live, 10);
            }
        }
    }

    /// With every node on the list, everyone probes everyone: nodes coming up at different
    /// times within a round still agree (the rule's "listens before it probes" argument).
    #[test]
    fn a_full_list_agrees_when_nodes_come_up_at_different_times() {
        let c = common(&[]);
        for seed in 1..=3 {
            let r = cold_run(c.sim(seed).unwrap(), &scenario(10, 0, 1.0)).unwrap();
            one_ideal_ring(&r, 40);
        }
    }

    #[test]
    fn the_rule_routes_around_dead_seeds() {
        let c = common(&[]);
        let r = cold_run(c.sim(4).unwrap(), &scenario(10, 3, 0.0)).unwrap();
        one_ideal_ring(&r, 40);
        assert_eq!(r.live, 7);
    }

    #[test]
    fn two_starters_or_a_broken_ring_fail_the_run() {
        let ok = ColdRun {
            live: 10,
            starts: 1,
            first_start: Some(2),
            all_members: Some(4),
            ring_ideal: Some(16),
            fingers_ideal: Some(16),
            violation: None,
            probes: 100,
        };
        assert_eq!(ok.failure(), None);
        let two = ColdRun {
            starts: 2,
            ..ok.clone()
        };
        assert!(two.failure().is_some_and(|w| w.contains("2 nodes started")));
        let broken = ColdRun {
            violation: Some("AtMostOneRing".into()),
            ..ok
        };
        assert!(broken.failure().is_some());
    }

    #[test]
    fn a_run_is_deterministic() {
        let c = common(&["--latency", "1..30"]);
        let a = cold_run(c.sim(7).unwrap(), &scenario(3, 0, 0.5)).unwrap();
        let b = cold_run(c.sim(7).unwrap(), &scenario(3, 0, 0.5)).unwrap();
        assert_eq!(a, b);
        let dir = std::env::temp_dir().join(format!("dht-sim-cold-{}", std::process::id()));
        let out = dir.to_str().unwrap();
        let args = ColdStartArgs {
            nodes: "10".into(),
            seeds: Some(10),
            runs: 2,
            dead: 0.0,
            spread: 0.5,
            max_rounds: 300,
            decide: Decide::Answers,
        };
        let c = common(&["--out", out]);
        let t1 = cold_start(&c, &args).unwrap();
        let f1 = std::fs::read(dir.join("cold-start.csv")).unwrap();
        let t2 = cold_start(&c, &args).unwrap();
        let f2 = std::fs::read(dir.join("cold-start.csv")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(t1, t2);
        assert_eq!(f1, f2);
    }
}
