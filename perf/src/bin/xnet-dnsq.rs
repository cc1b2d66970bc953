//! DNS query load; see `xnet_perf::dnsq`.
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "DNS queries for one name: answers per second and p50/p99 latency"
)]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::dnsq::DnsqArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::dnsq::main(&Cli::parse().args)
}
