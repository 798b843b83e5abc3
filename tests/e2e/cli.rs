//! Bad input through the real binaries: each gives its documented exit code and one clear
//! line, and the ring keeps serving.

use std::time::Duration;

use crate::harness::{dhtctl, dhtd_path, Node};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs `cmd` to completion, killing it after `limit`: a dhtd that wrongly accepted its
/// arguments would otherwise serve for ever and hang the test.
fn output_within(cmd: &mut std::process::Command, limit: Duration) -> std::process::Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait for the process"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("the process did not exit within {limit:?}");
        }
    }
}

#[test]
fn bad_input_gives_documented_exit_codes_and_the_node_keeps_serving() {
    let n = Node::start(&["--max-value-bytes", "1024", "--max-key-bytes", "64"]);
    let addr = Some(n.addr.as_str());

    let o = dhtctl(addr, &["frobnicate"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "unknown subcommand: {}",
        stderr(&o)
    );
    let o = dhtctl(addr, &["put", "onlykey"]);
    assert_eq!(o.status.code(), Some(2), "missing arg: {}", stderr(&o));
    let o = dhtctl(addr, &["get"]);
    assert_eq!(o.status.code(), Some(2));

    let o = dhtctl(addr, &["put", "", "v"]);
    assert_eq!(o.status.code(), Some(4), "empty key: {}", stderr(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1);

    let big = "x".repeat(2000);
    let o = dhtctl(addr, &["put", "k", &big]);
    assert_eq!(o.status.code(), Some(4), "big value: {}", stderr(&o));
    assert!(stderr(&o).contains("1024"), "{}", stderr(&o));
    let o = dhtctl(addr, &["put", &"k".repeat(65), "v"]);
    assert_eq!(o.status.code(), Some(4), "big key: {}", stderr(&o));

    let o = dhtctl(addr, &["get", "absent"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not found"));

    let o = dhtctl(addr, &["put", "k", "v", "--ttl", "3x"]);
    assert_eq!(o.status.code(), Some(2), "bad ttl: {}", stderr(&o));

    // Unreachable node: a port nothing listens on (bound, then released).
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let o = dhtctl(Some(&dead), &["--timeout", "2", "get", "k"]);
    assert_eq!(o.status.code(), Some(3), "unreachable: {}", stderr(&o));
    assert!(stderr(&o).contains(&dead), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1);

    // The node still serves.
    let o = dhtctl(addr, &["put", "k", "v"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = dhtctl(addr, &["get", "k"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "v");
    let o = dhtctl(addr, &["delete", "k"]);
    assert!(o.status.success());
    let o = dhtctl(addr, &["get", "k"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_node_that_cannot_reach_any_bootstrap_within_its_limit_exits_with_one_line_naming_them() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = free.local_addr().unwrap().to_string();
    drop(free);
    let out = output_within(
        std::process::Command::new(dhtd_path())
            .args([
                "--bind",
                "127.0.0.1:0",
                "--ephemeral",
                "--timeout",
                "1",
                "--bootstrap-timeout-s",
                "2",
                "--bootstrap",
                &dead,
            ])
            .env("DHT_LOG", "off"),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&dead), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn nodes_with_different_hash_sizes_refuse_to_join() {
    let a = Node::start(&[]);
    let out = output_within(
        std::process::Command::new(dhtd_path())
            .args([
                "--bind",
                "127.0.0.1:0",
                "--ephemeral",
                "--hash-size",
                "16",
                // Bounds the test even if the mismatch were not detected.
                "--bootstrap-timeout-s",
                "20",
                "--bootstrap",
                &a.addr,
            ])
            .env("DHT_LOG", "off"),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("hash_size"), "{err}");
}

#[test]
fn bad_configuration_is_a_startup_error_that_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dhtd.toml");
    std::fs::write(&cfg, "stabilise_interval_ms = 100\n").unwrap();
    let out = output_within(
        std::process::Command::new(dhtd_path())
            .args(["--bind", "127.0.0.1:0", "--ephemeral", "--config"])
            .arg(&cfg),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("stabilise_interval_ms"),
        "{}",
        stderr(&out)
    );

    let out = output_within(
        std::process::Command::new(dhtd_path())
            .args(["--bind", "127.0.0.1:0", "--ephemeral"])
            .env("DHT_HASH_SIZE", "0"),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hash_size"), "{}", stderr(&out));
}
