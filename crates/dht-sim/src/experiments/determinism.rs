//! The simulator's promise (crate docs): the same arguments give byte-identical output. Each
//! test runs one experiment twice into two fresh directories and compares the printed table
//! and every file written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::check::{check, CheckArgs};
use super::churn::{churn, ChurnArgs};
use super::failures::{failures, FailuresArgs};
use super::Common;
use crate::SimError;

#[derive(Parser)]
struct Cli<A: clap::Args> {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    args: A,
}

/// A fresh, empty directory for one run of one test.
fn fresh_dir(test: &str, run: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dht-sim-determinism-{}-{test}-{run}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every file of `dir` by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Runs `exp` twice with `args` (plus `--out` a fresh directory each time) and asserts the
/// same stdout and the same files, of which there must be at least one.
fn twice<A: clap::Args + clap::FromArgMatches>(
    test: &str,
    args: &[&str],
    exp: impl Fn(&Common, &A) -> Result<String, SimError>,
) {
    let mut outs = Vec::new();
    for run in 0..2 {
        let dir = fresh_dir(test, run);
        let dir_s = dir.display().to_string();
        let mut argv = vec!["dht-sim", "--out", &dir_s];
        argv.extend_from_slice(args);
        let cli = Cli::<A>::parse_from(argv);
        let text = exp(&cli.common, &cli.args).unwrap();
        let written = files(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        outs.push((text, written));
    }
    assert!(!outs[0].1.is_empty(), "{test} wrote no file");
    assert_eq!(outs[0].0, outs[1].0, "{test}: stdout differs");
    assert_eq!(outs[0].1, outs[1].1, "{test}: files differ");
}

#[test]
fn check_twice_gives_identical_output() {
    // Message loss and churn exercise the confirm-once retries and the random draws.
    twice::<CheckArgs>(
        "check",
        &[
            "--hash-size",
            "32",
            "--loss",
            "0.01",
            "--mode",
            "safety",
            "--runs",
            "2",
            "--nodes",
            "20",
            "--rounds",
            "6",
            "--successors",
            "4",
        ],
        check,
    );
}

#[test]
fn churn_twice_gives_identical_output() {
    twice::<ChurnArgs>(
        "churn",
        &[
            "--hash-size",
            "32",
            "--nodes",
            "60",
            "--rates",
            "2",
            "--warmup",
            "2",
            "--rounds",
            "2",
            "--lookups",
            "20",
        ],
        churn,
    );
}

#[test]
fn failures_twice_gives_identical_output() {
    twice::<FailuresArgs>(
        "failures",
        &[
            "--hash-size",
            "32",
            "--nodes",
            "200",
            "--fractions",
            "0.2",
            "--rounds",
            "0,1",
            "--lookups",
            "100",
        ],
        failures,
    );
}
