//! The gate's cost: a small GET over a kept-alive connection, one large streamed response, and a
//! WebSocket round trip, against the upstream directly and through the gate (both runtimes).
//! `cargo run --release -p multitenant-gate --example bench`; prints a Markdown table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::BodyExt as _;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

const ROUNDS: usize = 5;
const WARMUP: usize = 2_000;
/// Per round and column; the columns take turns, so that noise from a shared machine falls on all.
const REQUESTS: usize = 4_000;
const STREAM_BYTES: usize = 256 * 1024 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;
const WS_MESSAGES: usize = 1_000;
/// Connections that send small GETs at the same time, and how many each sends per round.
const PARALLEL: usize = 16;
const PARALLEL_REQUESTS: usize = 1_000;

#[derive(Default)]
struct Samples {
    get: Vec<Duration>,
    stream_mb_s: Vec<f64>,
    ws: Vec<Duration>,
    parallel_rps: Vec<f64>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One round against `addr`: kept-alive small GETs, one streamed response, WebSocket round trips.
async fn round(addr: SocketAddr, warm_up: bool, into: &mut Samples) {
    let auth = bearer(KEY);
    let headers = [("authorization", auth.as_str())];
    let skip = if warm_up { WARMUP } else { 0 };

    let mut client = Client::connect(addr).await;
    for i in 0..skip + REQUESTS {
        let start = Instant::now();
        let body = client.send(request("GET", "/small", &headers, "")).await.into_body().collect().await.unwrap();
        assert_eq!(body.to_bytes().len(), 3);
        if i >= skip {
            into.get.push(start.elapsed());
        }
    }

    let path = format!("/bytes?n={STREAM_BYTES}&c={STREAM_CHUNK}");
    let start = Instant::now();
    let mut body = client.send(request("GET", &path, &headers, "")).await.into_body();
    let mut got = 0;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(got, STREAM_BYTES);
    into.stream_mb_s.push(STREAM_BYTES as f64 / start.elapsed().as_secs_f64() / 1e6);

    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert("authorization", auth.parse().unwrap());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    for i in 0..skip / 4 + WS_MESSAGES {
        let start = Instant::now();
        ws.send(tungstenite::Message::text("ping")).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert!(back.is_text());
        if i >= skip / 4 {
            into.ws.push(start.elapsed());
        }
    }
    let _ = ws.close(None).await;

    let start = Instant::now();
    let clients: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for _ in 0..PARALLEL_REQUESTS {
                    let req = request("GET", "/small", &[("authorization", auth.as_str())], "");
                    client.send(req).await.into_body().collect().await.unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    into.parallel_rps.push((PARALLEL * PARALLEL_REQUESTS) as f64 / start.elapsed().as_secs_f64());
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let up = Upstream::start_tcp();
    let direct = up.addr.unwrap();
    let gate_current = start_gate_configured(up.gate_upstream(), KEY, |c| c.workers = 0);
    let gate_workers = start_gate_configured(up.gate_upstream(), KEY, |c| c.workers = 2);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let columns = [("direct", direct), ("gate, current-thread", gate_current), ("gate, 2 workers", gate_workers)];
    let mut samples: Vec<Samples> = columns.iter().map(|_| Samples::default()).collect();
    for r in 0..ROUNDS {
        for ((_, addr), into) in columns.iter().zip(&mut samples) {
            runtime.block_on(round(*addr, r == 0, into));
        }
    }
    for s in &mut samples {
        s.get.sort();
        s.ws.sort();
        s.stream_mb_s.sort_by(f64::total_cmp);
        s.parallel_rps.sort_by(f64::total_cmp);
    }

    println!("| | {} |", columns.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(columns.len()));
    let line = |what: &str, cell: &dyn Fn(&Samples) -> String| {
        println!("| {what} | {} |", samples.iter().map(cell).collect::<Vec<_>>().join(" | "));
    };
    let gets = ROUNDS * REQUESTS;
    let wss = ROUNDS * WS_MESSAGES;
    line(&format!("small GET, kept-alive, median of {gets}"), &|s| us(percentile(&s.get, 0.5)));
    line("small GET, p99", &|s| us(percentile(&s.get, 0.99)));
    line(
        &format!(
            "one streamed response, {} MiB in {} KiB chunks, median of {ROUNDS}",
            STREAM_BYTES >> 20,
            STREAM_CHUNK >> 10
        ),
        &|s| format!("{:.0} MB/s", s.stream_mb_s[s.stream_mb_s.len() / 2]),
    );
    line(&format!("WebSocket round trip (4-byte text), median of {wss}"), &|s| us(percentile(&s.ws, 0.5)));
    line("WebSocket round trip, p99", &|s| us(percentile(&s.ws, 0.99)));
    line(&format!("small GETs on {PARALLEL} connections at once, median of {ROUNDS}"), &|s| {
        format!("{:.0} req/s", s.parallel_rps[s.parallel_rps.len() / 2])
    });
}
