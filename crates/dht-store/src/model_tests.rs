//! Both engines against a brute-force model: random writes into a small id space, then every
//! scan (random from/to, equal and wrapping ones included) paged with small limits must yield
//! exactly the model's list, and apply/purge must leave exactly the model's contents.

use std::collections::BTreeMap;

use dht_core::Id;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

use crate::{Durability, Entry, MemoryStore, Record, RedbStore, Store, StoreOptions, Version};

type Model = BTreeMap<(u64, Vec<u8>), Record>;

fn arb_entry() -> impl Strategy<Value = Entry> {
    (
        0u64..12,
        prop::sample::select(vec![&b""[..], b"a", b"b", b"ab"]),
        0u64..6,
        any::<bool>(),
        prop::option::of(0u64..10),
    )
        .prop_map(|(id, key, t, tomb, exp)| Entry {
            id: Id::from_u64(id),
            key: key.to_vec(),
            record: Record {
                value: (!tomb).then(|| vec![t as u8]),
                version: Version {
                    hlc: t << Version::LOGICAL_BITS,
                    node: id % 2,
                },
                expires_at_ms: exp,
            },
        })
}

fn model_apply(m: &mut Model, es: &[Entry]) -> Vec<bool> {
    es.iter()
        .map(|e| {
            let k = (e.id.low_u64(), e.key.clone());
            let newer = m.get(&k).is_none_or(|old| e.record.version > old.version);
            if newer {
                m.insert(k, e.record.clone());
            }
            newer
        })
        .collect()
}

/// (from, to] in ring order starting after `from`, by brute force.
fn model_scan(m: &Model, from: u64, to: u64) -> Vec<(u64, Vec<u8>)> {
    let inside = |id: u64| {
        if from < to {
            from < id && id <= to
        } else {
            id > from || id <= to
        }
    };
    let mut v: Vec<_> = m.keys().filter(|(id, _)| inside(*id)).cloned().collect();
    v.sort_by_key(|(id, k)| (*id <= from, *id, k.clone()));
    v
}

fn paged(s: &dyn Store, from: u64, to: u64, limit: usize) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .scan(Id::from_u64(from), Id::from_u64(to), after.clone(), limit)
            .unwrap();
        assert!(page.len() <= limit);
        let Some(last) = page.last() else { break };
        after = Some((last.id, last.key.clone()));
        out.extend(page.into_iter().map(|e| (e.id.low_u64(), e.key)));
        // A runaway cursor would loop forever; the model bounds the honest answer.
        assert!(out.len() <= 64, "scan did not terminate");
    }
    out
}

fn contents(s: &dyn Store) -> Model {
    let all = s.scan(Id::ZERO, Id::ZERO, None, usize::MAX).unwrap();
    all.into_iter()
        .map(|e| ((e.id.low_u64(), e.key), e.record))
        .collect()
}

/// One redb store for a whole property (opening a database per case is slow in debug builds),
/// emptied before each case; a fresh MemoryStore per case.
struct Engines {
    _dir: tempfile::TempDir,
    redb: RedbStore,
}

impl Engines {
    fn new() -> Engines {
        let dir = tempfile::tempdir().unwrap();
        // Async: these cases test ordering, not fsync; dropping the store still flushes.
        let opts = StoreOptions {
            durability: Durability::Async {
                flush_interval: std::time::Duration::from_secs(60),
            },
            ..StoreOptions::default()
        };
        let redb = RedbStore::open(dir.path(), opts).unwrap();
        Engines { _dir: dir, redb }
    }

    fn fresh(&self) -> (MemoryStore, &RedbStore) {
        self.redb.clear_for_tests();
        (MemoryStore::new(), &self.redb)
    }
}

fn run<S: Strategy>(
    strategy: S,
    test: impl Fn(&[&dyn Store], S::Value) -> Result<(), TestCaseError>,
) {
    let engines = Engines::new();
    let mut runner = TestRunner::new(ProptestConfig::with_cases(64));
    let result = runner.run(&strategy, |v| {
        let (mem, redb) = engines.fresh();
        test(&[&mem, redb], v)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn apply_matches_model() {
    let batches = prop::collection::vec(prop::collection::vec(arb_entry(), 1..8), 1..5);
    run(batches, |engines, batches| {
        let mut model = Model::new();
        for b in &batches {
            let want = model_apply(&mut model, b);
            for s in engines {
                prop_assert_eq!(s.apply(b).unwrap(), want.clone());
            }
        }
        for s in engines {
            prop_assert_eq!(contents(*s), model.clone());
            prop_assert_eq!(s.len().unwrap(), model.len() as u64);
        }
        Ok(())
    });
}

#[test]
fn paged_scan_matches_brute_force() {
    let input = (
        prop::collection::vec(arb_entry(), 0..24),
        prop::collection::vec((0u64..13, 0u64..13, 1usize..4), 1..8),
    );
    run(input, |engines, (es, ranges)| {
        let mut model = Model::new();
        model_apply(&mut model, &es);
        for s in engines {
            s.apply(&es).unwrap();
        }
        for &(from, to, limit) in &ranges {
            let want = model_scan(&model, from, to);
            for s in engines {
                prop_assert_eq!(
                    paged(*s, from, to, limit),
                    want.clone(),
                    "from {} to {} limit {}",
                    from,
                    to,
                    limit
                );
            }
        }
        Ok(())
    });
}

#[test]
fn purge_matches_model() {
    let input = (prop::collection::vec(arb_entry(), 0..24), 0u64..12, 0u64..6);
    run(input, |engines, (es, now, grace)| {
        let mut model = Model::new();
        model_apply(&mut model, &es);
        let before = model.len();
        model.retain(|_, r| {
            !crate::purgeable(r.value.is_none(), r.version, r.expires_at_ms, now, grace)
        });
        for s in engines {
            s.apply(&es).unwrap();
            prop_assert_eq!(s.purge(now, grace).unwrap(), before - model.len());
            prop_assert_eq!(contents(*s), model.clone());
        }
        Ok(())
    });
}
