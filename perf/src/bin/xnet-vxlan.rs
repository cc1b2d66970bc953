//! One VXLAN mechanism's kernel programs for one simulated host; see `xnet_perf::vxlan`.
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Attach one VXLAN mechanism's programs (set_tunnel_key or adjust_room) in this host"
)]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::vxlan::VxlanArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::vxlan::main(&Cli::parse().args)
}
