//! Userland TCP proxy, the docker-proxy baseline; see `xnet_perf::proxy`.
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Accept TCP connections and splice each to a target (like docker-proxy)"
)]
struct Cli {
    #[command(flatten)]
    args: xnet_perf::proxy::ProxyArgs,
}

fn main() -> anyhow::Result<()> {
    xnet_perf::proxy::main(&Cli::parse().args)
}
