//! Both engines against an independent brute-force model.
//!
//! The model is a sorted map written from the documented semantics alone (the [`Store`] trait,
//! [`Version`] and [`Record`] docs), never from the engines' code: it has its own write rule,
//! its own purge rule and its own ring arithmetic on 160-bit ids. Each engine must answer every
//! call exactly as the model does, and hold exactly the model's contents afterwards.
//!
//! What the cases draw, and why:
//! - Ids come from a small per-case pool of full-width ids: three random ones, a random one's
//!   successor, and edges: 0, 1, 2^64 - 1 and 2^64 (whose low 64 bits are those of 0, so a
//!   u64 view of ids would confuse them), 2^159 - 1 and 2^159, max - 1 and max. Many keys
//!   share an id, so the (id, key) order matters, and byte and limb boundaries are crossed.
//! - Scan bounds are pool ids, their neighbours (an entry's id, the id just before it, just
//!   after it) or any 160-bit id; `to` is often `from` itself (the whole ring), and wrapping
//!   intervals are as likely as plain ones. Scans are paged with tiny limits and also resumed
//!   from arbitrary cursors, stored or not.
//! - Writes often re-target an earlier write's key with the very same version (and another
//!   value), with the same hlc from another writer node, or with any version, so the tie rules
//!   are exercised, not just stated. Times are small so that the purge boundaries (expiry at
//!   `now`, a tombstone exactly `grace` old) are hit, plus the extremes of u64.
//!
//! `mutants` at the end runs the same properties against deliberately broken stores, to show
//! the model fails them.

use std::collections::BTreeMap;

use dht_core::Id;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::{
    Durability, Entry, MemoryStore, Record, RedbStore, Store, StoreError, StoreOptions, Version,
};

// ------------------------------------------------------------------------------------------
// The model.

/// A ring id as the model sees it: 20 big-endian bytes. Equal-length big-endian byte arrays
/// compare lexicographically exactly as the 160-bit numbers they encode, so the model orders
/// ids numerically without `Id`'s own `Ord` and without any u64 view of an id.
type Mid = [u8; 20];

const ZERO: Mid = [0; 20];
const ONE: Mid = {
    let mut b = [0; 20];
    b[19] = 1;
    b
};
const MAX: Mid = [0xff; 20];

/// `a - b` modulo 2^160.
fn sub(a: Mid, b: Mid) -> Mid {
    let mut out = [0; 20];
    let mut borrow = 0;
    for i in (0..20).rev() {
        let d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        out[i] = d.rem_euclid(256) as u8;
    }
    out
}

/// `a + 1` modulo 2^160 (adding 1 is subtracting 2^160 - 1).
fn succ(a: Mid) -> Mid {
    sub(a, MAX)
}

/// `a - 1` modulo 2^160.
fn pred(a: Mid) -> Mid {
    sub(a, ONE)
}

/// Where `id` comes in the ring order that starts just after `from`: 0 for `from + 1`, up to
/// 2^160 - 1 for `from` itself. The interval (from, to] is every id placed no later than `to`;
/// with `from == to` that is the whole ring, `from` last.
fn ring_pos(from: Mid, id: Mid) -> Mid {
    pred(sub(id, from))
}

type Model = BTreeMap<(Mid, Vec<u8>), Record>;

fn entry_of(id: Mid, key: &[u8], r: &Record) -> Entry {
    Entry {
        id: Id::from_be_bytes(id),
        key: key.to_vec(),
        record: r.clone(),
    }
}

/// Versions order by hlc, then by writer node id (the `Version` docs); spelt out here rather
/// than taken from `Version`'s derived `Ord`.
fn newer(a: &Version, b: &Version) -> bool {
    (a.hlc, a.node) > (b.hlc, b.node)
}

/// The write rule, entry by entry in batch order: a write lands only if the key is absent or
/// its version is strictly newer than the stored one (trait `apply`: "stores each entry unless
/// the stored one has a version at least as new").
///
/// So on an exact tie, same hlc and same writer node, the stored record stays and the write
/// answers false even when its value differs: the first copy to arrive wins. The `Version` docs
/// say two versions are equal only for the same write, so a tie is that write delivered again
/// (a retry, a replica's anti-entropy copy) and keeping the stored one makes re-delivery
/// idempotent and free. A writer that reused a version for other content would make replicas
/// disagree forever (each keeps its first copy); the cases feed such conflicting copies on
/// purpose to pin the rule down, and the writer side must keep versions unique.
fn model_apply(m: &mut Model, es: &[Entry]) -> Vec<bool> {
    es.iter()
        .map(|e| {
            let k = (e.id.to_be_bytes(), e.key.clone());
            let lands = match m.get(&k) {
                None => true,
                Some(old) => newer(&e.record.version, &old.version),
            };
            if lands {
                m.insert(k, e.record.clone());
            }
            lands
        })
        .collect()
}

/// The purge rule, from the docs alone (trait `purge`, `Record`, `Version`):
fn model_purgeable(r: &Record, now: u64, grace: u64) -> bool {
    // An entry (tombstone or value) goes once it has expired. `Record::is_live` reads it as
    // live while `now < expires_at_ms`, so it is expired, and goes, from `now == expires_at_ms`.
    let expired = match r.expires_at_ms {
        Some(t) => now >= t,
        None => false,
    };
    // A tombstone goes once its version is at least `grace` old (the `purge` docs; "exactly
    // `grace` old" is old enough, so the boundary is `>=`). Its age is `now` minus the
    // wall-clock milliseconds of its hlc (the bits above the logical counter). A tombstone
    // stamped ahead of our clock (a writer's skew) counts as just written, age 0: it stays for
    // a full grace like any new one, and a grace of 0 (no grace at all) drops it too.
    let old_tombstone = r.value.is_none() && {
        let written_ms = r.version.hlc >> Version::LOGICAL_BITS;
        now.saturating_sub(written_ms) >= grace
    };
    expired || old_tombstone
}

fn model_purge(m: &mut Model, now: u64, grace: u64) -> usize {
    let before = m.len();
    m.retain(|_, r| !model_purgeable(r, now, grace));
    before - m.len()
}

/// Removes each key whose stored version is exactly the given one, in order.
fn model_remove(m: &mut Model, vs: &[(Mid, Vec<u8>, Version)]) -> usize {
    let mut removed = 0;
    for (id, key, v) in vs {
        let k = (*id, key.clone());
        if m.get(&k)
            .is_some_and(|r| (r.version.hlc, r.version.node) == (v.hlc, v.node))
        {
            m.remove(&k);
            removed += 1;
        }
    }
    removed
}

/// The entries of (from, to] in ring order starting after `from`, ties on an id by key, each
/// with its ring position; by brute force over the whole model.
fn model_rows(m: &Model, from: Mid, to: Mid) -> Vec<((Mid, Vec<u8>), Entry)> {
    let end = ring_pos(from, to);
    let mut rows: Vec<_> = m
        .iter()
        .map(|((id, key), r)| ((ring_pos(from, *id), key.clone()), entry_of(*id, key, r)))
        .filter(|((pos, _), _)| *pos <= end)
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

fn model_scan(m: &Model, from: Mid, to: Mid) -> Vec<Entry> {
    model_rows(m, from, to)
        .into_iter()
        .map(|(_, e)| e)
        .collect()
}

/// What a scan resumed after `cursor` must return: the rest of the interval strictly after the
/// cursor in ring order, whether or not the cursor's entry is still stored. `None` for a
/// cursor outside the interval, which the trait leaves unspecified.
fn model_scan_after(m: &Model, from: Mid, to: Mid, cursor: (Mid, &[u8])) -> Option<Vec<Entry>> {
    let at = ring_pos(from, cursor.0);
    if at > ring_pos(from, to) {
        return None;
    }
    let at = (at, cursor.1.to_vec());
    Some(
        model_rows(m, from, to)
            .into_iter()
            .filter(|(pos, _)| *pos > at)
            .map(|(_, e)| e)
            .collect(),
    )
}

// ------------------------------------------------------------------------------------------
// What the cases draw.

/// User keys, in byte order: the empty key, bytes at both ends, one key a prefix of another.
const KEYS: [&[u8]; 6] = [b"", b"\0", b"a", b"ab", b"b", b"\xff"];

/// The ids of one case: see the module docs.
fn arb_pool() -> impl Strategy<Value = Vec<Mid>> {
    any::<[Mid; 3]>().prop_map(|[a, b, c]| {
        let mut two_64 = ZERO;
        two_64[11] = 1;
        let mut two_159 = ZERO;
        two_159[0] = 0x80;
        vec![
            ZERO,
            ONE,
            pred(two_64),
            two_64,
            pred(two_159),
            two_159,
            pred(MAX),
            MAX,
            a,
            succ(a),
            b,
            c,
        ]
    })
}

/// A record's fields, before its key (and maybe its version) is known.
#[derive(Clone, Debug)]
struct Rec {
    value: Option<Vec<u8>>,
    /// Wall-clock milliseconds of the version.
    ms: u64,
    /// The hlc's logical counter, which the purge rule must ignore.
    logical: u64,
    node: u64,
    expires_at_ms: Option<u64>,
}

impl Rec {
    fn version(&self) -> Version {
        Version {
            hlc: (self.ms << Version::LOGICAL_BITS) | self.logical,
            node: self.node,
        }
    }

    fn record(&self, version: Version) -> Record {
        Record {
            value: self.value.clone(),
            version,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    (
        prop::option::weighted(0.75, prop::collection::vec(any::<u8>(), 0..3)),
        // Small times meet `now` and the grace period; the largest one is far in the future.
        prop_oneof![12 => 0u64..8, 1 => Just(u64::MAX >> Version::LOGICAL_BITS)],
        prop::sample::select(vec![0u64, 1, (1 << Version::LOGICAL_BITS) - 1]),
        0u64..3,
        prop::option::weighted(0.3, 0u64..12),
    )
        .prop_map(|(value, ms, logical, node, expires_at_ms)| Rec {
            value,
            ms,
            logical,
            node,
            expires_at_ms,
        })
}

/// How a write re-targets an earlier write's key.
#[derive(Clone, Copy, Debug)]
enum Tie {
    /// The very same (hlc, node), usually with another value: the exact tie.
    SameVersion,
    /// The same hlc from another writer node (a smaller or a larger one).
    SameHlcOtherNode,
    /// Any version: older, newer, or equal by chance.
    AnyVersion,
}

#[derive(Clone, Debug)]
enum Write {
    /// A key from the pool and `KEYS`.
    Fresh { id: Index, key: Index, rec: Rec },
    /// The key of an earlier write of the case.
    Again { of: Index, tie: Tie, rec: Rec },
}

fn arb_write() -> impl Strategy<Value = Write> {
    let tie = prop_oneof![
        Just(Tie::SameVersion),
        Just(Tie::SameHlcOtherNode),
        Just(Tie::AnyVersion)
    ];
    prop_oneof![
        3 => (any::<Index>(), any::<Index>(), arb_rec())
            .prop_map(|(id, key, rec)| Write::Fresh { id, key, rec }),
        2 => (any::<Index>(), tie, arb_rec()).prop_map(|(of, tie, rec)| Write::Again { of, tie, rec }),
    ]
}

fn arb_writes(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Write>> {
    prop::collection::vec(arb_write(), n)
}

/// A scan bound or cursor id.
#[derive(Clone, Debug)]
enum Point {
    /// A pool id, or the id just before or just after it.
    Near(Index, i8),
    Anywhere(Mid),
}

fn arb_point() -> impl Strategy<Value = Point> {
    prop_oneof![
        4 => (any::<Index>(), -1i8..=1).prop_map(|(i, d)| Point::Near(i, d)),
        1 => any::<Mid>().prop_map(Point::Anywhere),
    ]
}

#[derive(Clone, Debug)]
struct ScanSpec {
    from: Point,
    /// `None`: `to == from`, the whole ring.
    to: Option<Point>,
    limit: usize,
    /// Also resume a scan after this (id, key), when it lies inside the interval.
    cursor: Option<(Point, Index)>,
}

fn arb_range() -> impl Strategy<Value = ScanSpec> {
    (
        arb_point(),
        prop::option::weighted(0.75, arb_point()),
        1usize..5,
        prop::option::weighted(0.5, (arb_point(), any::<Index>())),
    )
        .prop_map(|(from, to, limit, cursor)| ScanSpec {
            from,
            to,
            limit,
            cursor,
        })
}

/// Purge times: mostly small, so that they meet the records' times, sometimes the extreme.
fn arb_now_grace() -> impl Strategy<Value = (u64, u64)> {
    (
        prop_oneof![8 => 0u64..12, 1 => Just(u64::MAX)],
        prop_oneof![8 => 0u64..8, 1 => Just(u64::MAX)],
    )
}

/// One case's ids and everything written so far, to resolve the drawn specs into entries.
struct Case {
    pool: Vec<Mid>,
    written: Vec<Entry>,
}

impl Case {
    fn new(pool: Vec<Mid>) -> Case {
        Case {
            pool,
            written: Vec::new(),
        }
    }

    fn point(&self, p: &Point) -> Mid {
        match p {
            Point::Near(i, d) => {
                let id = *i.get(&self.pool);
                match d {
                    -1 => pred(id),
                    1 => succ(id),
                    _ => id,
                }
            }
            Point::Anywhere(id) => *id,
        }
    }

    /// The entries of one batch. An `Again` may re-target a key written earlier in the same
    /// batch, so one `apply` call meets ties too.
    fn resolve(&mut self, ws: &[Write]) -> Vec<Entry> {
        let start = self.written.len();
        for w in ws {
            let e = match w {
                Write::Again { of, tie, rec } if !self.written.is_empty() => {
                    let old = of.get(&self.written);
                    let v = old.record.version;
                    let version = match tie {
                        Tie::SameVersion => v,
                        Tie::SameHlcOtherNode => Version {
                            hlc: v.hlc,
                            node: (v.node + 1 + rec.node % 2) % 3,
                        },
                        Tie::AnyVersion => rec.version(),
                    };
                    Entry {
                        id: old.id,
                        key: old.key.clone(),
                        record: rec.record(version),
                    }
                }
                // With nothing written yet, an `Again` picks a key like a `Fresh` write.
                Write::Fresh { id, key, rec }
                | Write::Again {
                    of: id @ key, rec, ..
                } => Entry {
                    id: Id::from_be_bytes(*id.get(&self.pool)),
                    key: key.get(&KEYS).to_vec(),
                    record: rec.record(rec.version()),
                },
            };
            self.written.push(e);
        }
        self.written[start..].to_vec()
    }
}

// ------------------------------------------------------------------------------------------
// Checking stores against the model.

/// Every page of a scan of (from, to] resumed from `after`, with page size `limit`. `honest`
/// is the length of the right answer: a cursor that runs past it stops the loop.
fn paged(
    s: &dyn Store,
    (from, to): (Mid, Mid),
    mut after: Option<(Id, Vec<u8>)>,
    limit: usize,
    honest: usize,
) -> Result<Vec<Entry>, TestCaseError> {
    let (from, to) = (Id::from_be_bytes(from), Id::from_be_bytes(to));
    let mut out = Vec::new();
    loop {
        let page = s.scan(from, to, after.clone(), limit).unwrap();
        prop_assert!(
            page.len() <= limit,
            "page of {} over limit {limit}",
            page.len()
        );
        let Some(last) = page.last() else { break };
        after = Some((last.id, last.key.clone()));
        out.extend(page);
        if out.len() > honest {
            break;
        }
    }
    Ok(out)
}

fn check_scan(
    stores: &[&dyn Store],
    case: &Case,
    m: &Model,
    r: &ScanSpec,
) -> Result<(), TestCaseError> {
    let from = case.point(&r.from);
    let to = r.to.as_ref().map_or(from, |p| case.point(p));
    let want = model_scan(m, from, to);
    for s in stores {
        let got = paged(*s, (from, to), None, r.limit, want.len())?;
        prop_assert_eq!(got, want.clone(), "from {:?} to {:?}", from, to);
    }
    if let Some((p, key)) = &r.cursor {
        let (cid, ckey) = (case.point(p), *key.get(&KEYS));
        if let Some(want) = model_scan_after(m, from, to, (cid, ckey)) {
            let after = Some((Id::from_be_bytes(cid), ckey.to_vec()));
            for s in stores {
                let got = paged(*s, (from, to), after.clone(), r.limit, want.len())?;
                prop_assert_eq!(
                    got,
                    want.clone(),
                    "from {:?} to {:?} after {:?}",
                    from,
                    to,
                    (cid, ckey)
                );
            }
        }
    }
    Ok(())
}

/// The store holds exactly the model: whole-ring scan, len, and `get` of every pool id with
/// every key (present or not).
fn check_contents(stores: &[&dyn Store], case: &Case, m: &Model) -> Result<(), TestCaseError> {
    let want = model_scan(m, ZERO, ZERO);
    for s in stores {
        prop_assert_eq!(
            s.scan(Id::ZERO, Id::ZERO, None, usize::MAX).unwrap(),
            want.clone()
        );
        prop_assert_eq!(s.len().unwrap(), m.len() as u64);
        for id in &case.pool {
            for key in KEYS {
                let want = m.get(&(*id, key.to_vec())).map(|r| entry_of(*id, key, r));
                prop_assert_eq!(s.get(Id::from_be_bytes(*id), key).unwrap(), want);
            }
        }
    }
    Ok(())
}

fn apply_case(
    stores: &[&dyn Store],
    (pool, batches): (Vec<Mid>, Vec<Vec<Write>>),
) -> Result<(), TestCaseError> {
    let mut case = Case::new(pool);
    let mut m = Model::new();
    for b in &batches {
        let es = case.resolve(b);
        let want = model_apply(&mut m, &es);
        for s in stores {
            prop_assert_eq!(s.apply(&es).unwrap(), want.clone());
        }
    }
    check_contents(stores, &case, &m)
}

fn scan_case(
    stores: &[&dyn Store],
    (pool, writes, ranges): (Vec<Mid>, Vec<Write>, Vec<ScanSpec>),
) -> Result<(), TestCaseError> {
    let mut case = Case::new(pool);
    let es = case.resolve(&writes);
    let mut m = Model::new();
    model_apply(&mut m, &es);
    for s in stores {
        s.apply(&es).unwrap();
    }
    for r in &ranges {
        check_scan(stores, &case, &m, r)?;
    }
    Ok(())
}

fn purge_case(
    stores: &[&dyn Store],
    (pool, writes, (now, grace)): (Vec<Mid>, Vec<Write>, (u64, u64)),
) -> Result<(), TestCaseError> {
    let mut case = Case::new(pool);
    let es = case.resolve(&writes);
    let mut m = Model::new();
    model_apply(&mut m, &es);
    let want = model_purge(&mut m, now, grace);
    for s in stores {
        s.apply(&es).unwrap();
        prop_assert_eq!(
            s.purge(now, grace).unwrap(),
            want,
            "now {} grace {}",
            now,
            grace
        );
    }
    check_contents(stores, &case, &m)
}

#[derive(Clone, Debug)]
enum Op {
    Apply(Vec<Write>),
    Purge(u64, u64),
    /// Earlier writes' (id, key, version); `false` alters the version so it should not match.
    Remove(Vec<(Index, bool)>),
    Scan(ScanSpec),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => arb_writes(1..6).prop_map(Op::Apply),
        2 => arb_now_grace().prop_map(|(now, grace)| Op::Purge(now, grace)),
        2 => prop::collection::vec((any::<Index>(), prop::bool::weighted(0.7)), 1..4)
            .prop_map(Op::Remove),
        2 => arb_range().prop_map(Op::Scan),
    ]
}

fn ops_case(stores: &[&dyn Store], (pool, ops): (Vec<Mid>, Vec<Op>)) -> Result<(), TestCaseError> {
    let mut case = Case::new(pool);
    let mut m = Model::new();
    for op in &ops {
        match op {
            Op::Apply(ws) => {
                let es = case.resolve(ws);
                let want = model_apply(&mut m, &es);
                for s in stores {
                    prop_assert_eq!(s.apply(&es).unwrap(), want.clone());
                }
            }
            Op::Purge(now, grace) => {
                let want = model_purge(&mut m, *now, *grace);
                for s in stores {
                    prop_assert_eq!(s.purge(*now, *grace).unwrap(), want);
                }
            }
            Op::Remove(picks) => {
                if case.written.is_empty() {
                    continue;
                }
                let vs: Vec<_> = picks
                    .iter()
                    .map(|(i, exact)| {
                        let e = i.get(&case.written);
                        let mut v = e.record.version;
                        if !exact {
                            v.node += 3;
                        }
                        (e.id, e.key.clone(), v)
                    })
                    .collect();
                let mids: Vec<_> = vs
                    .iter()
                    .map(|(id, k, v)| (id.to_be_bytes(), k.clone(), *v))
                    .collect();
                let want = model_remove(&mut m, &mids);
                for s in stores {
                    prop_assert_eq!(s.remove_versions(&vs).unwrap(), want);
                }
            }
            Op::Scan(r) => check_scan(stores, &case, &m, r)?,
        }
    }
    check_contents(stores, &case, &m)
}

// ------------------------------------------------------------------------------------------
// The properties, on both engines.

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

/// Runs a property on both engines. A failure is saved (by its seed) under
/// `proptest-regressions/` and replayed first by later runs; `PROPTEST_RNG_SEED` fixes the
/// seed of a run.
fn run<S: Strategy>(
    strategy: S,
    cases: u32,
    test: impl Fn(&[&dyn Store], S::Value) -> Result<(), TestCaseError>,
) {
    let engines = Engines::new();
    let config = Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
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
    let batches = prop::collection::vec(arb_writes(1..8), 1..5);
    run((arb_pool(), batches), 96, apply_case);
}

#[test]
fn paged_scan_matches_model() {
    let ranges = prop::collection::vec(arb_range(), 1..8);
    run((arb_pool(), arb_writes(0..24), ranges), 96, scan_case);
}

#[test]
fn purge_matches_model() {
    run(
        (arb_pool(), arb_writes(0..24), arb_now_grace()),
        96,
        purge_case,
    );
}

#[test]
fn op_sequences_match_model() {
    let ops = prop::collection::vec(arb_op(), 1..12);
    run((arb_pool(), ops), 64, ops_case);
}

// ------------------------------------------------------------------------------------------
// The model's own arithmetic, on hand-checked values.

#[test]
fn model_ring_arithmetic() {
    assert_eq!(succ(MAX), ZERO);
    assert_eq!(pred(ZERO), MAX);
    let mut carry = ZERO;
    carry[11] = 1;
    assert_eq!(succ(pred(carry)), carry);
    assert_eq!(pred(carry)[12..], [0xff; 8]);
    assert_eq!(ring_pos(ONE, succ(ONE)), ZERO);
    assert_eq!(ring_pos(ONE, ONE), MAX);
    assert_eq!(ring_pos(MAX, ZERO), ZERO);
    // Byte order is numeric order, also across the limbs of `Id`.
    assert!(pred(carry) < carry && Id::from_be_bytes(pred(carry)) < Id::from_be_bytes(carry));
}

#[test]
fn model_purge_boundaries() {
    let rec = |value: Option<&[u8]>, ms: u64, exp| Record {
        value: value.map(<[u8]>::to_vec),
        version: Version {
            hlc: (ms << Version::LOGICAL_BITS) | 0xffff,
            node: 1,
        },
        expires_at_ms: exp,
    };
    // Expiry: gone at the expiry instant, not before; tombstones too.
    assert!(model_purgeable(&rec(Some(b"v"), 0, Some(5)), 5, 100));
    assert!(!model_purgeable(&rec(Some(b"v"), 0, Some(5)), 4, 100));
    assert!(model_purgeable(&rec(None, 9, Some(5)), 5, 100));
    // Tombstones: gone once exactly `grace` old; the logical counter does not count.
    assert!(model_purgeable(&rec(None, 3, None), 7, 4));
    assert!(!model_purgeable(&rec(None, 3, None), 6, 4));
    assert!(!model_purgeable(&rec(Some(b"v"), 0, None), u64::MAX, 0));
    // From the future: age 0, so kept for a full grace, dropped at once with no grace.
    assert!(!model_purgeable(&rec(None, 9, None), 5, 1));
    assert!(model_purgeable(&rec(None, 9, None), 5, 0));
}

// ------------------------------------------------------------------------------------------
// Mutants: the same properties must fail deliberately broken stores.

mod mutants {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Bug {
        /// Purges tombstones one millisecond before they are `grace` old.
        EarlyTombstonePurge,
        /// Overwrites on an exact version tie (last copy wins instead of first).
        TieOverwrites,
        /// Scans by the low 64 bits of the bounds, as a u64 model would.
        LowBitsScan,
    }

    /// A MemoryStore with one bug.
    struct Buggy {
        inner: MemoryStore,
        bug: Bug,
    }

    impl Store for Buggy {
        fn apply(&self, entries: &[Entry]) -> Result<Vec<bool>, StoreError> {
            if self.bug != Bug::TieOverwrites {
                return self.inner.apply(entries);
            }
            let mut out = Vec::new();
            for e in entries {
                let stored = self.inner.get(e.id, &e.key)?;
                if stored.is_some_and(|s| s.record.version == e.record.version) {
                    self.inner
                        .remove_versions(&[(e.id, e.key.clone(), e.record.version)])?;
                }
                out.extend(self.inner.apply(std::slice::from_ref(e))?);
            }
            Ok(out)
        }

        fn get(&self, id: Id, key: &[u8]) -> Result<Option<Entry>, StoreError> {
            self.inner.get(id, key)
        }

        fn scan(
            &self,
            from: Id,
            to: Id,
            after: Option<(Id, Vec<u8>)>,
            limit: usize,
        ) -> Result<Vec<Entry>, StoreError> {
            if self.bug != Bug::LowBitsScan {
                return self.inner.scan(from, to, after, limit);
            }
            let low = |id: Id| Id::from_u64(id.low_u64());
            self.inner.scan(low(from), low(to), after, limit)
        }

        fn purge(&self, now_ms: u64, grace_ms: u64) -> Result<usize, StoreError> {
            if self.bug != Bug::EarlyTombstonePurge {
                return self.inner.purge(now_ms, grace_ms);
            }
            let early: Vec<_> = self
                .inner
                .scan(Id::ZERO, Id::ZERO, None, usize::MAX)?
                .into_iter()
                .filter(|e| {
                    let age = now_ms.saturating_sub(e.record.version.physical_ms());
                    e.record.value.is_none() && age.saturating_add(1) >= grace_ms
                })
                .map(|e| (e.id, e.key, e.record.version))
                .collect();
            Ok(self.inner.remove_versions(&early)? + self.inner.purge(now_ms, grace_ms)?)
        }

        fn remove_versions(&self, entries: &[(Id, Vec<u8>, Version)]) -> Result<usize, StoreError> {
            self.inner.remove_versions(entries)
        }

        fn len(&self) -> Result<u64, StoreError> {
            self.inner.len()
        }
    }

    /// Whether the property fails on a store with `bug`: a fixed seed, no shrinking and no
    /// saved failures, so this is quick and the same on every run.
    fn caught<S: Strategy>(
        bug: Bug,
        strategy: S,
        test: impl Fn(&[&dyn Store], S::Value) -> Result<(), TestCaseError>,
    ) -> bool {
        let config = Config {
            cases: 256,
            failure_persistence: None,
            max_shrink_iters: 0,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&strategy, |v| {
            let s = Buggy {
                inner: MemoryStore::new(),
                bug,
            };
            test(&[&s], v)
        });
        matches!(result, Err(TestError::Fail(..)))
    }

    #[test]
    fn model_catches_tombstones_purged_too_early() {
        let input = (arb_pool(), arb_writes(0..24), arb_now_grace());
        assert!(caught(Bug::EarlyTombstonePurge, input, purge_case));
        let ops = (arb_pool(), prop::collection::vec(arb_op(), 1..12));
        assert!(caught(Bug::EarlyTombstonePurge, ops, ops_case));
    }

    #[test]
    fn model_catches_overwrite_on_exact_tie() {
        let batches = prop::collection::vec(arb_writes(1..8), 1..5);
        assert!(caught(
            Bug::TieOverwrites,
            (arb_pool(), batches),
            apply_case
        ));
    }

    #[test]
    fn model_catches_scans_by_low_64_bits() {
        let ranges = prop::collection::vec(arb_range(), 1..8);
        let input = (arb_pool(), arb_writes(0..24), ranges);
        assert!(caught(Bug::LowBitsScan, input, scan_case));
    }

    /// The harness itself passes a correct store under the same fixed seed, so a mutant's
    /// failure is its bug, not the harness.
    #[test]
    fn correct_store_passes_the_mutant_harness() {
        let input = (arb_pool(), arb_writes(0..24), arb_now_grace());
        let config = Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let result = TestRunner::new_with_rng(config, rng)
            .run(&input, |v| purge_case(&[&MemoryStore::new()], v));
        assert!(result.is_ok(), "{result:?}");
    }
}
