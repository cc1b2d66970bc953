//! XDP live-frame UDP traffic generator; see `xnet_perf::generator`.
use clap::Parser;

#[derive(Parser)]
#[command(version, about = "Send UDP frames into a veth with XDP live frames")]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::generator::GenArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::generator::main(&Cli::parse().args)
}
