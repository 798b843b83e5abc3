//! `dht-sim`: the command line over the simulator library. One subcommand per experiment; the
//! table goes to stdout (identical for identical arguments), resource use to stderr, and any
//! error is one line with a non-zero exit code (2 for bad arguments, 1 for a failed check).

use clap::{Parser, Subcommand};
use dht_sim::experiments::{
    check::{self, CheckArgs},
    churn::{self, ChurnArgs},
    cold_start::{self, ColdStartArgs},
    failures::{self, FailuresArgs},
    load::{self, LoadArgs},
    partition::{self, PartitionArgs},
    path_length::{self, PathLengthArgs, PathPdfArgs, SeedTableArgs},
    scale::{self, ScaleArgs},
    Common,
};
use dht_sim::SimError;

#[derive(Parser)]
#[command(
    name = "dht-sim",
    version,
    about = "Deterministic Chord simulator over dht-core"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    exp: Exp,
}

#[derive(Subcommand)]
enum Exp {
    /// Mean, 1st and 99th percentile of hops for N = 2^3..2^k (and 100,000).
    PathLength(PathLengthArgs),
    /// Distribution of hops at one N (default 2^12).
    PathPdf(PathPdfArgs),
    /// Lookups right after a fraction of nodes fail at once, and after k stabilize rounds.
    Failures(FailuresArgs),
    /// Lookups under continuous joins and failures.
    Churn(ChurnArgs),
    /// Keys per node.
    Load(LoadArgs),
    /// Mean hops for 20, 40, ..., 300 nodes against ½·log2 N.
    SeedTable(SeedTableArgs),
    /// Fraction of runs in which the ring breaks when half of 64 nodes fail, r = 3, 6, 12.
    PartitionRisk(PartitionArgs),
    /// Zave's invariants: safety, liveness, or the negative control.
    Check(CheckArgs),
    /// Build a large ring and run many lookups; wall time and peak memory on stderr.
    Scale(ScaleArgs),
    /// N nodes with one bootstrap list and no ring: rounds until the cold-start rule and the
    /// protocol give one ideal ring.
    ColdStart(ColdStartArgs),
}

fn main() {
    let cli = Cli::parse();
    let c = &cli.common;
    let res = match &cli.exp {
        Exp::PathLength(a) => path_length::path_length(c, a),
        Exp::PathPdf(a) => path_length::path_pdf(c, a),
        Exp::Failures(a) => failures::failures(c, a),
        Exp::Churn(a) => churn::churn(c, a),
        Exp::Load(a) => load::load(c, a),
        Exp::SeedTable(a) => path_length::seed_table(c, a),
        Exp::PartitionRisk(a) => partition::partition_risk(c, a),
        Exp::Check(a) => check::check(c, a),
        Exp::Scale(a) => scale::scale(c, a),
        Exp::ColdStart(a) => cold_start::cold_start(c, a),
    };
    match res {
        Ok(text) => print!("{text}"),
        Err(SimError::Violation(report)) => {
            println!("{report}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("dht-sim: {e}");
            std::process::exit(2);
        }
    }
}
