//! Real processes for end-to-end tests: `dhtd` nodes on ephemeral 127.0.0.1 ports (each binds
//! port 0 and reports the port it got), killed when dropped, and `dhtctl` runs. Binaries are
//! found (and built if missing) once, in one place.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dht_client::Client;
use dht_core::{IdSpace, Peer};

/// The directory holding the workspace's binaries: the test executable lives in
/// `<target>/<profile>/deps/`, the binaries one level up.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target profile directory")
            .to_path_buf();
        // Always ask cargo: a stale dhtd from an earlier build would test old code. This is a
        // no-op when the binaries are fresh (cargo releases its build lock before running
        // tests, so the nested build does not deadlock).
        {
            let release = dir.ends_with("release");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.args(["build", "-p", "dhtd", "-p", "dhtctl"]);
            if release {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build");
            assert!(st.success(), "building dhtd and dhtctl failed");
        }
        dir
    })
}

pub fn dhtd_path() -> PathBuf {
    bin_dir().join("dhtd")
}

/// A running `dhtd`, killed (SIGKILL) on drop unless it already exited. Its data directory
/// and log live in a temp dir that outlives restarts of the process.
pub struct Node {
    pub child: Child,
    pub addr: String,
    pub log: PathBuf,
    pub data_dir: PathBuf,
    args: Vec<String>,
    dir: std::sync::Arc<tempfile::TempDir>,
}

/// Settings that keep tests quick: fast maintenance and a short failure timeout.
pub const FAST: &[&str] = &[
    "--stabilize-interval-ms",
    "100",
    "--fix-fingers-interval-ms",
    "50",
    "--check-predecessor-interval-ms",
    "200",
    "--timeout",
    "2",
];

/// The [`FAST`] settings, less any flag the test gives itself (dhtd refuses a flag twice).
fn fast_unless_given<S: AsRef<str>>(args: &[S]) -> Vec<&'static str> {
    FAST.chunks(2)
        .filter(|pair| !args.iter().any(|a| a.as_ref() == pair[0]))
        .flatten()
        .copied()
        .collect()
}

impl Node {
    /// Starts a node on an ephemeral port with `extra` arguments.
    pub fn start(extra: &[&str]) -> Node {
        Node::try_start(extra).unwrap_or_else(|(log, e)| panic!("dhtd failed to start: {e}\n{log}"))
    }

    /// Starts a node listening on `bind` (an address from [`free_addrs`]), for tests that
    /// must know every address before any node starts (one shared bootstrap list).
    pub fn start_at(bind: &str, extra: &[&str]) -> Node {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Node::spawn(dir, bind, args)
            .unwrap_or_else(|(log, e)| panic!("dhtd failed to start on {bind}: {e}\n{log}"))
    }

    pub fn try_start(extra: &[&str]) -> Result<Node, (String, String)> {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Node::spawn(dir, "127.0.0.1:0", args)
    }

    fn spawn(
        dir: std::sync::Arc<tempfile::TempDir>,
        bind: &str,
        args: Vec<String>,
    ) -> Result<Node, (String, String)> {
        let log = dir.path().join("dhtd.log");
        let data_dir = dir.path().join("data");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut child = Command::new(dhtd_path())
            .args(["--bind", bind])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(fast_unless_given(&args))
            .args(&args)
            .env("DHT_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf)
            .spawn()
            .expect("spawn dhtd");
        let stdout = child.stdout.take().expect("stdout");
        // Read the address line on a thread, so a node that never prints it cannot hang us.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining stdout so the node never blocks on a full pipe.
            for _ in reader.lines() {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let addr = line.split_whitespace().nth(5).map(str::to_string);
        match addr {
            Some(addr) => Ok(Node {
                child,
                addr,
                log,
                data_dir,
                args,
                dir,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait().ok();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                Err((text, format!("no address line (exit {status:?})")))
            }
        }
    }

    /// Kills the process with SIGKILL (no leave, no flush) and waits for it.
    /// Sends `sig` (e.g. STOP, CONT) to the process.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([format!("-{sig}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {}", self.addr);
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again on the same address and data directory, with the original
    /// arguments plus `extra`.
    pub fn restart(&mut self, extra: &[&str]) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        let fresh = Node::spawn(self.dir.clone(), &self.addr.clone(), args)
            .unwrap_or_else(|(log, e)| panic!("dhtd failed to restart: {e}\n{log}"));
        let old = std::mem::replace(self, fresh);
        drop(old);
    }

    pub fn peer(&self, space: IdSpace) -> Peer {
        Peer::from_addr(space, &self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr, Duration::from_secs(10))
            .await
            .expect("connect to node")
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.wait_exit(Duration::from_secs(30))
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "dhtd {} did not exit in {limit:?}\n{}",
                    self.addr,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `n` distinct 127.0.0.1 addresses whose ports the kernel just handed out as free. The
/// listeners are closed before returning, so a dhtd can bind each (another process could
/// take one in between; the ephemeral range makes that unlikely).
pub fn free_addrs(n: usize) -> Vec<String> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("local addr").to_string())
        .collect()
}

/// Runs `dhtctl` against `node` (if any) and returns its output.
pub fn dhtctl(node: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin_dir().join("dhtctl"));
    if let Some(n) = node {
        cmd.args(["--node", n]);
    }
    cmd.args(args)
        .env_remove("DHT_NODE")
        .stdin(Stdio::null())
        .output()
        .expect("run dhtctl")
}

/// Polls `check` until it returns true or `limit` passes; the bound is generous, the poll
/// interval short, so nothing depends on how fast the machine is.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether every node's successor and predecessor match the ring their addresses define.
pub async fn ring_is_stable(nodes: &[&Node]) -> bool {
    let space = IdSpace::default();
    let mut ring: Vec<Peer> = nodes.iter().map(|n| n.peer(space)).collect();
    ring.sort_by_key(|p| p.id);
    let n = ring.len();
    for (i, p) in ring.iter().enumerate() {
        let Ok(c) = Client::connect(&p.addr, Duration::from_secs(2)).await else {
            return false;
        };
        let Ok(info) = c.info().await else {
            return false;
        };
        let want_succ: Vec<String> = (1..n).map(|k| ring[(i + k) % n].addr.to_string()).collect();
        let got_succ: Vec<String> = info.successors.iter().map(|s| s.addr.clone()).collect();
        let want_pred = (n > 1).then(|| ring[(i + n - 1) % n].addr.to_string());
        if got_succ != want_succ || info.predecessor.map(|p| p.addr) != want_pred {
            return false;
        }
    }
    true
}

/// Starts a ring of `n` nodes, each joining through the first, and waits until it is stable.
pub async fn ring(n: usize, extra: &[&str]) -> Vec<Node> {
    let first = Node::start(extra);
    let mut nodes = vec![first];
    for _ in 1..n {
        let boot = nodes[0].addr.clone();
        let mut args = extra.to_vec();
        args.extend(["--bootstrap", boot.as_str()]);
        nodes.push(Node::start(&args));
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(Duration::from_secs(60), "the ring to stabilize", || {
        ring_is_stable(&refs)
    })
    .await;
    nodes
}

/// Runs `dhtctl` against `node` (if any) with `input` on its stdin and returns its output.
pub fn dhtctl_stdin(node: Option<&str>, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(bin_dir().join("dhtctl"));
    if let Some(n) = node {
        cmd.args(["--node", n]);
    }
    let mut child = cmd
        .args(args)
        .env_remove("DHT_NODE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dhtctl");
    let mut stdin = child.stdin.take().expect("dhtctl stdin");
    let input = input.to_vec();
    // Write on a thread so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for dhtctl");
    let _ = writer.join();
    out
}

/// Runs a `dhtd` on an ephemeral port with `data_dir` and `extra` arguments, logging off,
/// until it exits or `limit` passes (then it is killed). Returns the exit status (`None`:
/// it was still running at the limit) and everything it wrote to stderr.
pub fn run_dhtd(
    data_dir: &Path,
    extra: &[&str],
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    use std::io::Read;
    let mut child = Command::new(dhtd_path())
        .args(["--bind", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(FAST)
        .args(extra)
        .env("DHT_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dhtd");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, reader.join().unwrap_or_default())
}

/// Restarts every node of a ring started by [`ring`], the first (which has no bootstrap) first,
/// so each of the others finds its bootstrap up; then waits until the ring is stable again.
pub async fn restart_ring(nodes: &mut [Node]) {
    for n in nodes.iter_mut() {
        n.restart(&[]);
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    wait_until(
        Duration::from_secs(60),
        "the restarted ring to stabilize",
        || ring_is_stable(&refs),
    )
    .await;
}
