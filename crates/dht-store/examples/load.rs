//! Engine-level scale benchmark of `RedbStore`: bulk load, concurrent small writes (group
//! commit), memory, file size, reopen time and random reads.
//!
//! ```text
//! cargo run --release -p dht-store --example load -- [--keys N] [--threads T] [--small N]
//!     [--gets N] [--async-ms MS]
//! ```
//!
//! Keys are 16 bytes, values 100 bytes, ids SHA-1 of the key as a node computes them. The
//! database lives in a temporary directory that is removed at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use dht_core::IdSpace;
use dht_store::{Durability, Entry, Record, RedbStore, Store, StoreOptions, Version};

struct Args {
    keys: u64,
    threads: u64,
    /// Entries written from the concurrent threads, in applies of `SMALL_BATCH` entries.
    small: u64,
    gets: u64,
    /// `Some(ms)`: Durability::Async with this flush interval.
    async_ms: Option<u64>,
}

const BATCH: u64 = 1000;
const SMALL_BATCH: u64 = 4;

fn parse() -> Result<Args, String> {
    let mut a = Args {
        keys: 1_000_000,
        threads: 8,
        small: 100_000,
        gets: 200_000,
        async_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || -> Result<u64, String> {
            let v = it.next().ok_or(format!("{flag} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--keys" => a.keys = num()?,
            "--threads" => a.threads = num()?.max(1),
            "--small" => a.small = num()?,
            "--gets" => a.gets = num()?,
            "--async-ms" => a.async_ms = Some(num()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// splitmix64: deterministic, well-spread keys without a rand dependency.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(i: u64) -> Vec<u8> {
    let mut k = mix(i).to_be_bytes().to_vec();
    k.extend_from_slice(&mix(i ^ 0x5555_5555).to_be_bytes());
    k
}

fn entry(space: IdSpace, i: u64) -> Entry {
    let key = key(i);
    let value: Vec<u8> = (0..100u8).map(|b| b ^ (i as u8)).collect();
    Entry {
        id: space.hash(&key),
        key,
        record: Record {
            value: Some(value),
            version: Version {
                hlc: 1_700_000_000_000 << Version::LOGICAL_BITS,
                node: 1,
            },
            expires_at_ms: None,
        },
    }
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("VmRSS {} (peak VmHWM {})", field("VmRSS:"), field("VmHWM:"))
}

fn dir_size(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut len = 0;
    let mut blocks = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(m) = e.metadata() {
            len += m.len();
            blocks += m.blocks() * 512;
        }
    }
    format!(
        "{:.1} MiB apparent, {:.1} MiB on disk",
        mib(len),
        mib(blocks)
    )
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn rate(n: u64, d: Duration) -> String {
    format!(
        "{:.0}/s ({n} in {:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = parse()?;
    let space = IdSpace::default();
    let tmp = tempfile::tempdir()?;
    let opts = StoreOptions {
        durability: match a.async_ms {
            Some(ms) => Durability::Async {
                flush_interval: Duration::from_millis(ms),
            },
            None => Durability::Sync,
        },
        ..StoreOptions::default()
    };
    println!(
        "durability {:?}, cache {} MiB",
        opts.durability,
        opts.cache_bytes >> 20
    );

    let store = RedbStore::open(tmp.path(), opts.clone())?;
    let t = Instant::now();
    let mut i = 0;
    while i < a.keys {
        let end = (i + BATCH).min(a.keys);
        let batch: Vec<Entry> = (i..end).map(|j| entry(space, j)).collect();
        store.apply(&batch)?;
        i = end;
    }
    println!(
        "bulk load, 1 thread, {BATCH}/apply: {} puts",
        rate(a.keys, t.elapsed())
    );
    println!("  after load: {}", rss());

    // Concurrent small applies: the same work from 1 thread, then from `threads`, so the
    // group-commit gain is visible (each 1-thread apply pays its own commit).
    let solo = (a.small / 10).max(SMALL_BATCH);
    let before = store.stats()?;
    let t = Instant::now();
    let mut i = a.keys;
    while i < a.keys + solo {
        let batch: Vec<Entry> = (i..i + SMALL_BATCH).map(|j| entry(space, j)).collect();
        store.apply(&batch)?;
        i += SMALL_BATCH;
    }
    let d = t.elapsed();
    let after = store.stats()?;
    println!(
        "small applies, 1 thread, {SMALL_BATCH}/apply: {} puts, {} commits",
        rate(solo, d),
        after.commits - before.commits
    );
    let base = a.keys + solo;
    let per_thread = a.small / a.threads / SMALL_BATCH * SMALL_BATCH;
    let t = Instant::now();
    std::thread::scope(|s| -> Result<(), dht_store::StoreError> {
        let handles: Vec<_> = (0..a.threads)
            .map(|th| {
                let store = &store;
                s.spawn(move || -> Result<(), dht_store::StoreError> {
                    let start = base + th * per_thread;
                    let mut i = start;
                    while i < start + per_thread {
                        let batch: Vec<Entry> =
                            (i..i + SMALL_BATCH).map(|j| entry(space, j)).collect();
                        store.apply(&batch)?;
                        i += SMALL_BATCH;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| dht_store::StoreError::Backend("a writer thread panicked".into()))??;
        }
        Ok(())
    })?;
    let d = t.elapsed();
    let st = store.stats()?;
    let (reqs, commits) = (st.requests - after.requests, st.commits - after.commits);
    println!(
        "small applies, {} threads, {SMALL_BATCH}/apply: {} puts, {reqs} applies in {commits} \
         commits ({:.1} applies/commit)",
        a.threads,
        rate(per_thread * a.threads, d),
        reqs as f64 / commits.max(1) as f64
    );
    let total = store.len()?;
    println!("entries {total}; {}", rss());
    drop(store);
    println!("data dir: {}", dir_size(tmp.path()));

    let t = Instant::now();
    let store = RedbStore::open(tmp.path(), opts)?;
    let n = store.len()?;
    println!(
        "reopen: {:.1} ms ({n} entries)",
        t.elapsed().as_secs_f64() * 1e3
    );

    let get_run = |threads: u64| -> Result<Duration, dht_store::StoreError> {
        let t = Instant::now();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|th| {
                    let store = &store;
                    s.spawn(move || -> Result<(), dht_store::StoreError> {
                        for g in 0..a.gets / threads {
                            let i = mix(g ^ (th << 40)) % a.keys.max(1);
                            let e = entry(space, i);
                            if store.get(e.id, &e.key)?.is_none() {
                                return Err(dht_store::StoreError::Backend(format!(
                                    "key {i} missing after reopen"
                                )));
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in hs {
                h.join()
                    .map_err(|_| dht_store::StoreError::Backend("reader panicked".into()))??;
            }
            Ok(t.elapsed())
        })
    };
    if a.keys > 0 {
        // Each get also recomputes the key's SHA-1 and value, a small constant overhead.
        println!("random gets, 1 thread: {}", rate(a.gets, get_run(1)?));
        let n = a.gets / a.threads * a.threads;
        println!(
            "random gets, {} threads: {}",
            a.threads,
            rate(n, get_run(a.threads)?)
        );
    }
    println!("final: {}", rss());
    Ok(())
}
