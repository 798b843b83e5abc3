//! The experiments, one module each, and what they share: the common arguments, building a
//! ring (`--build ideal` or `--build protocol`) and summarising lookups.
//!
//! Each experiment prints a short table on stdout and writes `<name>.csv` and `<name>.svg`
//! into `--out`. Stdout and the files depend only on the arguments; wall time and peak memory
//! go to stderr, so `diff` of two runs' stdout is a determinism test.

pub mod check;
pub mod churn;
pub mod cold_start;
pub mod failures;
pub mod load;
pub mod partition;
pub mod path_length;
pub mod scale;

#[cfg(test)]
mod determinism;

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use dht_core::ChordConfig;

use crate::engine::Time;
use crate::net::{Latency, NetModel};
use crate::stats::{summarize, Summary};
use crate::world::{LookupResult, Outcome, SimConfig, World};
use crate::SimError;

/// The hop convention, printed next to every hop figure (docs/protocol.md).
pub const HOPS: &str = "hops = nodes that answered until the key's predecessor was found \
(the Chord paper's path length; 0 when the start node is the predecessor)";

/// How the ring is put together before an experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Build {
    /// Every table computed from the membership (fast): the paper's static-network setting.
    Ideal,
    /// One node, then waves of joins through the protocol's own join + stabilize +
    /// fix-fingers, until every table is ideal.
    Protocol,
}

/// Arguments every experiment takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Seed of the one generator behind ids, latencies, losses, failures and keys.
    #[arg(long, default_value_t = 1, global = true)]
    pub seed: u64,
    /// Directory for CSV and SVG files.
    #[arg(long, default_value = "sim-out", global = true)]
    pub out: PathBuf,
    /// Identifier bits (as dhtd's hash_size).
    #[arg(long, default_value_t = 160, global = true)]
    pub hash_size: u32,
    /// max_nodes as configured in dhtd; sets the default successor-list length.
    #[arg(long, default_value_t = 1024, global = true)]
    pub max_nodes: u64,
    /// Successor-list length r (default: dhtd's, max(4, 2·⌈log2 max_nodes⌉)).
    #[arg(long, global = true)]
    pub successors: Option<usize>,
    /// One-way latency in ms: constant ("20") or uniform range ("5..50").
    #[arg(long, default_value = "5..50", global = true)]
    pub latency: String,
    /// Probability that a message is lost.
    #[arg(long, default_value_t = 0.0, global = true)]
    pub loss: f64,
    /// Call timeout in ms.
    #[arg(long, default_value_t = 500.0, global = true)]
    pub timeout_ms: f64,
    /// Stabilize period in ms: one round.
    #[arg(long, default_value_t = 1000.0, global = true)]
    pub stabilize_ms: f64,
    /// Fix-fingers period in ms (one finger lookup each).
    #[arg(long, default_value_t = 250.0, global = true)]
    pub fix_fingers_ms: f64,
    /// How the ring is built.
    #[arg(long, value_enum, default_value_t = Build::Ideal, global = true)]
    pub build: Build,
    /// Check Zave's invariants after every stabilize round; stop at the first violation.
    #[arg(long, global = true)]
    pub check: bool,
}

fn ms(v: f64, what: &str) -> Result<Time, SimError> {
    if !(v.is_finite() && v > 0.0 && v <= 3_600_000.0) {
        return Err(SimError::Arg(format!(
            "{what} {v} ms is out of range (0, 3600000]"
        )));
    }
    Ok((v * 1000.0).round() as Time)
}

impl Common {
    /// The simulation configuration these arguments describe, with `seed` in place of
    /// `--seed` (experiments run several seeded worlds).
    pub fn sim(&self, seed: u64) -> Result<SimConfig, SimError> {
        let mut chord = ChordConfig::new(self.hash_size, self.max_nodes)
            .map_err(|e| SimError::Arg(e.to_string()))?;
        if let Some(r) = self.successors {
            chord = chord
                .with_successors(r)
                .map_err(|e| SimError::Arg(e.to_string()))?;
        }
        let cfg = SimConfig {
            chord,
            net: NetModel::new(Latency::parse(&self.latency)?, self.loss)?,
            timeout: ms(self.timeout_ms, "timeout")?,
            stabilize_every: ms(self.stabilize_ms, "stabilize interval")?,
            fix_fingers_every: ms(self.fix_fingers_ms, "fix-fingers interval")?,
            seed,
            trace: if self.check { 200 } else { 0 },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// One line describing the setting, printed before each table.
    pub fn describe(&self, cfg: &SimConfig) -> String {
        format!(
            "# seed {} | build {:?} | hash_size {} | r = {} | latency {} | loss {} | timeout {} ms | stabilize every {} ms | fix-fingers every {} ms",
            self.seed,
            self.build,
            cfg.chord.space.bits(),
            cfg.chord.successors,
            cfg.net.latency,
            cfg.net.loss,
            self.timeout_ms,
            self.stabilize_ms,
            self.fix_fingers_ms
        )
    }
}

/// How a build went.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildReport {
    /// Stabilize rounds of virtual time the protocol build took (0 for ideal).
    pub rounds: u64,
    /// Whether every table (fingers included) ended ideal.
    pub ideal: bool,
}

/// Builds an `n`-node ring the chosen way; maintenance is left off.
pub fn build(world: &mut World, n: usize, how: Build) -> Result<BuildReport, SimError> {
    match how {
        Build::Ideal => {
            world.build_ideal(n);
            Ok(BuildReport {
                rounds: 0,
                ideal: true,
            })
        }
        Build::Protocol => build_protocol(world, n),
    }
}

/// Joins in waves that double the ring, each wave spread over one round, each followed by
/// rounds of maintenance until successors and predecessors are ideal; then maintenance until
/// fingers are ideal too (bounded).
///
/// The build runs on a loss-free network (the experiment's loss applies afterwards): with
/// loss, a lost reply makes a live peer look dead for `dead_rounds` rounds, and a ring that
/// keeps suspecting someone is never ideal at one instant, so the build would not end.
fn build_protocol(world: &mut World, n: usize) -> Result<BuildReport, SimError> {
    let loss = world.cfg.net.loss;
    world.cfg.net.loss = 0.0;
    let r = build_protocol_lossless(world, n);
    world.cfg.net.loss = loss;
    r
}

fn build_protocol_lossless(world: &mut World, n: usize) -> Result<BuildReport, SimError> {
    let start = world.now();
    world.set_maintenance(true);
    let first = world.add_node();
    world.start_join(first);
    world.run_rounds(1);
    let per_wave_bound = 200;
    while world.len() < n && world.room() > 0 {
        let wave = world.len().min(n - world.len());
        for _ in 0..wave {
            if world.room() == 0 {
                break;
            }
            let ix = world.add_node();
            let delay = world.random_delay(world.cfg.stabilize_every);
            world.start_join_after(ix, delay);
        }
        let mut rounds = 0;
        loop {
            world.run_rounds(1);
            rounds += 1;
            if world.pending_joins() == 0 && world.is_ideal(false) {
                break;
            }
            if rounds >= per_wave_bound {
                return Err(SimError::Arg(format!(
                    "protocol build stuck at {} members after {rounds} rounds",
                    world.len()
                )));
            }
        }
    }
    let mut extra = 0;
    let bound = 4 * world.cfg.chord.space.bits() as u64 + 100;
    while !world.is_ideal(true) && extra < bound {
        world.run_rounds(1);
        extra += 1;
    }
    world.set_maintenance(false);
    world.settle();
    let rounds = (world.now() - start).div_ceil(world.cfg.stabilize_every);
    Ok(BuildReport {
        rounds,
        ideal: world.is_ideal(true),
    })
}

/// Aggregates of a batch of measured lookups.
#[derive(Clone, Copy, Debug, Default)]
pub struct LookupStats {
    pub count: usize,
    pub hops: Summary,
    /// Fraction that did not end at the key's live successor.
    pub fail: f64,
    pub failed: usize,
    pub dead_owner: usize,
    pub wrong_owner: usize,
    pub mean_timeouts: f64,
    pub mean_latency_ms: f64,
}

pub fn lookup_stats(res: &[LookupResult]) -> LookupStats {
    let mut hops: Vec<u64> = res.iter().map(|r| r.hops as u64).collect();
    let count = res.len();
    let by = |o: Outcome| res.iter().filter(|r| r.outcome == o).count();
    let (failed, dead_owner, wrong_owner) = (
        by(Outcome::Failed),
        by(Outcome::DeadOwner),
        by(Outcome::WrongOwner),
    );
    let n = count.max(1) as f64;
    LookupStats {
        count,
        hops: summarize(&mut hops),
        fail: (failed + dead_owner + wrong_owner) as f64 / n,
        failed,
        dead_owner,
        wrong_owner,
        mean_timeouts: res.iter().map(|r| r.timeouts as f64).sum::<f64>() / n,
        mean_latency_ms: res.iter().map(|r| r.latency as f64).sum::<f64>() / n / 1000.0,
    }
}

/// Parses a comma-separated list of numbers.
pub fn list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>, SimError> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| SimError::Arg(format!("{what}: cannot parse {x:?} in {s:?}")))
        })
        .collect()
}
