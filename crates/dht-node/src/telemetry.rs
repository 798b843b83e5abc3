//! The node's metrics, recorded through the `metrics` facade.
//!
//! dht-node only records. Whether the numbers go anywhere is the embedding process's choice:
//! `dhtd` installs the Prometheus exporter when given `--metrics-addr`; with no recorder
//! installed every handle below is the facade's no-op, so a library user who never asked for
//! metrics pays an atomic load per event at most.
//!
//! Handles are registered once, when the node is created, and kept by the node: on the
//! request path recording is an array index and an atomic add, with no key hashing, no
//! registry lookup and no allocation. The price is an ordering rule: install the recorder
//! *before* [`Node::new`](crate::Node::new), or the node keeps the no-op handles it got.
//! Registering every (operation, outcome) pair up front also means every series exists from
//! the first scrape, at zero, which is what Prometheus' `rate()` and alerts want.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};
use tonic::Code;

/// Metric names, for dashboards, tests and exporters that configure buckets per metric.
pub mod names {
    /// Counter of client (`Kv`) requests, labelled `op` and `outcome`.
    pub const REQUESTS: &str = "dht_requests_total";
    /// Histogram of client request latency in seconds, labelled `op`.
    pub const REQUEST_DURATION: &str = "dht_request_duration_seconds";
    /// Counter of operations sent to another node because it owns the key.
    pub const FORWARDED_OPS: &str = "dht_forwarded_ops_total";
    /// Histogram of operations per `Apply` batch sent by the per-peer coalescer.
    pub const APPLY_BATCH_SIZE: &str = "dht_apply_batch_size";
    /// Histogram of the path length of completed lookups.
    pub const LOOKUP_HOPS: &str = "dht_lookup_hops";
    /// Counter of lookups that found no owner.
    pub const LOOKUP_FAILURES: &str = "dht_lookup_failures_total";
    /// Counter of peers presumed dead (no answer within the timeout).
    pub const PEER_DEATHS: &str = "dht_peer_deaths_total";
    /// Counter of stabilize rounds run.
    pub const STABILIZE_ROUNDS: &str = "dht_stabilize_rounds_total";
    /// Counter of entries moved between nodes, labelled `direction` and `reason`.
    pub const HANDOFF_ENTRIES: &str = "dht_handoff_entries_total";
    /// Gauge of entries in the local store, tombstones included.
    pub const STORE_ENTRIES: &str = "dht_store_entries";
    /// Gauge of the successor list's length.
    pub const SUCCESSORS: &str = "dht_successor_list_length";
    /// Gauge: 1 when a predecessor is known, else 0.
    pub const PREDECESSOR_KNOWN: &str = "dht_predecessor_known";
    /// Gauge: 1 while the node serves its key range, 0 while joining and once leaving.
    pub const SERVING: &str = "dht_serving";
    /// Counter of versions refused for being further ahead of the local clock than
    /// `max_clock_skew_ms`, whatever brought them (client, peer write, handoff, repair).
    pub const VERSIONS_REFUSED: &str = "dht_versions_refused_total";
    /// Counter of replicas a read found stale or missing and rewrote (read repair).
    pub const READ_REPAIRS: &str = "dht_read_repairs_total";
    /// Counter of client operations that did not reach their quorum in time.
    pub const QUORUM_FAILURES: &str = "dht_quorum_failures_total";
    /// Counter of writes stamped again because a replica held a newer version.
    pub const RESTAMPS: &str = "dht_write_restamps_total";
    /// Counter of passive-list probes, by `verdict` (unreachable, same_ring, foreign,
    /// no_answer); `restarted` counts answers from a new incarnation.
    pub const REJOIN_PROBES: &str = "dht_rejoin_probes_total";
    /// Counter of ring-unification notices received and handled (flooded on).
    pub const UNIFY_NOTICES: &str = "dht_unify_notices_total";
    /// Gauge of members in the passive list (presumed dead or bootstrap, still probed).
    pub const PASSIVE_MEMBERS: &str = "dht_passive_members";
}

/// Bucket boundaries of the histograms, for exporters that need them up front (Prometheus
/// does; without buckets its exporter would render summaries, which cannot be aggregated
/// across nodes). Latency spans a LAN round trip to a slow fsync; hops span rings of up to
/// about 2^16 nodes (½·log2 N on average); batch sizes go up to the coalescer's maximum.
pub const HISTOGRAM_BUCKETS: &[(&str, &[f64])] = &[
    (
        names::REQUEST_DURATION,
        &[
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ],
    ),
    (
        names::LOOKUP_HOPS,
        &[
            0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0, 32.0,
        ],
    ),
    (
        names::APPLY_BATCH_SIZE,
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
    ),
];

/// The client operations of the `Kv` service, as the `op` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KvOp {
    Put,
    PutMany,
    Get,
    Delete,
    Lookup,
    Info,
    Join,
    Leave,
}

impl KvOp {
    const ALL: [KvOp; 8] = [
        KvOp::Put,
        KvOp::PutMany,
        KvOp::Get,
        KvOp::Delete,
        KvOp::Lookup,
        KvOp::Info,
        KvOp::Join,
        KvOp::Leave,
    ];

    const fn label(self) -> &'static str {
        match self {
            KvOp::Put => "put",
            KvOp::PutMany => "put_many",
            KvOp::Get => "get",
            KvOp::Delete => "delete",
            KvOp::Lookup => "lookup",
            KvOp::Info => "info",
            KvOp::Join => "join",
            KvOp::Leave => "leave",
        }
    }
}

/// The `outcome` label: the status code class a client saw. Codes the node never returns on
/// purpose share "other", so the series count stays fixed and small.
const OUTCOMES: [&str; 7] = [
    "ok",
    "invalid_argument",
    "failed_precondition",
    "unavailable",
    "deadline_exceeded",
    "internal",
    "other",
];

fn outcome_index(code: Code) -> usize {
    match code {
        Code::Ok => 0,
        Code::InvalidArgument => 1,
        Code::FailedPrecondition => 2,
        Code::Unavailable => 3,
        Code::DeadlineExceeded => 4,
        Code::Internal => 5,
        _ => 6,
    }
}

/// Why entries moved between nodes, as the `reason` label of [`names::HANDOFF_ENTRIES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handoff {
    /// Pulled from our successor while joining.
    JoinIn,
    /// Streamed to a peer that fetched a range from us (a joining node, or another node's
    /// anti-entropy round).
    FetchedOut,
    /// Pushed to us (a leaving node, a range handoff, anti-entropy, replica GC).
    PushedIn,
    /// Pushed to our successor while leaving.
    LeaveOut,
    /// Sent to their current owners after a rejoin.
    RehomeOut,
}

impl Handoff {
    const ALL: [Handoff; 5] = [
        Handoff::JoinIn,
        Handoff::FetchedOut,
        Handoff::PushedIn,
        Handoff::LeaveOut,
        Handoff::RehomeOut,
    ];

    const fn labels(self) -> (&'static str, &'static str) {
        match self {
            Handoff::JoinIn => ("in", "join"),
            Handoff::FetchedOut => ("out", "fetched"),
            Handoff::PushedIn => ("in", "pushed"),
            Handoff::LeaveOut => ("out", "leave"),
            Handoff::RehomeOut => ("out", "rehome"),
        }
    }
}

/// Describes every metric to the installed recorder (help text and unit on the scrape page).
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        "Client (Kv) requests by operation and outcome"
    );
    describe_histogram!(
        names::REQUEST_DURATION,
        Unit::Seconds,
        "Client (Kv) request latency by operation, as seen by this node"
    );
    describe_counter!(
        names::FORWARDED_OPS,
        "Operations sent to another node because it owns the key (retries included)"
    );
    describe_histogram!(
        names::APPLY_BATCH_SIZE,
        Unit::Count,
        "Operations per Apply batch sent by the per-peer coalescer"
    );
    describe_histogram!(
        names::LOOKUP_HOPS,
        Unit::Count,
        "Path length of completed lookups"
    );
    describe_counter!(names::LOOKUP_FAILURES, "Lookups that found no owner");
    describe_counter!(
        names::PEER_DEATHS,
        "Peers presumed dead after a call went unanswered"
    );
    describe_counter!(names::STABILIZE_ROUNDS, "Stabilize rounds run");
    describe_counter!(
        names::VERSIONS_REFUSED,
        "Versions refused for being further ahead of the local clock than max_clock_skew_ms"
    );
    describe_counter!(
        names::READ_REPAIRS,
        "Stale or missing replicas rewritten by a read"
    );
    describe_counter!(
        names::QUORUM_FAILURES,
        "Client operations that did not reach their quorum within the timeout"
    );
    describe_counter!(
        names::RESTAMPS,
        "Writes stamped again because a replica held a newer version"
    );
    describe_counter!(
        names::HANDOFF_ENTRIES,
        "Entries moved between nodes, by direction and reason (join, leave, rehome)"
    );
    describe_counter!(
        names::REJOIN_PROBES,
        "Probes of members presumed dead or bootstrap addresses (ring unification), by verdict"
    );
    describe_counter!(
        names::UNIFY_NOTICES,
        "Ring-unification notices handled (each looked up our id through another ring)"
    );
    describe_gauge!(
        names::PASSIVE_MEMBERS,
        Unit::Count,
        "Members presumed dead or listed as bootstrap, still probed for ring unification"
    );
    describe_gauge!(
        names::STORE_ENTRIES,
        Unit::Count,
        "Entries in the local store, tombstones included"
    );
    describe_gauge!(
        names::SUCCESSORS,
        Unit::Count,
        "Length of the successor list"
    );
    describe_gauge!(
        names::PREDECESSOR_KNOWN,
        "1 when a predecessor is known, else 0"
    );
    describe_gauge!(
        names::SERVING,
        "1 while the node serves its key range, 0 while joining or leaving"
    );
}

/// The node's metric handles, registered once (see the module doc).
pub(crate) struct Metrics {
    requests: [[Counter; OUTCOMES.len()]; KvOp::ALL.len()],
    durations: [Histogram; KvOp::ALL.len()],
    handoff: [Counter; Handoff::ALL.len()],
    pub(crate) forwarded: Counter,
    pub(crate) apply_batch_size: Histogram,
    pub(crate) lookup_hops: Histogram,
    pub(crate) lookup_failures: Counter,
    pub(crate) peer_deaths: Counter,
    pub(crate) stabilize_rounds: Counter,
    pub(crate) store_entries: Gauge,
    pub(crate) successors: Gauge,
    pub(crate) predecessor_known: Gauge,
    pub(crate) serving: Gauge,
    pub(crate) versions_refused: Counter,
    pub(crate) read_repairs: Counter,
    pub(crate) quorum_failures: Counter,
    pub(crate) restamps: Counter,
    /// Anti-entropy rounds, differing buckets, entries moved, digest bytes.
    pub(crate) anti_entropy: crate::antientropy::AntiEntropyMetrics,
    pub(crate) unify_notices: Counter,
    pub(crate) passive_members: Gauge,
}

impl Metrics {
    /// Registers every handle with the recorder installed now (the no-op if none).
    pub(crate) fn new() -> Metrics {
        use metrics::{counter, gauge, histogram};
        describe();
        Metrics {
            requests: std::array::from_fn(|op| {
                std::array::from_fn(
                    |o| counter!(names::REQUESTS, "op" => KvOp::ALL[op].label(), "outcome" => OUTCOMES[o]),
                )
            }),
            durations: std::array::from_fn(
                |op| histogram!(names::REQUEST_DURATION, "op" => KvOp::ALL[op].label()),
            ),
            handoff: std::array::from_fn(|i| {
                let (direction, reason) = Handoff::ALL[i].labels();
                counter!(names::HANDOFF_ENTRIES, "direction" => direction, "reason" => reason)
            }),
            forwarded: counter!(names::FORWARDED_OPS),
            apply_batch_size: histogram!(names::APPLY_BATCH_SIZE),
            lookup_hops: histogram!(names::LOOKUP_HOPS),
            lookup_failures: counter!(names::LOOKUP_FAILURES),
            peer_deaths: counter!(names::PEER_DEATHS),
            stabilize_rounds: counter!(names::STABILIZE_ROUNDS),
            versions_refused: counter!(names::VERSIONS_REFUSED),
            read_repairs: counter!(names::READ_REPAIRS),
            quorum_failures: counter!(names::QUORUM_FAILURES),
            restamps: counter!(names::RESTAMPS),
            store_entries: gauge!(names::STORE_ENTRIES),
            successors: gauge!(names::SUCCESSORS),
            predecessor_known: gauge!(names::PREDECESSOR_KNOWN),
            serving: gauge!(names::SERVING),
            anti_entropy: crate::antientropy::AntiEntropyMetrics::new(),
            unify_notices: counter!(names::UNIFY_NOTICES),
            passive_members: gauge!(names::PASSIVE_MEMBERS),
        }
    }

    /// Counts one finished client request and records how long it took.
    pub(crate) fn request(&self, op: KvOp, outcome: Code, took: Duration) {
        let op = op as usize;
        self.requests[op][outcome_index(outcome)].increment(1);
        self.durations[op].record(took.as_secs_f64());
    }

    /// Counts one passive-list probe by its verdict.
    pub(crate) fn rejoin_probe(&self, verdict: &'static str) {
        metrics::counter!(names::REJOIN_PROBES, "verdict" => verdict).increment(1);
    }

    /// Counts `n` entries moved between nodes.
    pub(crate) fn handoff(&self, kind: Handoff, n: u64) {
        if n > 0 {
            self.handoff[kind as usize].increment(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn labels_are_in_the_order_of_the_enums() {
        for (i, op) in KvOp::ALL.iter().enumerate() {
            assert_eq!(*op as usize, i, "{op:?}");
        }
        for (i, h) in Handoff::ALL.iter().enumerate() {
            assert_eq!(*h as usize, i, "{h:?}");
        }
        assert_eq!(OUTCOMES[outcome_index(Code::Ok)], "ok");
        assert_eq!(OUTCOMES[outcome_index(Code::Unavailable)], "unavailable");
        assert_eq!(OUTCOMES[outcome_index(Code::NotFound)], "other");
    }

    #[test]
    fn without_a_recorder_recording_is_a_no_op() {
        let m = Metrics::new();
        m.request(KvOp::Get, Code::Ok, Duration::from_millis(1));
        m.handoff(Handoff::JoinIn, 3);
        m.lookup_hops.record(2.0);
    }

    #[test]
    fn a_prometheus_scrape_shows_counters_by_label_and_histogram_buckets() {
        let mut b = PrometheusBuilder::new();
        for (name, buckets) in HISTOGRAM_BUCKETS {
            b = b
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(name.to_string()),
                    buckets,
                )
                .expect("buckets are not empty");
        }
        let recorder = b.build_recorder();
        let handle = recorder.handle();
        let m = metrics::with_local_recorder(&recorder, Metrics::new);
        m.request(KvOp::Put, Code::Ok, Duration::from_millis(2));
        m.request(KvOp::Put, Code::Ok, Duration::from_millis(3));
        m.request(KvOp::Get, Code::Unavailable, Duration::from_millis(1));
        m.handoff(Handoff::LeaveOut, 7);
        m.apply_batch_size.record(5.0);
        let text = handle.render();
        assert!(
            text.contains(r#"dht_requests_total{op="put",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dht_requests_total{op="get",outcome="unavailable"} 1"#),
            "{text}"
        );
        // Registered up front: present at zero before anything happened.
        assert!(
            text.contains(r#"dht_requests_total{op="delete",outcome="ok"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dht_handoff_entries_total{direction="out",reason="leave"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dht_request_duration_seconds_bucket{op="put",le="0.0025"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"dht_apply_batch_size_bucket{le="8"} 1"#),
            "{text}"
        );
        assert!(text.contains("# HELP dht_lookup_hops"), "{text}");
    }
}
