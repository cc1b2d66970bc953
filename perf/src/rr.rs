//! `xnet-rr`: TCP request/response over one connection, the shape of an RPC or a cache lookup.
//! The client sends N bytes and waits for N bytes back before it sends again; the server echoes.
//! Nagle is off on both ends, so every message is a segment of its own.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use clap::Subcommand;
use serde::{Deserialize, Serialize};

#[derive(Debug, Subcommand)]
pub enum RrCommand {
    /// Echo what each connection sends, until killed.
    Server {
        #[arg(long, default_value = "0.0.0.0:7000")]
        listen: SocketAddr,
    },
    /// Run transactions against a server and report the rate and latencies.
    Client {
        #[arg(long)]
        server: SocketAddr,
        /// Bytes per request and per reply.
        #[arg(long, default_value_t = 1)]
        size: usize,
        /// Seconds to run for.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RrReport {
    pub transactions: u64,
    /// Transactions per second.
    pub tps: f64,
    /// Round-trip latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn main(command: &RrCommand) -> anyhow::Result<()> {
    match *command {
        RrCommand::Server { listen } => serve(listen),
        RrCommand::Client {
            server,
            size,
            duration,
        } => crate::print_report(&client(server, size, Duration::from_secs_f64(duration))?),
    }
}

fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("{}", crate::READY);
    for stream in listener.incoming() {
        let stream = stream?;
        thread::spawn(move || echo(stream));
    }
    Ok(())
}

/// Echoes until the peer closes; a request is answered with exactly the bytes it carried.
fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

fn client(server: SocketAddr, size: usize, duration: Duration) -> anyhow::Result<RrReport> {
    ensure!(size > 0, "message size must be at least 1 byte");
    let mut stream =
        TcpStream::connect(server).with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    let request = vec![0x5a; size];
    let mut reply = vec![0; size];
    let mut latencies_ns = Vec::with_capacity(1 << 20);
    let start = Instant::now();
    while start.elapsed() < duration {
        let sent = Instant::now();
        stream.write_all(&request)?;
        stream.read_exact(&mut reply)?;
        latencies_ns.push(sent.elapsed().as_nanos() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies_ns.sort_unstable();
    Ok(RrReport {
        transactions: latencies_ns.len() as u64,
        tps: latencies_ns.len() as f64 / seconds,
        p50_us: percentile(&latencies_ns, 50.0) / 1e3,
        p99_us: percentile(&latencies_ns, 99.0) / 1e3,
    })
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn client_and_server_ping_pong_over_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || echo(listener.accept().unwrap().0));
        let report = client(addr, 1024, Duration::from_millis(100)).unwrap();
        assert!(report.transactions > 0);
        assert!(report.p50_us <= report.p99_us);
    }
}
