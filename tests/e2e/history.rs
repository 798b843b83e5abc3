//! A history of client operations and a checker for it (issue 9, item 6).
//!
//! Writers record every operation they run against a ring — who ran it, through which node,
//! on which key, what it wrote, when it started and ended, and how it ended — in a
//! [`History`]. Once the ring is quiet, the test reads every key through every node (the
//! *final reads*) and asks each member of every key's replica set what it holds
//! ([`Client::get_local`], the *replica states*), and [`check`] judges the lot:
//!
//! * **lost**: an acknowledged write that no final read can be explained by (see [`check`]
//!   for the precise rule);
//! * **phantom**: a read (during the run or final) returned a value no put of that key wrote
//!   — or one whose put was rejected;
//! * **divergent**: the members of a key's replica set hold different versions;
//! * **stale**: a read during the run returned a version older than one acknowledged before
//!   the read began.
//!
//! Every value a put writes is unique (`c{client}-{seq}`), so a value names its write.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dht_client::{Client, ClientError, Quorum, Stored};

/// What an operation asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>),
    Delete,
    Get,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A put or delete acknowledged with this version (hlc, coordinator).
    Written { version: (u64, u64) },
    /// A get answered: the live value (`None`: not found) and its version's hlc.
    Read {
        value: Option<Vec<u8>>,
        version: u64,
    },
    /// Definitely not applied (rejected before it was applied), or a get that failed.
    Failed(String),
    /// It may or may not have been applied (timed out, unreachable, no quorum, ...).
    Indeterminate(String),
}

#[derive(Clone, Debug)]
pub struct Event {
    pub client: usize,
    pub node: String,
    pub key: String,
    pub op: Op,
    pub start: Instant,
    pub end: Instant,
    pub outcome: Outcome,
}

impl Event {
    fn is_write(&self) -> bool {
        !matches!(self.op, Op::Get)
    }

    /// The value this write leaves: `None` for a delete.
    fn written(&self) -> Option<Vec<u8>> {
        match &self.op {
            Op::Put(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn acked(&self) -> Option<(u64, u64)> {
        match self.outcome {
            Outcome::Written { version } => Some(version),
            _ => None,
        }
    }

    /// Acknowledged or indeterminate: it may be in the store.
    fn may_have_landed(&self) -> bool {
        self.is_write()
            && matches!(
                self.outcome,
                Outcome::Written { .. } | Outcome::Indeterminate(_)
            )
    }
}

/// A thread-safe, cheaply cloned recorder.
#[derive(Clone, Default)]
pub struct History {
    events: Arc<Mutex<Vec<Event>>>,
}

/// Whether a failed write was refused before it was applied: only a request the node rejected
/// as invalid. Everything else (timeout, unreachable after sending, no quorum: some replicas
/// may hold it) is indeterminate.
fn rejected_before_applied(e: &ClientError) -> bool {
    matches!(e, ClientError::InvalidArgument(_))
}

fn write_outcome(r: Result<dht_client::Written, ClientError>) -> Outcome {
    match r {
        Ok(w) => Outcome::Written {
            version: (w.version, w.node),
        },
        Err(e) if rejected_before_applied(&e) => Outcome::Failed(e.to_string()),
        Err(e) => Outcome::Indeterminate(e.to_string()),
    }
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn record(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }

    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs a put through `c` and records it; returns its outcome.
    pub async fn put(&self, client: usize, c: &Client, key: &str, value: &[u8]) -> Outcome {
        self.put_with(client, c, key, value, Quorum::Default).await
    }

    pub async fn put_with(
        &self,
        client: usize,
        c: &Client,
        key: &str,
        value: &[u8],
        q: Quorum,
    ) -> Outcome {
        let start = Instant::now();
        let r = c.put_with(key.as_bytes(), value, None, q).await;
        let end = Instant::now();
        let outcome = write_outcome(r);
        self.record(Event {
            client,
            node: c.addr().to_string(),
            key: key.to_string(),
            op: Op::Put(value.to_vec()),
            start,
            end,
            outcome: outcome.clone(),
        });
        outcome
    }

    pub async fn delete(&self, client: usize, c: &Client, key: &str, q: Quorum) -> Outcome {
        let start = Instant::now();
        let r = c.delete_with(key.as_bytes(), q).await;
        let end = Instant::now();
        let outcome = write_outcome(r);
        self.record(Event {
            client,
            node: c.addr().to_string(),
            key: key.to_string(),
            op: Op::Delete,
            start,
            end,
            outcome: outcome.clone(),
        });
        outcome
    }

    pub async fn get(&self, client: usize, c: &Client, key: &str, q: Quorum) -> Outcome {
        let start = Instant::now();
        let r = c.get_with(key.as_bytes(), q).await;
        let end = Instant::now();
        let outcome = match r {
            Ok(r) => Outcome::Read {
                version: r.value.as_ref().map_or(0, |v| v.version),
                value: r.value.map(|v| v.value),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.record(Event {
            client,
            node: c.addr().to_string(),
            key: key.to_string(),
            op: Op::Get,
            start,
            end,
            outcome: outcome.clone(),
        });
        outcome
    }
}

/// Final reads: node address → key → what a (default-quorum) get through that node returned
/// (`Err`: the read failed).
pub type FinalReads = BTreeMap<String, BTreeMap<String, Result<Option<Vec<u8>>, String>>>;

/// Replica states: key → (replica address, what `get_local` on it returned) for every member
/// of the key's replica set. An empty map skips the divergence check.
pub type ReplicaStates = BTreeMap<String, Vec<(String, Result<Option<Stored>, String>)>>;

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub keys: usize,
    pub writes: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub reads: usize,
    pub reads_failed: usize,
    /// Acknowledged writes that some final read contradicts.
    pub lost: usize,
    /// Reads (during the run or final) of a value no put of the key wrote, or one whose put
    /// was rejected.
    pub phantom: usize,
    /// Keys whose replicas hold different versions (`None` when not checked).
    pub divergent: Option<usize>,
    /// Replica-state reads that failed.
    pub replicas_unreadable: usize,
    /// Reads during the run that returned something older than a write acknowledged before
    /// they began.
    pub stale: usize,
    /// Final reads that failed.
    pub unreadable: usize,
    /// Keys the nodes' final reads disagree on (each may still be admissible).
    pub final_disagreements: usize,
    /// A few examples of each anomaly, for the failure message.
    pub examples: Vec<String>,
}

impl Report {
    /// Fails the test unless nothing was lost, nothing phantom, no replica diverges, and every
    /// final read succeeded.
    pub fn assert_sound(&self, what: &str) {
        assert!(
            self.lost == 0
                && self.phantom == 0
                && self.divergent.unwrap_or(0) == 0
                && self.unreadable == 0,
            "{what}: the checker found anomalies\n{self}"
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history: {} keys, {} writes ({} acknowledged, {} failed, {} indeterminate), {} reads ({} failed)",
            self.keys,
            self.writes,
            self.acknowledged,
            self.failed,
            self.indeterminate,
            self.reads,
            self.reads_failed
        )?;
        let divergent = self
            .divergent
            .map_or("not checked".to_string(), |d| d.to_string());
        writeln!(
            f,
            "checker: lost {}, phantom {}, divergent {} (replica reads failed {}), stale {}, final reads failed {}, keys the nodes disagree on {}",
            self.lost,
            self.phantom,
            divergent,
            self.replicas_unreadable,
            self.stale,
            self.unreadable,
            self.final_disagreements
        )?;
        for e in &self.examples {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// What each replica holds, for a message.
pub fn describe(states: &[(String, Result<Option<Stored>, String>)]) -> String {
    states
        .iter()
        .map(|(n, s)| match s {
            Ok(Some(Stored {
                value: Some(v),
                version,
            })) => format!("{n} holds {} at {version:?}", show(&Some(v.clone()))),
            Ok(Some(Stored {
                value: None,
                version,
            })) => format!("{n} holds a tombstone at {version:?}"),
            Ok(None) => format!("{n} holds nothing"),
            Err(e) => format!("{n}: {e}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const EXAMPLES_PER_KIND: usize = 5;

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "None".into(),
    }
}

/// Judges a history once the ring is quiet.
///
/// **Lost.** For a key, call a write *possible* if it was acknowledged or is indeterminate
/// (a delete writes `None`; before any write the key holds `None`, as if by a write that ended
/// before the run began). An acknowledged write `A` is *lost* if some final read of its key,
/// through any node, returns a value `v` that is neither `A`'s nor that of a possible write
/// `W != A` that did not end before `A` started (`W.end >= A.start`: `W` is concurrent with or
/// after `A`, so it may legitimately supersede it). Equivalently, a final read is admissible
/// iff it equals the value of some possible write `W` that no acknowledged write started
/// after `W` ended; a key with an inadmissible final read has at least one lost write, and
/// every write it loses is counted.
///
/// **Phantom.** A read (during the run or final) returned `Some(v)` and no possible put of
/// the key wrote `v`.
///
/// **Divergent.** The members of a key's replica set (from `lookup`) report different
/// versions through `get_local` (nothing stored counts as version (0, 0)).
///
/// **Stale.** For a read `R` during the run, let `M` be the acknowledged write of the key with
/// the highest version among those that ended before `R` started. `R` is stale if it returned
/// a value whose version's hlc is below `M`'s, or `None` while `M` is a put and no delete of
/// the key that may have landed (acknowledged with a higher version than `M`'s, or
/// indeterminate) started before `R` ended. The client sees only the hlc of a read's version,
/// so versions are compared by hlc.
pub fn check(history: &History, final_reads: &FinalReads, replicas: &ReplicaStates) -> Report {
    let events = history.events();
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_key.entry(e.key.as_str()).or_default().push(e);
    }
    let mut r = Report {
        keys: by_key.len(),
        ..Report::default()
    };
    let mut examples: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut example = |kind: &'static str, s: String| {
        let v = examples.entry(kind).or_default();
        if v.len() < EXAMPLES_PER_KIND {
            v.push(format!("{kind}: {s}"));
        }
    };

    for e in &events {
        match (&e.op, &e.outcome) {
            (Op::Get, Outcome::Read { .. }) => r.reads += 1,
            (Op::Get, _) => {
                r.reads += 1;
                r.reads_failed += 1;
            }
            (_, Outcome::Written { .. }) => {
                r.writes += 1;
                r.acknowledged += 1
            }
            (_, Outcome::Failed(_)) => {
                r.writes += 1;
                r.failed += 1
            }
            (_, Outcome::Indeterminate(_)) => {
                r.writes += 1;
                r.indeterminate += 1
            }
            (_, Outcome::Read { .. }) => unreachable!("a write with a read outcome"),
        }
    }

    for (key, evs) in &by_key {
        let writes: Vec<&Event> = evs
            .iter()
            .copied()
            .filter(|e| e.may_have_landed())
            .collect();
        let written: BTreeSet<Vec<u8>> = writes.iter().filter_map(|e| e.written()).collect();

        // Phantom reads during the run, and stale ones.
        for rd in evs.iter().filter(|e| e.op == Op::Get) {
            let Outcome::Read { value, version } = &rd.outcome else {
                continue;
            };
            if let Some(v) = value {
                if !written.contains(v) {
                    r.phantom += 1;
                    example(
                        "phantom",
                        format!(
                            "{key}: client {} read {} through {}",
                            rd.client,
                            show(value),
                            rd.node
                        ),
                    );
                }
            }
            let newest_before = writes
                .iter()
                .filter(|w| w.end < rd.start)
                .filter_map(|w| w.acked().map(|v| (v, *w)))
                .max_by_key(|(v, _)| *v);
            let Some((mv, m)) = newest_before else {
                continue;
            };
            let stale = match value {
                Some(_) => *version < mv.0,
                None => {
                    matches!(m.op, Op::Put(_))
                        && !writes.iter().any(|d| {
                            d.op == Op::Delete
                                && d.start < rd.end
                                && d.acked().is_none_or(|dv| dv > mv)
                        })
                }
            };
            if stale {
                r.stale += 1;
                example(
                    "stale",
                    format!(
                        "{key}: client {} read {} (hlc {version}) through {}, after {} (version {mv:?}) was acknowledged",
                        rd.client,
                        show(value),
                        rd.node,
                        show(&m.written()),
                    ),
                );
            }
        }

        // Final reads: phantom, lost, disagreement.
        let mut seen: BTreeSet<Option<Vec<u8>>> = BTreeSet::new();
        let mut lost: BTreeSet<usize> = BTreeSet::new();
        for (node, reads) in final_reads {
            let Some(got) = reads.get(*key) else { continue };
            let got = match got {
                Ok(v) => v,
                Err(e) => {
                    r.unreadable += 1;
                    example("unreadable", format!("{key} through {node}: {e}"));
                    continue;
                }
            };
            seen.insert(got.clone());
            if let Some(v) = got {
                if !written.contains(v) {
                    r.phantom += 1;
                    example(
                        "phantom",
                        format!("{key}: final read through {node} gave {}", show(got)),
                    );
                }
            }
            for (i, a) in writes.iter().enumerate() {
                if a.acked().is_none() || lost.contains(&i) {
                    continue;
                }
                let explained = a.written() == *got
                    || writes
                        .iter()
                        .enumerate()
                        .any(|(j, w)| j != i && w.written() == *got && w.end >= a.start);
                if !explained {
                    lost.insert(i);
                    example(
                        "lost",
                        format!(
                            "{key}: {} by client {} through {} acknowledged (version {:?}), final read through {node} gave {}",
                            match &a.op {
                                Op::Put(v) => format!("put {}", show(&Some(v.clone()))),
                                _ => "delete".into(),
                            },
                            a.client,
                            a.node,
                            a.acked().unwrap_or_default(),
                            show(got)
                        ),
                    );
                }
            }
        }
        r.lost += lost.len();
        if seen.len() > 1 {
            r.final_disagreements += 1;
            example(
                "disagreement",
                format!(
                    "{key}: final reads gave {:?}",
                    seen.iter().map(show).collect::<Vec<_>>()
                ),
            );
        }
    }

    if !replicas.is_empty() {
        let mut divergent = 0;
        for (key, states) in replicas {
            let mut versions = BTreeSet::new();
            for (node, s) in states {
                match s {
                    Ok(s) => {
                        versions.insert(s.as_ref().map_or((0, 0), |s| s.version));
                    }
                    Err(e) => {
                        r.replicas_unreadable += 1;
                        example("replica unreadable", format!("{key} on {node}: {e}"));
                    }
                }
            }
            if versions.len() > 1 {
                divergent += 1;
                example("divergent", format!("{key}: {}", describe(states)));
            }
        }
        r.divergent = Some(divergent);
    }
    r.examples = examples.into_values().flatten().collect();
    r
}

/// Reads every key of `keys` through every client (default quorum), `concurrency` at a time
/// per node.
pub async fn final_reads(clients: &[Client], keys: &[String], concurrency: usize) -> FinalReads {
    use futures::stream::{self, StreamExt};
    let per_node = clients.iter().map(|c| async move {
        let reads: BTreeMap<String, Result<Option<Vec<u8>>, String>> = stream::iter(keys)
            .map(|k| async move {
                let r = c
                    .get(k.as_bytes())
                    .await
                    .map(|v| v.map(|v| v.value))
                    .map_err(|e| e.to_string());
                (k.clone(), r)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        (c.addr().to_string(), reads)
    });
    futures::future::join_all(per_node)
        .await
        .into_iter()
        .collect()
}

/// What every member of each key's replica set holds: `lookup` through `via`, then
/// `get_local` on each member (through `connect`ed clients, cached per address).
pub async fn replica_states(via: &Client, keys: &[String], concurrency: usize) -> ReplicaStates {
    use futures::stream::{self, StreamExt};
    let conns: Arc<tokio::sync::Mutex<BTreeMap<String, Client>>> = Arc::default();
    stream::iter(keys)
        .map(|k| {
            let conns = conns.clone();
            async move {
                let set = match via.lookup(k.as_bytes()).await {
                    Ok(l) => l.replicas,
                    Err(e) => {
                        return (
                            k.clone(),
                            vec![(via.addr().to_string(), Err(format!("lookup: {e}")))],
                        );
                    }
                };
                let mut states = Vec::new();
                for m in set {
                    let c = {
                        let mut g = conns.lock().await;
                        match g.get(&m.addr) {
                            Some(c) => Ok(c.clone()),
                            None => match Client::connect(&m.addr, Duration::from_secs(2)).await {
                                Ok(c) => {
                                    g.insert(m.addr.clone(), c.clone());
                                    Ok(c)
                                }
                                Err(e) => Err(e.to_string()),
                            },
                        }
                    };
                    let s = match c {
                        Ok(c) => c.get_local(k.as_bytes()).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e),
                    };
                    states.push((m.addr, s));
                }
                (k.clone(), states)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    //! The checker on synthetic histories: each anomaly is caught, and what is allowed is not
    //! reported.

    use super::*;

    struct Synth {
        h: History,
        t0: Instant,
    }

    impl Synth {
        fn new() -> Synth {
            Synth {
                h: History::new(),
                t0: Instant::now(),
            }
        }

        fn t(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn ev(&self, client: usize, key: &str, op: Op, span: (u64, u64), outcome: Outcome) {
            self.h.record(Event {
                client,
                node: "n1".into(),
                key: key.into(),
                op,
                start: self.t(span.0),
                end: self.t(span.1),
                outcome,
            });
        }

        fn put(&self, key: &str, v: &str, span: (u64, u64), version: Option<u64>) {
            let outcome = match version {
                Some(hlc) => Outcome::Written { version: (hlc, 1) },
                None => Outcome::Indeterminate("timeout".into()),
            };
            self.ev(0, key, Op::Put(v.as_bytes().to_vec()), span, outcome);
        }

        fn delete(&self, key: &str, span: (u64, u64), version: u64) {
            let outcome = Outcome::Written {
                version: (version, 1),
            };
            self.ev(0, key, Op::Delete, span, outcome);
        }

        fn get(&self, key: &str, span: (u64, u64), got: Option<(&str, u64)>) {
            let outcome = Outcome::Read {
                value: got.map(|(v, _)| v.as_bytes().to_vec()),
                version: got.map_or(0, |(_, hlc)| hlc),
            };
            self.ev(1, key, Op::Get, span, outcome);
        }
    }

    fn finals(reads: &[(&str, &str, Option<&str>)]) -> FinalReads {
        let mut f = FinalReads::new();
        for (node, key, v) in reads {
            f.entry(node.to_string())
                .or_default()
                .insert(key.to_string(), Ok(v.map(|v| v.as_bytes().to_vec())));
        }
        f
    }

    fn stored(v: Option<&str>, hlc: u64) -> Result<Option<Stored>, String> {
        Ok(Some(Stored {
            value: v.map(|v| v.as_bytes().to_vec()),
            version: (hlc, 1),
        }))
    }

    #[test]
    fn a_clean_history_reports_nothing() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.get("k", (20, 30), Some(("c0-0", 100)));
        s.put("k", "c0-1", (40, 50), Some(200));
        s.get("k", (60, 70), Some(("c0-1", 200)));
        let f = finals(&[("n1", "k", Some("c0-1")), ("n2", "k", Some("c0-1"))]);
        let mut reps = ReplicaStates::new();
        reps.insert(
            "k".into(),
            vec![
                ("n1".into(), stored(Some("c0-1"), 200)),
                ("n2".into(), stored(Some("c0-1"), 200)),
            ],
        );
        let r = check(&s.h, &f, &reps);
        println!("{r}");
        assert_eq!(
            (
                r.lost,
                r.phantom,
                r.divergent,
                r.stale,
                r.final_disagreements
            ),
            (0, 0, Some(0), 0, 0)
        );
        assert_eq!((r.acknowledged, r.reads, r.keys), (2, 2, 1));
        r.assert_sound("clean");
    }

    #[test]
    fn a_lost_write_is_caught() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.put("k", "c0-1", (20, 30), Some(200));
        // The final value is the first write, which ended before the second began.
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("c0-0"))]),
            &ReplicaStates::new(),
        );
        println!("{r}");
        assert_eq!(r.lost, 1);
        assert_eq!(r.divergent, None);
        // A key that reads None although a put was acknowledged lost it too.
        let r = check(&s.h, &finals(&[("n1", "k", None)]), &ReplicaStates::new());
        assert_eq!(r.lost, 2, "both acknowledged puts are contradicted by None");
        let err = std::panic::catch_unwind(|| r.assert_sound("lost")).expect_err("must fail");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("lost 2"), "{msg}");
    }

    #[test]
    fn a_lost_delete_is_caught() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.delete("k", (20, 30), 200);
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("c0-0"))]),
            &ReplicaStates::new(),
        );
        assert_eq!(r.lost, 1);
        let r = check(&s.h, &finals(&[("n1", "k", None)]), &ReplicaStates::new());
        assert_eq!(r.lost, 0);
    }

    #[test]
    fn a_write_superseded_by_a_concurrent_one_is_not_lost() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        // Two concurrent acknowledged puts: either may be the final value.
        s.put("k", "c0-1", (20, 40), Some(300));
        s.put("k", "c1-0", (25, 35), Some(250));
        for v in ["c0-1", "c1-0"] {
            let r = check(
                &s.h,
                &finals(&[("n1", "k", Some(v))]),
                &ReplicaStates::new(),
            );
            assert_eq!(r.lost, 0, "final {v}");
        }
        // But not the first, which both superseded.
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("c0-0"))]),
            &ReplicaStates::new(),
        );
        assert_eq!(r.lost, 2);
    }

    #[test]
    fn an_indeterminate_write_may_or_may_not_appear() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        // Timed out after it started: it may have landed, or not.
        s.put("k", "c0-1", (20, 2000), None);
        for v in ["c0-0", "c0-1"] {
            let r = check(
                &s.h,
                &finals(&[("n1", "k", Some(v))]),
                &ReplicaStates::new(),
            );
            assert_eq!((r.lost, r.phantom), (0, 0), "final {v}");
            assert_eq!(r.indeterminate, 1);
        }
        // An indeterminate write that ended before an acknowledged one began cannot be the
        // final value.
        s.put("k", "c0-2", (3000, 3010), Some(500));
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("c0-1"))]),
            &ReplicaStates::new(),
        );
        assert_eq!(r.lost, 1);
        // A key with only an indeterminate write may read either way.
        s.put("j", "c1-0", (0, 10), None);
        for v in [None, Some("c1-0")] {
            let r = check(&s.h, &finals(&[("n1", "j", v)]), &ReplicaStates::new());
            assert_eq!(r.lost + r.phantom, 0);
        }
    }

    #[test]
    fn a_phantom_read_is_caught() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.get("k", (20, 30), Some(("never-written", 100)));
        // A rejected put's value is a phantom too.
        s.ev(
            2,
            "k",
            Op::Put(b"c2-0".to_vec()),
            (40, 50),
            Outcome::Failed("rejected".into()),
        );
        s.get("k", (60, 70), Some(("c2-0", 150)));
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("c0-0"))]),
            &ReplicaStates::new(),
        );
        println!("{r}");
        assert_eq!((r.phantom, r.failed), (2, 1));
        // A final read of a value never written is a phantom (and loses the write).
        let r = check(
            &s.h,
            &finals(&[("n1", "k", Some("other"))]),
            &ReplicaStates::new(),
        );
        assert_eq!((r.phantom, r.lost), (3, 1));
    }

    #[test]
    fn divergent_replicas_are_caught() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.delete("j", (0, 10), 100);
        let f = finals(&[("n1", "k", Some("c0-0")), ("n1", "j", None)]);
        let mut reps = ReplicaStates::new();
        reps.insert(
            "k".into(),
            vec![
                ("n1".into(), stored(Some("c0-0"), 100)),
                ("n2".into(), Ok(None)),
                ("n3".into(), stored(Some("c0-0"), 100)),
            ],
        );
        // A tombstone at the same version everywhere agrees; one missing diverges.
        reps.insert(
            "j".into(),
            vec![
                ("n1".into(), stored(None, 100)),
                ("n2".into(), stored(None, 100)),
            ],
        );
        let r = check(&s.h, &f, &reps);
        println!("{r}");
        assert_eq!((r.divergent, r.lost), (Some(1), 0));
        assert!(std::panic::catch_unwind(|| r.assert_sound("divergent")).is_err());
    }

    #[test]
    fn a_stale_read_is_caught_and_a_concurrent_one_is_not() {
        let s = Synth::new();
        s.put("k", "c0-0", (0, 10), Some(100));
        s.put("k", "c0-1", (20, 30), Some(200));
        // Began after the second put was acknowledged, returned the first: stale.
        s.get("k", (40, 50), Some(("c0-0", 100)));
        // Began before the second put ended: the first is still a fine answer.
        s.get("k", (25, 45), Some(("c0-0", 100)));
        // None after an acknowledged put: stale.
        s.get("k", (60, 70), None);
        // None after an acknowledged put and then a delete: fine; and the old value is stale.
        s.delete("k", (80, 90), 300);
        s.get("k", (100, 110), None);
        s.get("k", (100, 110), Some(("c0-1", 200)));
        // None while a delete of unknown outcome runs: fine.
        s.put("k", "c0-2", (120, 130), Some(400));
        s.ev(
            0,
            "k",
            Op::Delete,
            (140, 5000),
            Outcome::Indeterminate("t".into()),
        );
        s.get("k", (150, 160), None);
        let r = check(&s.h, &finals(&[("n1", "k", None)]), &ReplicaStates::new());
        println!("{r}");
        assert_eq!(r.stale, 3);
        assert_eq!((r.lost, r.phantom), (0, 0));
    }
}
