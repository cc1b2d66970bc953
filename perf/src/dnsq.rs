//! `xnet-dnsq`: DNS queries for one name, as fast as a server answers them with a few in
//! flight, the load of a busy service's lookups: queries per second and p50/p99 latency. Run
//! inside a container's namespace against its embedded DNS (127.0.0.11).

use std::{
    collections::HashMap,
    net::{SocketAddr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use clap::Args;
use serde::{Deserialize, Serialize};

/// How long a query may go unanswered before it counts as lost and is sent again.
const LOST_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct DnsqArgs {
    #[arg(long, default_value = "127.0.0.11:53")]
    pub server: SocketAddr,
    /// The name asked for (A records).
    #[arg(long)]
    pub name: String,
    /// Queries in flight at once.
    #[arg(long, default_value_t = 8)]
    pub in_flight: u16,
    /// Seconds to run for.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DnsqReport {
    pub answered: u64,
    pub lost: u64,
    /// Answers per second.
    pub qps: f64,
    /// Latency percentiles, in microseconds.
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn main(args: &DnsqArgs) -> anyhow::Result<()> {
    crate::print_report(&run(args)?)
}

/// An A query for `name` with `id`, recursion desired.
fn query(id: u16, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut message = Vec::with_capacity(32 + name.len());
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        ensure!(
            (1..64).contains(&label.len()),
            "{name:?} is not a domain name"
        );
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.extend_from_slice(&[0, 0, 1, 0, 1]);
    Ok(message)
}

pub fn run(args: &DnsqArgs) -> anyhow::Result<DnsqReport> {
    let socket = UdpSocket::bind("0.0.0.0:0").context("binding a UDP socket")?;
    socket.connect(args.server)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut next_id: u16 = 0;
    let mut latencies = Vec::new();
    let mut lost = 0;
    let mut answer = [0u8; 1500];
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    while Instant::now() < end {
        let now = Instant::now();
        let before = sent.len();
        sent.retain(|_, at| now.duration_since(*at) < LOST_AFTER);
        lost += (before - sent.len()) as u64;
        while sent.len() < usize::from(args.in_flight) {
            next_id = next_id.wrapping_add(1);
            socket.send(&query(next_id, &args.name)?)?;
            sent.insert(next_id, Instant::now());
        }
        let len = match socket.recv(&mut answer) {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e).context("reading an answer"),
        };
        if len < 12 {
            continue;
        }
        let id = u16::from_be_bytes([answer[0], answer[1]]);
        let Some(at) = sent.remove(&id) else {
            continue;
        };
        let (code, answers) = (answer[3] & 0x0f, u16::from_be_bytes([answer[6], answer[7]]));
        if code != 0 || answers == 0 {
            bail!("{} was not resolved (response code {code})", args.name);
        }
        latencies.push(at.elapsed());
    }
    ensure!(!latencies.is_empty(), "no query was answered");
    latencies.sort();
    let percentile = |p: f64| {
        let index = ((latencies.len() - 1) as f64 * p).round() as usize;
        latencies[index].as_secs_f64() * 1e6
    };
    Ok(DnsqReport {
        answered: latencies.len() as u64,
        lost,
        qps: latencies.len() as f64 / args.duration,
        p50_us: percentile(0.5),
        p99_us: percentile(0.99),
    })
}
