//! A node's settings, as the daemon hands them over after merging file, environment and flags.

use std::time::Duration;

use dht_core::{ChordConfig, Quorum};

use crate::NodeError;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The `host:port` other nodes and clients reach this node at; its id is the hash of it.
    pub advertise: String,
    pub hash_size: u32,
    pub max_nodes: u64,
    /// Successor-list length; `None` = Zave's default from `max_nodes`.
    pub successors: Option<usize>,
    pub replication_factor: u32,
    /// Replicas that must acknowledge a write / answer a read, unless a request says otherwise.
    pub write_quorum: Quorum,
    pub read_quorum: Quorum,
    /// Versions further ahead of the local clock than this are refused, wherever they come
    /// from; also how far the clock follows a version it sees.
    pub max_clock_skew: Duration,
    /// How often each range is compared with its replicas (anti-entropy).
    pub anti_entropy_interval: Duration,
    /// Anti-entropy bandwidth cap in KiB/s; 0 = none.
    pub anti_entropy_rate_kib: u64,
    /// Where the ring's members are remembered across restarts (`remembered`); `None` for a
    /// node without a data directory.
    pub members_file: Option<std::path::PathBuf>,
    /// Per request, and the failure-detection timeout of peer calls.
    pub timeout: Duration,
    pub stabilize_interval: Duration,
    pub fix_fingers_interval: Duration,
    pub check_predecessor_interval: Duration,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// How long a delete's tombstone is kept before it is purged.
    pub tombstone_grace: Duration,
    /// How often expired entries and old tombstones are purged.
    pub expiry_interval: Duration,
    /// How long to wait for a ring to join or start before giving up; `None`: for ever (a
    /// daemon under a service manager should wait for its peers, not exit).
    pub bootstrap_timeout: Option<Duration>,
    /// How long members presumed dead (and bootstrap addresses) are probed for ring
    /// unification before they are forgotten.
    pub rejoin_probe_window: Duration,
    /// How long a stop (SIGTERM) may take in all: the leave, then the background tasks.
    /// Past it the node stops anyway, saying what it abandoned.
    pub shutdown_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            advertise: "127.0.0.1:5000".into(),
            hash_size: 160,
            max_nodes: 1024,
            successors: None,
            replication_factor: 3,
            write_quorum: Quorum::Majority,
            read_quorum: Quorum::Majority,
            max_clock_skew: Duration::from_secs(60),
            anti_entropy_interval: Duration::from_secs(30),
            anti_entropy_rate_kib: 0,
            members_file: None,
            timeout: Duration::from_secs(3),
            stabilize_interval: Duration::from_millis(250),
            fix_fingers_interval: Duration::from_millis(250),
            check_predecessor_interval: Duration::from_millis(500),
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            tombstone_grace: Duration::from_secs(24 * 3600),
            expiry_interval: Duration::from_secs(10),
            bootstrap_timeout: None,
            shutdown_timeout: Duration::from_secs(30),
            rejoin_probe_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl NodeConfig {
    pub fn chord(&self) -> Result<ChordConfig, NodeError> {
        let mut cfg = ChordConfig::new(self.hash_size, self.max_nodes)?;
        // The core counts time in stabilize rounds; the rejoin task runs once per round.
        let round = self.stabilize_interval.as_secs_f64().max(0.001);
        cfg.rejoin_window_rounds = (self.rejoin_probe_window.as_secs_f64() / round).ceil() as u64;
        Ok(match self.successors {
            Some(r) => cfg.with_successors(r)?,
            None => cfg,
        })
    }
}
