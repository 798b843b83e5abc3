//! Behaviour every engine must share, run against each of them: version ordering, TTL,
//! purge and scan edge cases.

use dht_core::Id;

use crate::{Entry, MemoryStore, Record, RedbStore, Store, StoreOptions, Version};

pub(crate) fn entry(id: u64, key: &str, value: Option<&str>, hlc: u64) -> Entry {
    Entry {
        id: Id::from_u64(id),
        key: key.as_bytes().to_vec(),
        record: Record {
            value: value.map(|v| v.as_bytes().to_vec()),
            version: Version { hlc, node: 1 },
            expires_at_ms: None,
        },
    }
}

/// Runs `check` on a MemoryStore and on a fresh RedbStore.
fn each_engine(check: impl Fn(&dyn Store)) {
    check(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    check(&RedbStore::open(dir.path(), StoreOptions::default()).unwrap());
}

fn value_of(s: &dyn Store, id: u64, key: &str) -> Option<Record> {
    s.get(Id::from_u64(id), key.as_bytes())
        .unwrap()
        .map(|e| e.record)
}

#[test]
fn newer_version_wins_and_older_is_ignored() {
    each_engine(|s| {
        assert_eq!(s.apply(&[entry(1, "k", Some("v5"), 5)]).unwrap(), [true]);
        assert_eq!(s.apply(&[entry(1, "k", Some("v3"), 3)]).unwrap(), [false]);
        assert_eq!(value_of(s, 1, "k").unwrap().value.unwrap(), b"v5");
        assert_eq!(s.apply(&[entry(1, "k", Some("v7"), 7)]).unwrap(), [true]);
        assert_eq!(value_of(s, 1, "k").unwrap().value.unwrap(), b"v7");
        // Same hlc, larger writer node id: newer.
        let mut e = entry(1, "k", Some("node2"), 7);
        e.record.version.node = 2;
        assert_eq!(s.apply(&[e]).unwrap(), [true]);
    });
}

#[test]
fn equal_version_is_not_rewritten() {
    each_engine(|s| {
        s.apply(&[entry(1, "k", Some("a"), 5)]).unwrap();
        assert_eq!(s.apply(&[entry(1, "k", Some("b"), 5)]).unwrap(), [false]);
        assert_eq!(value_of(s, 1, "k").unwrap().value.unwrap(), b"a");
    });
}

#[test]
fn tombstone_beats_older_value_and_blocks_resurrection() {
    each_engine(|s| {
        s.apply(&[entry(1, "k", Some("v"), 5)]).unwrap();
        assert_eq!(s.apply(&[entry(1, "k", None, 6)]).unwrap(), [true]);
        let r = value_of(s, 1, "k").unwrap();
        assert!(r.value.is_none() && !r.is_live(0));
        assert_eq!(
            s.apply(&[entry(1, "k", Some("stale"), 4)]).unwrap(),
            [false]
        );
        assert!(value_of(s, 1, "k").unwrap().value.is_none());
        assert_eq!(s.len().unwrap(), 1);
    });
}

#[test]
fn one_apply_with_duplicates_is_sequential() {
    each_engine(|s| {
        let batch = [
            entry(1, "k", Some("a"), 2),
            entry(1, "k", Some("b"), 1),
            entry(1, "k", Some("c"), 3),
        ];
        assert_eq!(s.apply(&batch).unwrap(), [true, false, true]);
        assert_eq!(value_of(s, 1, "k").unwrap().value.unwrap(), b"c");
        assert_eq!(s.apply(&[]).unwrap(), Vec::<bool>::new());
    });
}

#[test]
fn ttl_is_filtered_by_is_live_not_by_get() {
    each_engine(|s| {
        let mut e = entry(1, "k", Some("v"), 1);
        e.record.expires_at_ms = Some(1_000);
        s.apply(&[e]).unwrap();
        let r = value_of(s, 1, "k").unwrap();
        assert!(r.is_live(999));
        assert!(!r.is_live(1_000));
    });
}

#[test]
fn purge_removes_expired_and_old_tombstones_only() {
    let ms = |t: u64| t << Version::LOGICAL_BITS;
    each_engine(|s| {
        let mut expired = entry(1, "expired", Some("v"), ms(100));
        expired.record.expires_at_ms = Some(500);
        let mut not_yet = entry(2, "not-yet", Some("v"), ms(100));
        not_yet.record.expires_at_ms = Some(2_000);
        let old_tomb = entry(3, "old-tomb", None, ms(100));
        let young_tomb = entry(4, "young-tomb", None, ms(900));
        let plain = entry(5, "plain", Some("v"), ms(0));
        s.apply(&[expired, not_yet, old_tomb, young_tomb, plain])
            .unwrap();
        // now = 1000, grace = 500: the tombstone from t=100 goes, the one from t=900 stays.
        assert_eq!(s.purge(1_000, 500).unwrap(), 2);
        assert_eq!(s.len().unwrap(), 3);
        assert!(value_of(s, 1, "expired").is_none());
        assert!(value_of(s, 3, "old-tomb").is_none());
        assert!(value_of(s, 4, "young-tomb").is_some());
        assert_eq!(s.purge(1_000, 500).unwrap(), 0);
        assert_eq!(s.purge(2_000, 500).unwrap(), 2);
        assert_eq!(s.len().unwrap(), 1);
    });
}

#[test]
fn scan_orders_by_ring_and_wraps() {
    each_engine(|s| {
        let es: Vec<Entry> = [(1, "a"), (3, "a"), (3, "b"), (7, "a"), (9, "a")]
            .iter()
            .map(|(id, k)| entry(*id, k, Some("v"), 1))
            .collect();
        s.apply(&es).unwrap();
        let ids = |from, to, limit| -> Vec<(u64, String)> {
            s.scan(Id::from_u64(from), Id::from_u64(to), None, limit)
                .unwrap()
                .into_iter()
                .map(|e| (e.id.low_u64(), String::from_utf8(e.key).unwrap()))
                .collect()
        };
        let p = |v: &[(u64, &str)]| -> Vec<(u64, String)> {
            v.iter().map(|(i, k)| (*i, k.to_string())).collect()
        };
        assert_eq!(ids(1, 7, 10), p(&[(3, "a"), (3, "b"), (7, "a")]));
        assert_eq!(ids(7, 3, 10), p(&[(9, "a"), (1, "a"), (3, "a"), (3, "b")]));
        assert_eq!(
            ids(3, 3, 10),
            p(&[(7, "a"), (9, "a"), (1, "a"), (3, "a"), (3, "b")])
        );
        assert_eq!(ids(3, 3, 2), p(&[(7, "a"), (9, "a")]));
        assert_eq!(ids(3, 3, 0), p(&[]));
        // Resume inside the wrapped segment.
        let page = s
            .scan(
                Id::from_u64(7),
                Id::from_u64(3),
                Some((Id::from_u64(3), b"a".to_vec())),
                10,
            )
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].key, b"b");
    });
}

#[test]
fn remove_versions_removes_only_the_handed_off_version() {
    each_engine(|s| {
        s.apply(&[entry(1, "a", Some("v5"), 5), entry(2, "b", Some("v5"), 5)])
            .unwrap();
        // "b" was overwritten after the handoff scan saw version 5: it must stay.
        s.apply(&[entry(2, "b", Some("v6"), 6)]).unwrap();
        let v5 = Version { hlc: 5, node: 1 };
        let removed = s
            .remove_versions(&[
                (Id::from_u64(1), b"a".to_vec(), v5),
                (Id::from_u64(2), b"b".to_vec(), v5),
                (Id::from_u64(3), b"absent".to_vec(), v5),
            ])
            .unwrap();
        assert_eq!(removed, 1);
        assert!(value_of(s, 1, "a").is_none());
        assert_eq!(value_of(s, 2, "b").unwrap().value.unwrap(), b"v6");
        assert_eq!(s.len().unwrap(), 1);
    });
}

/// `apply_then` answers exactly as `apply` would, through its callback (from the writer
/// thread for redb), and an empty call answers at once.
#[test]
fn apply_then_answers_like_apply() {
    each_engine(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let send = |tx: std::sync::mpsc::Sender<_>| -> crate::ApplyDone {
            Box::new(move |r| tx.send(r.map_err(|e| e.to_string())).unwrap())
        };
        s.apply_then(&[entry(1, "k", Some("v5"), 5)], send(tx.clone()));
        assert_eq!(rx.recv().unwrap().unwrap(), [true]);
        s.apply_then(
            &[entry(1, "k", Some("v3"), 3), entry(2, "j", None, 4)],
            send(tx.clone()),
        );
        assert_eq!(rx.recv().unwrap().unwrap(), [false, true]);
        s.apply_then(&[], send(tx.clone()));
        assert_eq!(rx.recv().unwrap().unwrap(), Vec::<bool>::new());
        assert_eq!(value_of(s, 1, "k").unwrap().value.unwrap(), b"v5");
    });
}
