//! Frame counter at the receiving container; see `xnet_perf::sink`.
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Count and drop the UDP frames arriving on a device")]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::sink::SinkArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::sink::main(&Cli::parse().args)
}
