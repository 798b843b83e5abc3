//! A running node is observable: `--metrics-addr` serves Prometheus text that counts the
//! client requests made, and gRPC health reports SERVING for the node's services.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::harness::{wait_until, Node};

/// The metrics address a node started with `--metrics-addr HOST:0` reported in its log.
fn metrics_addr(log: &str) -> Option<String> {
    let start = log.find("http://")? + "http://".len();
    let rest = &log[start..];
    let end = rest.find("/metrics")?;
    Some(rest[..end].to_string())
}

/// One plain HTTP/1.1 GET of `/metrics`; returns the body.
fn scrape(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("scrape answered {head:?}")));
    }
    Ok(body.to_string())
}

async fn scrape_async(addr: &str) -> String {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || scrape(&addr))
        .await
        .expect("scrape task")
        .unwrap_or_else(|e| panic!("scraping metrics: {e}"))
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let series = l.split_whitespace().next().unwrap_or("");
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|want| rest.contains(want))
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_and_health_reports_serving() {
    let node = Node::start(&["--metrics-addr", "127.0.0.1:0"]);
    wait_until(
        Duration::from_secs(30),
        "the metrics address in the log",
        || {
            let found = metrics_addr(&node.log_text()).is_some();
            async move { found }
        },
    )
    .await;
    let maddr = metrics_addr(&node.log_text()).expect("metrics address");
    assert!(!maddr.ends_with(":0"), "port 0 was not resolved: {maddr}");

    // gRPC health: SERVING for the whole server and for each service, once the node serves.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr))
        .expect("endpoint")
        .connect_lazy();
    let health = HealthClient::new(channel);
    for service in ["", "dht.v1.Kv", "dht.v1.Peer"] {
        wait_until(
            Duration::from_secs(30),
            &format!("health of {service:?} to be SERVING"),
            || {
                let mut h = health.clone();
                async move {
                    h.check(HealthCheckRequest {
                        service: service.to_string(),
                    })
                    .await
                    .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
                }
            },
        )
        .await;
    }

    const PUTS: usize = 20;
    const GETS: usize = 30;
    let c = node.client().await;
    for i in 0..PUTS {
        c.put(format!("k{i}").as_bytes(), b"v", None)
            .await
            .unwrap_or_else(|e| panic!("put k{i}: {e}"));
    }
    for i in 0..GETS {
        let got = c
            .get(format!("k{}", i % PUTS).as_bytes())
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        assert!(got.is_some(), "k{} was put", i % PUTS);
    }

    let text = scrape_async(&maddr).await;
    let ok = |op: &str| {
        sample(
            &text,
            "dht_requests_total",
            &[&format!("op=\"{op}\""), "outcome=\"ok\""],
        )
    };
    let puts = ok("put").unwrap_or_else(|| panic!("no put counter in\n{text}"));
    let gets = ok("get").unwrap_or_else(|| panic!("no get counter in\n{text}"));
    assert!(puts >= PUTS as f64, "{puts} puts counted, {PUTS} made");
    assert!(gets >= GETS as f64, "{gets} gets counted, {GETS} made");
    let timed = sample(&text, "dht_request_duration_seconds_count", &["op=\"put\""])
        .unwrap_or_else(|| panic!("no put latency histogram in\n{text}"));
    assert!(timed >= PUTS as f64, "{timed} puts timed");
    assert_eq!(sample(&text, "dht_serving", &[]), Some(1.0), "{text}");

    // The store gauge is refreshed periodically: wait for it to catch up with the puts.
    wait_until(
        Duration::from_secs(30),
        "dht_store_entries to count the keys put",
        || {
            let maddr = maddr.clone();
            async move {
                let text = scrape_async(&maddr).await;
                sample(&text, "dht_store_entries", &[]).is_some_and(|n| n >= PUTS as f64)
            }
        },
    )
    .await;
}
