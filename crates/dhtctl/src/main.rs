//! dhtctl: the command-line client of dht, a thin layer over `dht-client`.
//!
//! Exit codes: 0 success, 1 key not found (get), 2 usage error, 3 node unreachable or timed
//! out, 4 request rejected (invalid argument), 5 any other failure. Every error is one line
//! on stderr.

/// `println!` that ends the process quietly when stdout is closed (`dhtctl info | head`)
/// instead of panicking on the broken pipe, as a shell tool is expected to.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod bench;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dht_client::{Client, ClientError, Quorum, Reason};

#[derive(Parser, Debug)]
#[command(name = "dhtctl", version, about = "Command-line client for a dht ring")]
struct Cli {
    /// Node to talk to (any member of the ring).
    #[arg(
        long,
        env = "DHT_NODE",
        default_value = "127.0.0.1:5000",
        global = true
    )]
    node: String,
    /// Per-request timeout in seconds.
    #[arg(long, env = "DHT_TIMEOUT", default_value_t = 5.0, global = true)]
    timeout: f64,
    /// Print JSON instead of text (info, lookup, get).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Store VALUE under KEY ("-" reads the value from stdin, binary-safe).
    Put {
        key: String,
        value: String,
        /// Expire after this long: 30s, 5m, 2h, 1d (a bare number is seconds).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
        /// Replicas that must acknowledge: one, majority or all (default: the node's).
        #[arg(long, value_parser = parse_quorum)]
        quorum: Option<Quorum>,
    },
    /// Print the value of KEY (exit 1 if absent).
    Get {
        key: String,
        /// Write the value's raw bytes with no trailing newline.
        #[arg(long)]
        raw: bool,
        /// Replicas to ask: one, majority or all (default: the node's).
        #[arg(long, value_parser = parse_quorum)]
        quorum: Option<Quorum>,
        /// Read only the contacted node's own store (a diagnostic: what this replica holds,
        /// tombstones shown as "deleted").
        #[arg(long, conflicts_with = "quorum")]
        local: bool,
    },
    /// Delete KEY.
    Delete {
        key: String,
        /// Replicas that must acknowledge: one, majority or all (default: the node's).
        #[arg(long, value_parser = parse_quorum)]
        quorum: Option<Quorum>,
    },
    /// Show which node owns KEY, its replica set and the lookup's path length.
    Lookup { key: String },
    /// Show the node's ring state.
    Info,
    /// Ask the node to join the ring that BOOTSTRAP belongs to.
    Join { bootstrap: String },
    /// Ask the node to leave the ring gracefully (it hands its keys over and stops).
    Leave,
    /// Write N keys then read them back; print throughput and latency percentiles.
    Bench(bench::BenchArgs),
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 5m, 2h or 1d"))?;
    let per = match unit {
        "s" => 1u64,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use s, m, h or d")),
    };
    // A TTL is added to the node's clock in milliseconds: keep it well inside u64.
    let secs = n
        .checked_mul(per)
        .filter(|&v| v <= 100 * 365 * 86_400)
        .ok_or_else(|| format!("ttl {s:?} is too long: at most 100 years"))?;
    if secs == 0 {
        return Err("ttl must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
}

fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => 3,
        // Joining, leaving, waiting for its ring, the key's owner or a quorum of its
        // replicas not reached in time: the ring could not serve it now; try later.
        Some(ClientError::Unavailable {
            reason:
                Reason::NotServing
                | Reason::Left
                | Reason::NoOwner
                | Reason::NotOwner
                | Reason::Overloaded
                | Reason::Quorum,
            ..
        }) => 3,
        Some(ClientError::InvalidArgument(_)) => 4,
        _ => 5,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dhtctl: cannot start the async runtime: {e}");
            return ExitCode::from(5);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dhtctl: {}", e.to_string().replace('\n', " "));
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let timeout = match Duration::try_from_secs_f64(cli.timeout) {
        Ok(t) if !t.is_zero() && t <= Duration::from_secs(86_400) => t,
        _ => {
            eprintln!("dhtctl: --timeout must be a number of seconds in (0, 86400]");
            return Ok(2);
        }
    };
    if !valid_addr(&cli.node) {
        eprintln!("dhtctl: --node {:?} is not a host:port address", cli.node);
        return Ok(2);
    }
    let client = Client::connect(&cli.node, timeout).await?;
    match cli.cmd {
        Cmd::Put {
            key,
            value,
            ttl,
            quorum,
        } => {
            let value = if value == "-" {
                let mut buf = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut buf)
                    .context("cannot read the value from stdin")?;
                buf
            } else {
                value.into_bytes()
            };
            let w = client
                .put_with(
                    key.as_bytes(),
                    &value,
                    ttl,
                    quorum.unwrap_or(Quorum::Default),
                )
                .await?;
            print_written(&w, cli.json);
        }
        Cmd::Get {
            key, local: true, ..
        } => match client.get_local(key.as_bytes()).await? {
            Some(s) if cli.json => out!(
                "{{\"key\":{},\"value\":{},\"deleted\":{},\"version\":{},\"writer\":{}}}",
                json_str(&key),
                s.value
                    .as_ref()
                    .map_or("null".into(), |v| json_str(&String::from_utf8_lossy(v))),
                s.value.is_none(),
                s.version.0,
                s.version.1
            ),
            Some(s) => match &s.value {
                Some(v) => out!("{}", String::from_utf8_lossy(v)),
                None => out!("deleted (version {})", s.version.0),
            },
            None => {
                eprintln!("dhtctl: not stored on this node: {key}");
                return Ok(1);
            }
        },
        Cmd::Get {
            key, raw, quorum, ..
        } => match client
            .get_with(key.as_bytes(), quorum.unwrap_or(Quorum::Default))
            .await?
            .value
        {
            Some(v) if raw => {
                let mut out = std::io::stdout().lock();
                out.write_all(&v.value)?;
                out.flush()?;
            }
            Some(v) if cli.json => out!(
                "{{\"key\":{},\"value\":{},\"version\":{},\"expires_at_ms\":{}}}",
                json_str(&key),
                json_str(&String::from_utf8_lossy(&v.value)),
                v.version,
                v.expires_at_ms
                    .map_or("null".to_string(), |t| t.to_string())
            ),
            Some(v) => out!("{}", String::from_utf8_lossy(&v.value)),
            None => {
                eprintln!("dhtctl: key not found: {key}");
                return Ok(1);
            }
        },
        Cmd::Delete { key, quorum } => {
            let w = client
                .delete_with(key.as_bytes(), quorum.unwrap_or(Quorum::Default))
                .await?;
            print_written(&w, cli.json);
        }
        Cmd::Lookup { key } => {
            let r = client.lookup(key.as_bytes()).await?;
            if cli.json {
                out!(
                    "{{\"key\":{},\"key_id\":\"{}\",\"owner\":{},\"owner_id\":\"{}\",\"replicas\":[{}],\"hops\":{}}}",
                    json_str(&key),
                    r.key_id,
                    json_str(&r.owner.addr),
                    r.owner.id,
                    r.replicas
                        .iter()
                        .map(|n| json_str(&n.addr))
                        .collect::<Vec<_>>()
                        .join(","),
                    r.hops
                );
            } else {
                out!("key_id   {}", r.key_id);
                out!("owner    {} ({})", r.owner.addr, r.owner.id);
                out!(
                    "replicas {}",
                    r.replicas
                        .iter()
                        .map(|n| n.addr.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                out!(
                    "hops     {} (nodes contacted until the key's predecessor answered)",
                    r.hops
                );
            }
        }
        Cmd::Info => print_info(&client.info().await?, cli.json),
        Cmd::Join { bootstrap } => {
            let s = client.join(&bootstrap).await?;
            out!("joined; successor {}", s.addr);
        }
        Cmd::Leave => {
            client.leave().await?;
            out!("left the ring");
        }
        Cmd::Bench(args) => {
            if args.ops == 0 || args.concurrency == 0 {
                eprintln!("dhtctl: --ops and --concurrency must be at least 1");
                return Ok(2);
            }
            bench::run(&client, args).await?;
        }
    }
    Ok(0)
}

fn parse_quorum(s: &str) -> Result<Quorum, String> {
    match s.to_ascii_lowercase().as_str() {
        "one" => Ok(Quorum::One),
        "majority" => Ok(Quorum::Majority),
        "all" => Ok(Quorum::All),
        _ => Err(format!("{s:?}: expected one, majority or all")),
    }
}

/// "OK", and how many replicas acknowledged the version written.
fn print_written(w: &dht_client::Written, json: bool) {
    if json {
        out!(
            "{{\"version\":{},\"writer\":{},\"acks\":{},\"replicas\":{}}}",
            w.version,
            w.node,
            w.acks,
            w.replicas
        );
    } else {
        out!(
            "OK (version {}, {} of {} replicas)",
            w.version,
            w.acks,
            w.replicas
        );
    }
}

fn valid_addr(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_info(i: &dht_client::NodeInfo, json: bool) {
    if json {
        let list = |v: &[dht_client::NodeRef]| {
            v.iter()
                .map(|n| json_str(&n.addr))
                .collect::<Vec<_>>()
                .join(",")
        };
        out!(
            "{{\"addr\":{},\"id\":\"{}\",\"predecessor\":{},\"successors\":[{}],\"fingers\":[{}],\"hash_size\":{},\"keys\":{},\"replication_factor\":{},\"write_quorum\":{},\"read_quorum\":{},\"tasks\":[{}],\"version\":{},\"passive\":[{}]}}",
            json_str(&i.me.addr),
            i.me.id,
            i.predecessor.as_ref().map_or("null".into(), |p| json_str(&p.addr)),
            list(&i.successors),
            list(&i.fingers),
            i.hash_size,
            i.keys,
            i.replication_factor,
            i.write_quorum,
            i.read_quorum,
            i.tasks.iter().map(|t| json_str(t)).collect::<Vec<_>>().join(","),
            json_str(&i.version),
            list(&i.passive)
        );
        return;
    }
    out!("node         {} ({})", i.me.addr, i.me.id);
    out!(
        "predecessor  {}",
        i.predecessor
            .as_ref()
            .map_or("none".to_string(), |p| p.addr.clone())
    );
    let addrs = |v: &[dht_client::NodeRef]| {
        v.iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    out!("successors   {}", addrs(&i.successors));
    out!("fingers      {}", addrs(&i.fingers));
    if !i.passive.is_empty() {
        out!(
            "probing      {} (presumed dead or bootstrap)",
            addrs(&i.passive)
        );
    }
    out!("hash_size    {}", i.hash_size);
    out!("keys         {}", i.keys);
    out!(
        "replication  {} (write quorum {}, read quorum {})",
        i.replication_factor,
        i.write_quorum,
        i.read_quorum
    );
    out!("tasks        {}", i.tasks.join(" "));
    out!("version      {}", i.version);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dht_client::ClientError;
    use dht_core::Id;
    use dht_node::{NodeError, NotServing};

    use super::exit_code;

    /// Every error a node can answer with, through the wire (`Status`), the client library's
    /// classification and dhtctl's exit code: the code is chosen by variant and reason alone.
    #[test]
    fn every_node_error_reaches_its_documented_exit_code() {
        let peer_timeout = tonic::Status::deadline_exceeded("peer did not answer");
        let store_err = dht_store::StoreError::Backend("damaged page".into());
        let cases: Vec<(NodeError, u8)> = vec![
            (NodeError::InvalidArgument("bad".into()), 4),
            (NodeError::KeyTooLarge { len: 9, limit: 1 }, 4),
            (NodeError::ValueTooLarge { len: 9, limit: 1 }, 4),
            (NodeError::EmptyKey, 4),
            (
                NodeError::HashSizeMismatch {
                    ours: 160,
                    theirs: 16,
                },
                5,
            ),
            (
                NodeError::NotOwner {
                    id: Id::ZERO,
                    range: None,
                },
                3,
            ),
            (NodeError::NotServing(NotServing::Waiting), 3),
            (NodeError::NotServing(NotServing::Joining), 3),
            (NodeError::NotServing(NotServing::Leaving), 3),
            (NodeError::Left, 3),
            (NodeError::Overloaded, 3),
            (
                NodeError::Quorum {
                    op: "put",
                    answered: 1,
                    needed: 2,
                    replicas: 3,
                },
                3,
            ),
            (
                NodeError::ClockSkew {
                    ahead_ms: 90_000,
                    limit_ms: 60_000,
                },
                5,
            ),
            (NodeError::LookupFailed(Id::ZERO), 3),
            (
                NodeError::NoOwner {
                    id: Id::ZERO,
                    timeout_ms: 5,
                },
                3,
            ),
            (
                NodeError::Peer {
                    addr: "p:1".into(),
                    status: peer_timeout,
                },
                3,
            ),
            (NodeError::Bootstrap("a:1".into()), 5),
            (NodeError::Precondition("already a member".into()), 5),
            (NodeError::Store(store_err), 5),
            (
                NodeError::Remote {
                    code: tonic::Code::Internal,
                    message: "x".into(),
                },
                5,
            ),
            (NodeError::LeaveCutShort("x".into()), 5),
            (NodeError::Internal("x".into()), 5),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let status = tonic::Status::from(e);
            let client = ClientError::from_status("n:1", Duration::from_secs(1), status);
            let got = exit_code(&anyhow::Error::new(client));
            assert_eq!(got, want, "{text}");
        }
        // What the transport says when the node is not there at all: unreachable, exit 3.
        let refused = tonic::Status::unavailable("tcp connect error");
        let client = ClientError::from_status("n:1", Duration::from_secs(1), refused);
        assert!(
            matches!(client, ClientError::Unreachable { .. }),
            "{client:?}"
        );
        assert_eq!(exit_code(&anyhow::Error::new(client)), 3);
    }
}
