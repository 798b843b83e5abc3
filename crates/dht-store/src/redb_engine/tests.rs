//! redb-specific behaviour: restart, locking, refusing damaged files, durability modes and
//! group commit. Shared semantics are in `engine_tests` and `model_tests`.
//!
//! Cross-process tests re-run this test binary as a child (`child_process` below), which
//! opens the store and reports on stdout, so a real second process holds or wants the lock, or
//! is killed with SIGKILL right after a write was acknowledged.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dht_core::Id;

use crate::engine_tests::entry;
use crate::{Durability, RedbStore, Store, StoreError, StoreOptions};

fn open(dir: &Path) -> Result<RedbStore, StoreError> {
    RedbStore::open(dir, StoreOptions::default())
}

fn async_opts(flush_interval: Duration) -> StoreOptions {
    StoreOptions {
        durability: Durability::Async { flush_interval },
        ..StoreOptions::default()
    }
}

fn value(s: &RedbStore, id: u64) -> Option<Vec<u8>> {
    s.get(Id::from_u64(id), b"k")
        .unwrap()
        .and_then(|e| e.record.value)
}

#[test]
fn restart_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path()).unwrap();
        s.apply(&[entry(1, "k", Some("v1"), 1), entry(2, "k", None, 1)])
            .unwrap();
    }
    let s = open(dir.path()).unwrap();
    assert_eq!(value(&s, 1).unwrap(), b"v1");
    assert!(s.get(Id::from_u64(2), b"k").unwrap().is_some());
    assert_eq!(s.len().unwrap(), 2);
    assert_eq!(s.verify().unwrap(), 2);
}

#[test]
fn second_open_in_one_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path()).unwrap();
    let err = open(dir.path()).err().expect("second open must fail");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("dht.redb") && msg.contains("another dhtd"),
        "{msg}"
    );
    drop(first);
    open(dir.path()).expect("the lock is released on drop");
}

/// Spawns this test binary as a child running `child_process` with `mode`.
fn spawn_child(dir: &Path, mode: &str) -> (Child, impl Iterator<Item = String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "redb_engine::tests::child_process",
            "--nocapture",
        ])
        .env("DHT_STORE_CHILD", mode)
        .env("DHT_STORE_CHILD_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    (child, lines)
}

/// Not a test on its own: the body of the child process of the cross-process tests.
#[test]
fn child_process() {
    let (Ok(mode), Ok(dir)) = (
        std::env::var("DHT_STORE_CHILD"),
        std::env::var("DHT_STORE_CHILD_DIR"),
    ) else {
        return;
    };
    let dir = Path::new(&dir);
    let opts = match mode.as_str() {
        "async" => async_opts(Duration::from_millis(50)),
        "async-never" => async_opts(Duration::from_secs(3600)),
        _ => StoreOptions::default(),
    };
    match RedbStore::open(dir, opts) {
        Err(StoreError::Locked { .. }) => println!("CHILD LOCKED"),
        Err(e) => println!("CHILD ERROR {e}"),
        Ok(s) if mode == "lock" => {
            println!("CHILD OPENED");
            drop(s);
        }
        Ok(s) => {
            s.apply(&[entry(7, "k", Some("acked"), 1)]).unwrap();
            println!("CHILD ACKED");
            std::io::stdout().flush().unwrap();
            // Wait to be killed.
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

#[test]
fn open_held_by_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let held = open(dir.path()).unwrap();
    let (mut child, mut lines) = spawn_child(dir.path(), "lock");
    let verdict = lines.find(|l| l.starts_with("CHILD "));
    child.wait().unwrap();
    assert_eq!(verdict.as_deref(), Some("CHILD LOCKED"));
    drop(held);
}

/// Kills a child with SIGKILL once it has acknowledged a write (after `linger`), then reopens.
fn kill_after_ack(mode: &str, linger: Duration) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines) = spawn_child(dir.path(), mode);
    let verdict = lines.find(|l| l.starts_with("CHILD "));
    assert_eq!(verdict.as_deref(), Some("CHILD ACKED"));
    std::thread::sleep(linger);
    child.kill().unwrap();
    child.wait().unwrap();
    let s = open(dir.path()).unwrap();
    value(&s, 7)
}

#[test]
fn sync_write_survives_kill_9_right_after_ack() {
    assert_eq!(kill_after_ack("sync", Duration::ZERO).unwrap(), b"acked");
}

#[test]
fn async_write_survives_kill_9_after_one_flush_interval() {
    // The interval is 50 ms; give the flush a generous margin.
    let got = kill_after_ack("async", Duration::from_millis(1000));
    assert_eq!(got.unwrap(), b"acked");
}

#[test]
fn async_write_inside_the_interval_is_lost_on_kill_9() {
    // The documented risk of Durability::Async, shown: no flush happened before the kill, so
    // the database reopens at its last durable commit (consistent, without the write).
    assert_eq!(kill_after_ack("async-never", Duration::ZERO), None);
}

#[test]
fn async_flushes_on_drop_and_on_request() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open(dir.path(), async_opts(Duration::from_secs(3600))).unwrap();
        s.apply(&[entry(1, "k", Some("a"), 1)]).unwrap();
        assert_eq!(value(&s, 1).unwrap(), b"a", "visible before any flush");
        s.flush().unwrap();
        let st = s.stats().unwrap();
        assert_eq!((st.entries, st.durable_commits), (1, 1), "{st:?}");
        s.apply(&[entry(2, "k", Some("b"), 1)]).unwrap();
    }
    let s = open(dir.path()).unwrap();
    assert_eq!(value(&s, 2).unwrap(), b"b");
}

#[test]
fn concurrent_applies_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).unwrap();
    let (threads, per_thread) = (8u64, 25u64);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let s = &s;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let e = entry(t * 1000 + i, "k", Some("v"), 1);
                    assert_eq!(s.apply(&[e]).unwrap(), [true]);
                }
            });
        }
    });
    let st = s.stats().unwrap();
    assert_eq!(st.entries, threads * per_thread);
    assert_eq!(st.requests, threads * per_thread);
    // Every request was answered by some commit, each durable; commits may be fewer.
    assert!(
        st.commits <= st.requests && st.commits == st.durable_commits,
        "{st:?}"
    );
}

/// Writes a database with some entries and returns its file.
fn written_db(dir: &Path) -> std::path::PathBuf {
    let s = open(dir).unwrap();
    let es: Vec<_> = (0..5_000)
        .map(|i| entry(i, "key-0123456789", Some("value-0123456789abcdef"), 1))
        .collect();
    s.apply(&es).unwrap();
    s.path().to_path_buf()
}

fn assert_corrupt(dir: &Path) {
    match open(dir) {
        Err(StoreError::Corrupt { path, .. }) => assert!(path.ends_with("dht.redb")),
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(_) => panic!("a damaged database opened"),
    }
}

#[test]
fn empty_existing_file_is_corrupt_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join(RedbStore::FILE_NAME)).unwrap();
    assert_corrupt(dir.path());
}

#[test]
fn truncated_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_db(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    assert_corrupt(dir.path());
}

fn overwrite(path: &Path, at: u64, len: usize) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&vec![0xA5; len]).unwrap();
}

#[test]
fn overwritten_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_db(dir.path());
    overwrite(&path, 0, 64);
    assert_corrupt(dir.path());
}

#[test]
fn overwritten_data_pages_are_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let path = written_db(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    // Every other 4 KiB page after the header: most of the file is preallocated free space,
    // so a single hit could miss the data.
    for at in (4096..len).step_by(8192) {
        overwrite(&path, at, 4096);
    }
    // Depending on which pages were hit, the open or the first full read must fail.
    match open(dir.path()) {
        Err(e) => assert!(e.to_string().contains("dht.redb"), "{e}"),
        Ok(s) => match s.verify() {
            Err(StoreError::Corrupt { .. }) => {}
            other => panic!("damage went unnoticed: {other:?}"),
        },
    }
}

#[test]
fn unusable_directory_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match open(&file.join("data")) {
        Err(StoreError::Io { path, .. }) => assert!(path.contains("not-a-dir"), "{path}"),
        other => panic!("expected Io, got {:?}", other.err()),
    }
}

#[test]
fn writes_are_visible_to_reads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path(), async_opts(Duration::from_secs(3600))).unwrap();
    let start = Instant::now();
    for i in 0..50 {
        s.apply(&[entry(i, "k", Some("v"), 1)]).unwrap();
        assert!(value(&s, i).is_some());
    }
    assert_eq!(s.len().unwrap(), 50);
    // No fsync per write in Async mode: 50 writes take far less than 50 fsyncs would on a
    // slow disk. (A loose bound: this only guards against every write being durable.)
    assert!(start.elapsed() < Duration::from_secs(30));
}
