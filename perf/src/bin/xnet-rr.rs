//! TCP request/response tool; see `xnet_perf::rr`.
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "TCP ping-pong: transactions per second and p50/p99 latency"
)]
struct Cli {
    #[command(subcommand)]
    command: xnet_perf::rr::RrCommand,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::rr::main(&Cli::parse().command)
}
