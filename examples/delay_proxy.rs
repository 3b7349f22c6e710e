//! A TCP proxy that adds latency, for `scripts/bench.sh`'s slow-link rows: what a
//! WAN between sites, or a satellite link, does to a registry's round trips.
//!
//!   delay_proxy UPSTREAM_HOST:PORT RTT_MS
//!
//! Listens on a free loopback port (printed on stdout, `127.0.0.1:PORT`) and
//! forwards every connection to the upstream. Each direction delays every byte
//! by half of RTT_MS without limiting bandwidth, so each request/response round
//! trip costs RTT_MS more, and a new connection costs one more RTT (its
//! handshake). HTTP passes through untouched (keep-alive included); the `Host`
//! header stays the proxy's, so upload `Location`s point back through it.
//! With `DELAY_PROXY_LOG=1`, the request lines seen are printed on stderr with the
//! milliseconds since start (where a run spends its round trips).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(upstream), Some(rtt)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: delay_proxy UPSTREAM_HOST:PORT RTT_MS");
        std::process::exit(2);
    };
    let rtt = Duration::from_millis(rtt.parse().unwrap_or(100));
    let log = std::env::var_os("DELAY_PROXY_LOG").is_some();
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?);
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            // The handshake's round trip.
            tokio::time::sleep(rtt).await;
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let half = rtt / 2;
            let requests = log.then_some(started);
            tokio::join!(pipe(cr, sw, half, requests), pipe(sr, cw, half, None));
        });
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    requests: Option<Instant>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(start) = requests {
                        log_request(start, &buf[..n]);
                    }
                    let due = Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer once everything read is written.
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(delay).await;
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Prints the request line a chunk starts with, if it starts with one.
fn log_request(start: Instant, chunk: &[u8]) {
    const METHODS: [&[u8]; 6] = [b"GET ", b"HEAD ", b"POST ", b"PUT ", b"PATCH ", b"DELETE "];
    if METHODS.iter().any(|m| chunk.starts_with(m)) {
        let line = chunk.split(|b| *b == b'\r').next().unwrap_or_default();
        eprintln!(
            "{:6} {}",
            start.elapsed().as_millis(),
            String::from_utf8_lossy(line)
        );
    }
}
