//! End-to-end tests: real `dhtd` processes on 127.0.0.1, driven by real `dhtctl` and
//! `dht-client`. Every test is bounded in time and kills its processes when it ends.

mod cli;
mod coldstart;
mod harness;
mod history;
mod lifecycle;
mod observe;
mod quorum;
mod rejoin;
mod replication;
mod ring;
mod storage;
mod versions;
