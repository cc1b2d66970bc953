//! Bare one-hop forwarder between two veths; see `xnet_perf::hop`.
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Forward every frame from one veth to another (ceiling/reference)"
)]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::hop::HopArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::hop::main(&Cli::parse().args)
}
