//! dhtd's configuration: built-in defaults ⟵ TOML file ⟵ `DHT_*` environment ⟵ flags.
//!
//! clap reads each flag with its environment variable as fallback (so flags beat the
//! environment), the file fills what neither gave, and [`Settings::validate`] names the key
//! and the accepted range of anything out of bounds. Unknown file keys are refused by serde.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use dht_node::NodeConfig;
use serde::Deserialize;

#[derive(Parser, Debug, Default)]
#[command(
    name = "dhtd",
    version,
    about = "dht daemon: one node of a Chord distributed hash table"
)]
pub struct Args {
    /// Address to listen on (host:port).
    #[arg(long, env = "DHT_BIND")]
    pub bind: Option<String>,
    /// Address other nodes and clients use to reach this node; its id is the hash of it.
    /// Defaults to --bind.
    #[arg(long, env = "DHT_ADVERTISE")]
    pub advertise: Option<String>,
    /// A member of the ring to join (repeatable, or comma-separated). The same list can be
    /// given to every node, this one included: nodes that all wait agree on one to start the
    /// ring. None: start a new ring.
    #[arg(long = "bootstrap", env = "DHT_BOOTSTRAP", value_delimiter = ',')]
    pub bootstrap: Vec<String>,
    /// Start a new ring from this data directory instead of rejoining the members it
    /// remembers (only matters without --bootstrap: a node restarted with its data but no
    /// bootstrap list otherwise rejoins the ring it was in).
    #[arg(long)]
    pub new_ring: bool,
    /// Give up (exit 1) when no ring could be joined or started within this many seconds.
    /// Default: keep trying for ever, as a daemon under a service manager should.
    #[arg(long, env = "DHT_BOOTSTRAP_TIMEOUT_S")]
    pub bootstrap_timeout_s: Option<f64>,
    /// Seconds a stop (SIGTERM) may take in all, leave included; past it the node exits
    /// anyway, saying what it abandoned (default 30).
    #[arg(long, env = "DHT_SHUTDOWN_TIMEOUT_S")]
    pub shutdown_timeout_s: Option<f64>,
    /// Seconds members presumed dead (and bootstrap addresses) are probed, with backoff, so
    /// the rings a network partition made merge again once it heals (default 86400).
    #[arg(long, env = "DHT_REJOIN_PROBE_WINDOW_S")]
    pub rejoin_probe_window_s: Option<u64>,
    /// TOML configuration file (see config/dhtd.example.toml).
    #[arg(long, env = "DHT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Identifier bits (1..=160); every node of a ring must agree.
    #[arg(long, env = "DHT_HASH_SIZE")]
    pub hash_size: Option<u32>,
    /// Copies of every key (owner included).
    #[arg(long, env = "DHT_REPLICATION_FACTOR")]
    pub replication_factor: Option<u32>,
    /// Replicas that must acknowledge a write: one, majority (default) or all.
    #[arg(long, env = "DHT_WRITE_QUORUM")]
    pub write_quorum: Option<String>,
    /// Replicas a read asks, returning the newest version: one, majority (default) or all.
    #[arg(long, env = "DHT_READ_QUORUM")]
    pub read_quorum: Option<String>,
    /// Versions further ahead of this node's clock than this are refused (default 60000).
    #[arg(long, env = "DHT_MAX_CLOCK_SKEW_MS")]
    pub max_clock_skew_ms: Option<u64>,
    /// Seconds between anti-entropy rounds, which compare each range with its replicas by
    /// digests and copy only what differs (default 30).
    #[arg(long, env = "DHT_ANTI_ENTROPY_INTERVAL_S")]
    pub anti_entropy_interval_s: Option<f64>,
    /// Anti-entropy bandwidth cap in KiB/s per node; 0 = no cap (default 0).
    #[arg(long, env = "DHT_ANTI_ENTROPY_RATE_KIB")]
    pub anti_entropy_rate_kib: Option<u64>,
    /// Per-request timeout in seconds (fractions allowed); also the failure-detection timeout.
    #[arg(long, env = "DHT_TIMEOUT")]
    pub timeout: Option<f64>,
    /// Largest ring size planned for; sets the default successor-list length.
    #[arg(long, env = "DHT_MAX_NODES")]
    pub max_nodes: Option<u64>,
    /// Successor-list length (default max(4, 2·⌈log2 max_nodes⌉)).
    #[arg(long, env = "DHT_SUCCESSORS")]
    pub successors: Option<usize>,
    #[arg(long, env = "DHT_STABILIZE_INTERVAL_MS")]
    pub stabilize_interval_ms: Option<u64>,
    #[arg(long, env = "DHT_FIX_FINGERS_INTERVAL_MS")]
    pub fix_fingers_interval_ms: Option<u64>,
    #[arg(long, env = "DHT_CHECK_PREDECESSOR_INTERVAL_MS")]
    pub check_predecessor_interval_ms: Option<u64>,
    #[arg(long, env = "DHT_MAX_KEY_BYTES")]
    pub max_key_bytes: Option<usize>,
    #[arg(long, env = "DHT_MAX_VALUE_BYTES")]
    pub max_value_bytes: Option<usize>,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "dht_node=debug".
    #[arg(long, env = "DHT_LOG")]
    pub log: Option<String>,
    /// Where the node keeps its database (default: $STATE_DIRECTORY under systemd, else
    /// $XDG_DATA_HOME/dht/<port>, else ~/.local/share/dht/<port>).
    #[arg(long, env = "DHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep everything in memory: nothing survives a restart.
    #[arg(long, env = "DHT_EPHEMERAL")]
    pub ephemeral: bool,
    /// "sync": a write is acknowledged once it is on disk; "async": once in memory, flushed
    /// at least every flush_interval_ms (writes in the last interval can be lost on a crash).
    #[arg(long, env = "DHT_DURABILITY")]
    pub durability: Option<String>,
    #[arg(long, env = "DHT_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,
    /// How long a delete's tombstone is kept before it is purged, in seconds.
    #[arg(long, env = "DHT_TOMBSTONE_GRACE_S")]
    pub tombstone_grace_s: Option<u64>,
    /// How often expired keys and old tombstones are purged, in milliseconds.
    #[arg(long, env = "DHT_EXPIRY_INTERVAL_MS")]
    pub expiry_interval_ms: Option<u64>,
    /// Serve Prometheus metrics over HTTP at this address (host:port; port 0 picks a free
    /// one, printed at startup). Default: no metrics endpoint.
    #[arg(long, env = "DHT_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
}

/// The TOML file. Every key is optional; unknown keys are an error.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub bind: Option<String>,
    pub advertise: Option<String>,
    pub bootstrap: Option<Vec<String>>,
    pub bootstrap_timeout_s: Option<f64>,
    pub shutdown_timeout_s: Option<f64>,
    pub rejoin_probe_window_s: Option<u64>,
    pub hash_size: Option<u32>,
    pub replication_factor: Option<u32>,
    pub write_quorum: Option<String>,
    pub read_quorum: Option<String>,
    pub max_clock_skew_ms: Option<u64>,
    pub anti_entropy_interval_s: Option<f64>,
    pub anti_entropy_rate_kib: Option<u64>,
    pub timeout: Option<f64>,
    pub max_nodes: Option<u64>,
    pub successors: Option<usize>,
    pub stabilize_interval_ms: Option<u64>,
    pub fix_fingers_interval_ms: Option<u64>,
    pub check_predecessor_interval_ms: Option<u64>,
    pub max_key_bytes: Option<usize>,
    pub max_value_bytes: Option<usize>,
    pub log: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub ephemeral: Option<bool>,
    pub durability: Option<String>,
    pub flush_interval_ms: Option<u64>,
    pub tombstone_grace_s: Option<u64>,
    pub expiry_interval_ms: Option<u64>,
    pub metrics_addr: Option<String>,
}

/// Where and how the node stores its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Disk {
        dir: PathBuf,
        durability: dht_store::Durability,
    },
}

/// The merged settings.
#[derive(Debug)]
pub struct Settings {
    pub bind: String,
    pub bootstrap: Vec<String>,
    pub log: String,
    /// Where to serve Prometheus metrics; `None`: nowhere, and no recorder is installed.
    pub metrics_addr: Option<String>,
    pub storage: Storage,
    pub node: NodeConfig,
    /// `--new-ring`: ignore the remembered members.
    pub new_ring: bool,
}

impl Settings {
    pub fn load(args: Args) -> Result<Settings> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
                    .with_context(|| "invalid config file".to_string())?
            }
            None => FileConfig::default(),
        };
        let d = NodeConfig::default();
        let bind = args
            .bind
            .or(file.bind)
            .unwrap_or_else(|| "127.0.0.1:5000".into());
        let advertise = args.advertise.or(file.advertise);
        let bootstrap = if args.bootstrap.is_empty() {
            file.bootstrap.unwrap_or_default()
        } else {
            args.bootstrap
        };
        // `DHT_BOOTSTRAP=` (empty) or a trailing comma must not become an address.
        let bootstrap = bootstrap
            .into_iter()
            .map(|b| b.trim().to_string())
            .filter(|b| !b.is_empty())
            .collect::<Vec<String>>();
        // One file for every machine: with a wildcard bind and no advertise, this machine's
        // own entry of the shared list says where it is reached.
        let advertise = match advertise {
            Some(a) => a,
            None if is_wildcard(&bind) => {
                own_entry(&bind, &bootstrap).unwrap_or_else(|| bind.clone())
            }
            None => bind.clone(),
        };
        let shutdown_timeout = match args.shutdown_timeout_s.or(file.shutdown_timeout_s) {
            None => d.shutdown_timeout,
            Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Duration::from_secs_f64(s),
            Some(s) => bail!("shutdown_timeout_s = {s}: must be a number of seconds in (0, 3600]"),
        };
        let bootstrap_timeout = match args.bootstrap_timeout_s.or(file.bootstrap_timeout_s) {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= 365.0 * 86400.0 => {
                Some(Duration::from_secs_f64(s))
            }
            Some(s) => bail!(
                "bootstrap_timeout_s = {s}: must be a number of seconds in (0, 31536000]; leave it unset to wait for ever"
            ),
        };
        let ms =
            |v: Option<u64>, f: Option<u64>, d: Duration| v.or(f).map_or(d, Duration::from_millis);
        let timeout_s = args
            .timeout
            .or(file.timeout)
            .unwrap_or(d.timeout.as_secs_f64());
        let quorum = |v: Option<String>, name: &str, d: dht_node::Quorum| -> Result<_> {
            match v {
                None => Ok(d),
                Some(q) => q.parse().map_err(|e| anyhow::anyhow!("{name}: {e}")),
            }
        };
        let write_quorum = quorum(
            args.write_quorum.or(file.write_quorum),
            "write_quorum",
            d.write_quorum,
        )?;
        let read_quorum = quorum(
            args.read_quorum.or(file.read_quorum),
            "read_quorum",
            d.read_quorum,
        )?;
        let ae_s = args
            .anti_entropy_interval_s
            .or(file.anti_entropy_interval_s)
            .unwrap_or(d.anti_entropy_interval.as_secs_f64());
        if !(ae_s.is_finite() && (0.05..=86_400.0).contains(&ae_s)) {
            bail!("anti_entropy_interval_s = {ae_s}: must be between 0.05 and 86400");
        }
        let ephemeral = args.ephemeral || file.ephemeral.unwrap_or(false);
        let flush = Duration::from_millis(
            args.flush_interval_ms
                .or(file.flush_interval_ms)
                .unwrap_or(1000),
        );
        let durability = match args.durability.or(file.durability).as_deref() {
            None | Some("sync") => dht_store::Durability::Sync,
            Some("async") => dht_store::Durability::Async {
                flush_interval: flush,
            },
            Some(other) => bail!("durability = {other:?}: must be \"sync\" or \"async\""),
        };
        let storage = if ephemeral {
            Storage::Memory
        } else {
            let dir = match args.data_dir.or(file.data_dir) {
                Some(d) => d,
                None => default_data_dir(&advertise)?,
            };
            Storage::Disk { dir, durability }
        };
        let members_file = match &storage {
            Storage::Disk { dir, .. } => Some(dir.join(dht_node::remembered::FILE_NAME)),
            Storage::Memory => None,
        };
        let s = Settings {
            new_ring: args.new_ring,
            storage,
            bind,
            bootstrap,
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            metrics_addr: args.metrics_addr.or(file.metrics_addr),
            node: NodeConfig {
                advertise,
                hash_size: args.hash_size.or(file.hash_size).unwrap_or(d.hash_size),
                max_nodes: args.max_nodes.or(file.max_nodes).unwrap_or(d.max_nodes),
                successors: args.successors.or(file.successors),
                replication_factor: args
                    .replication_factor
                    .or(file.replication_factor)
                    .unwrap_or(d.replication_factor),
                write_quorum,
                read_quorum,
                max_clock_skew: args
                    .max_clock_skew_ms
                    .or(file.max_clock_skew_ms)
                    .map_or(d.max_clock_skew, Duration::from_millis),
                anti_entropy_interval: Duration::from_secs_f64(ae_s),
                anti_entropy_rate_kib: args
                    .anti_entropy_rate_kib
                    .or(file.anti_entropy_rate_kib)
                    .unwrap_or(d.anti_entropy_rate_kib),
                timeout: if timeout_s.is_finite() && timeout_s > 0.0 && timeout_s <= 3600.0 {
                    Duration::from_secs_f64(timeout_s)
                } else {
                    bail!("timeout = {timeout_s}: must be a number of seconds in (0, 3600]")
                },
                stabilize_interval: ms(
                    args.stabilize_interval_ms,
                    file.stabilize_interval_ms,
                    d.stabilize_interval,
                ),
                fix_fingers_interval: ms(
                    args.fix_fingers_interval_ms,
                    file.fix_fingers_interval_ms,
                    d.fix_fingers_interval,
                ),
                check_predecessor_interval: ms(
                    args.check_predecessor_interval_ms,
                    file.check_predecessor_interval_ms,
                    d.check_predecessor_interval,
                ),
                max_key_bytes: args
                    .max_key_bytes
                    .or(file.max_key_bytes)
                    .unwrap_or(d.max_key_bytes),
                max_value_bytes: args
                    .max_value_bytes
                    .or(file.max_value_bytes)
                    .unwrap_or(d.max_value_bytes),
                tombstone_grace: args
                    .tombstone_grace_s
                    .or(file.tombstone_grace_s)
                    .map_or(d.tombstone_grace, Duration::from_secs),
                expiry_interval: ms(
                    args.expiry_interval_ms,
                    file.expiry_interval_ms,
                    d.expiry_interval,
                ),
                bootstrap_timeout,
                shutdown_timeout,
                members_file,
                rejoin_probe_window: match args.rejoin_probe_window_s.or(file.rejoin_probe_window_s)
                {
                    None => d.rejoin_probe_window,
                    Some(s) if (1..=365 * 86_400).contains(&s) => Duration::from_secs(s),
                    Some(s) => bail!(
                        "rejoin_probe_window_s = {s}: must be a number of seconds in 1..=31536000"
                    ),
                },
            },
        };
        s.validate()?;
        Ok(s)
    }

    /// Refuses values out of range, naming the key and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let n = &self.node;
        let check = |ok: bool, msg: String| {
            if ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!(msg))
            }
        };
        check(
            (1..=160).contains(&n.hash_size),
            format!("hash_size = {}: must be between 1 and 160", n.hash_size),
        )?;
        check(
            (1..=16).contains(&n.replication_factor),
            format!(
                "replication_factor = {}: must be between 1 and 16",
                n.replication_factor
            ),
        )?;
        check(
            (1_000..=86_400_000).contains(&n.max_clock_skew.as_millis()),
            format!(
                "max_clock_skew_ms = {}: must be between 1000 and 86400000",
                n.max_clock_skew.as_millis()
            ),
        )?;
        check(n.max_nodes >= 1, "max_nodes = 0: must be at least 1".into())?;
        if let Some(r) = n.successors {
            check(
                (1..=256).contains(&r),
                format!("successors = {r}: must be between 1 and 256"),
            )?;
        }
        for (name, v) in [
            ("stabilize_interval_ms", n.stabilize_interval),
            ("fix_fingers_interval_ms", n.fix_fingers_interval),
            (
                "check_predecessor_interval_ms",
                n.check_predecessor_interval,
            ),
        ] {
            let ms = v.as_millis();
            check(
                (10..=600_000).contains(&ms),
                format!("{name} = {ms}: must be between 10 and 600000"),
            )?;
        }
        check(
            (1..=65_536).contains(&n.max_key_bytes),
            format!(
                "max_key_bytes = {}: must be between 1 and 65536",
                n.max_key_bytes
            ),
        )?;
        check(
            (1..=4 * 1024 * 1024).contains(&n.max_value_bytes),
            format!(
                "max_value_bytes = {}: must be between 1 and 4194304",
                n.max_value_bytes
            ),
        )?;
        for (name, a) in std::iter::once(("bind", &self.bind))
            .chain(std::iter::once(("advertise", &n.advertise)))
            .chain(self.bootstrap.iter().map(|b| ("bootstrap", b)))
            .chain(self.metrics_addr.iter().map(|m| ("metrics_addr", m)))
        {
            check(valid_addr(a), format!("{name} = {a:?}: must be host:port"))?;
        }
        if n.advertise.starts_with("0.0.0.0:") || n.advertise.starts_with("[::]:") {
            bail!(
                "advertise = {:?}: a wildcard address cannot be reached; set advertise, or list this machine's own address (same port) in bootstrap",
                n.advertise
            );
        }
        Ok(())
    }
}

/// The default data directory: systemd's `$STATE_DIRECTORY`, else a per-port folder under the
/// user's data directory, so several nodes on one machine never share one.
fn default_data_dir(advertise: &str) -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    let port = advertise.rsplit_once(':').map_or("5000", |(_, p)| p);
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(h) => PathBuf::from(h).join(".local/share"),
            None => bail!(
                "no data directory: set --data-dir (or HOME / XDG_DATA_HOME), or use --ephemeral"
            ),
        },
    };
    Ok(base.join("dht").join(port))
}

fn is_wildcard(bind: &str) -> bool {
    bind.starts_with("0.0.0.0:") || bind.starts_with("[::]:")
}

/// The entry of `list` that names this machine on `bind`'s port: its host resolves to an
/// address of a local interface (one we can bind a socket to; nothing is sent). Lets every
/// machine of a LAN share one configuration file that lists all of them.
fn own_entry(bind: &str, list: &[String]) -> Option<String> {
    use std::net::ToSocketAddrs;
    let port: u16 = bind.rsplit_once(':')?.1.parse().ok()?;
    list.iter()
        .find(|entry| {
            entry.to_socket_addrs().is_ok_and(|mut addrs| {
                addrs.any(|a| {
                    a.port() == port
                        && !a.ip().is_unspecified()
                        && std::net::UdpSocket::bind((a.ip(), 0)).is_ok()
                })
            })
        })
        .cloned()
}

fn valid_addr(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_config_is_valid_and_complete() {
        let text = include_str!("../../../config/dhtd.example.toml");
        let f: FileConfig = toml::from_str(text).expect("example config parses");
        assert_eq!(f.hash_size, Some(160));
        // Every key of FileConfig is documented (present, possibly commented out).
        for key in [
            "bind",
            "advertise",
            "bootstrap",
            "bootstrap_timeout_s",
            "shutdown_timeout_s",
            "rejoin_probe_window_s",
            "hash_size",
            "replication_factor",
            "timeout",
            "max_nodes",
            "successors",
            "stabilize_interval_ms",
            "fix_fingers_interval_ms",
            "check_predecessor_interval_ms",
            "max_key_bytes",
            "max_value_bytes",
            "log",
            "data_dir",
            "ephemeral",
            "durability",
            "flush_interval_ms",
            "tombstone_grace_s",
            "expiry_interval_ms",
            "metrics_addr",
        ] {
            assert!(
                text.contains(&format!("{key} =")),
                "{key} is not documented"
            );
        }
    }

    #[test]
    fn unknown_file_keys_are_refused_by_name() {
        let e = toml::from_str::<FileConfig>("hash_sise = 8").unwrap_err();
        assert!(e.to_string().contains("hash_sise"), "{e}");
    }

    #[test]
    fn flags_beat_the_file_and_defaults_fill_the_rest() {
        let dir = std::env::temp_dir().join(format!("dhtd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "hash_size = 16\nreplication_factor = 2\n").unwrap();
        let s = Settings::load(Args {
            config: Some(path),
            hash_size: Some(24),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(s.node.hash_size, 24);
        assert_eq!(s.node.replication_factor, 2);
        assert_eq!(s.node.timeout, NodeConfig::default().timeout);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Settings::load(Args {
            hash_size: Some(200),
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("hash_size"), "{e}");
        let e = Settings::load(Args {
            bind: Some("nonsense".into()),
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("bind"), "{e}");
        let e = Settings::load(Args {
            metrics_addr: Some("9100".into()),
            ephemeral: true,
            ..Args::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("metrics_addr"), "{e}");
    }

    #[test]
    fn metrics_are_off_unless_asked_for_and_a_flag_beats_the_file() {
        let s = Settings::load(Args {
            ephemeral: true,
            ..Args::default()
        })
        .unwrap();
        assert_eq!(s.metrics_addr, None);
        let dir = std::env::temp_dir().join(format!("dhtd-metrics-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "ephemeral = true\nmetrics_addr = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let from_file = Settings::load(Args {
            config: Some(path.clone()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(from_file.metrics_addr.as_deref(), Some("127.0.0.1:9100"));
        let s = Settings::load(Args {
            config: Some(path),
            metrics_addr: Some("127.0.0.1:0".into()),
            ..Args::default()
        })
        .unwrap();
        assert_eq!(s.metrics_addr.as_deref(), Some("127.0.0.1:0"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_wildcard_bind_advertises_this_machines_entry_of_the_shared_list() {
        // 192.0.2.0/24 is TEST-NET-1: never a local address, and nothing is sent to it.
        let list = vec![
            "192.0.2.10:5000".to_string(),
            "127.0.0.1:5001".to_string(),
            "127.0.0.1:5000".to_string(),
        ];
        assert_eq!(
            own_entry("0.0.0.0:5000", &list).as_deref(),
            Some("127.0.0.1:5000")
        );
        assert_eq!(own_entry("0.0.0.0:5002", &list), None);
        let s = Settings::load(Args {
            bind: Some("0.0.0.0:5001".into()),
            bootstrap: list.clone(),
            ephemeral: true,
            ..Args::default()
        })
        .expect("settings");
        assert_eq!(s.node.advertise, "127.0.0.1:5001");
        let err = Settings::load(Args {
            bind: Some("0.0.0.0:5009".into()),
            bootstrap: list,
            ephemeral: true,
            ..Args::default()
        })
        .expect_err("no entry for this machine");
        assert!(err.to_string().contains("advertise"), "{err}");
    }
}
