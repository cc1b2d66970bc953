//! `xnet-hop`: a bare forwarder between two host-side veths, run in the host's namespace: the
//! ceiling (tcx ingress + `bpf_redirect_peer`, xnet's own mechanism without its lookups) or the
//! reference (`XDP_REDIRECT`). It attaches, prints `ready`, and detaches when its stdin closes.

use clap::Args;
use xnet_perf_ebpf::{GLOBAL_TARGET, PROG_HOP_PEER, PROG_HOP_XDP};

use crate::ebpf::{self, Hook};

#[derive(Debug, Args)]
pub struct HopArgs {
    /// The sending container's host-side veth.
    #[arg(long)]
    pub from: String,
    /// The receiving container's host-side veth.
    #[arg(long)]
    pub to: String,
    /// tc: redirect into the peer of `to` (bpf_redirect_peer); xdp: XDP_REDIRECT out of `to`.
    #[arg(long, value_enum)]
    pub hook: Hook,
}

pub fn main(args: &HopArgs) -> anyhow::Result<()> {
    let mut ebpf = ebpf::load(&[(GLOBAL_TARGET, ebpf::ifindex(&args.to)?)])?;
    let program = match args.hook {
        Hook::Tc => PROG_HOP_PEER,
        Hook::Xdp => PROG_HOP_XDP,
    };
    ebpf::attach(&mut ebpf, program, args.hook, &args.from)?;
    crate::announce_ready_and_hold()
}
