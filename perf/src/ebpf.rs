//! The benchmark tools' kernel programs (crate `xnet-perf-ebpf`), embedded, and what every tool
//! does with them: load with globals set, attach to a device of the current namespace.

use std::{ffi::CString, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use clap::ValueEnum;

/// The object aya-build compiled (see build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xnet-perf"));

/// Which hook of a device a program sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Hook {
    /// tcx ingress: sees skbs, including those `bpf_redirect_peer` delivers.
    Tc,
    /// Native XDP: sees frames before any skb exists.
    Xdp,
}

/// Loads the object with the given `u32` globals patched in.
pub fn load(globals: &[(&'static str, u32)]) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    for (name, value) in globals {
        loader.override_global(name, value, true);
    }
    loader
        .load(OBJECT)
        .context("loading the perf eBPF object (not root, or bpffs/BTF missing?)")
}

/// Loads program `name` and attaches it to `hook` of device `ifname`. The attachment lives as
/// long as `ebpf`.
pub fn attach(ebpf: &mut Ebpf, name: &str, hook: Hook, ifname: &str) -> anyhow::Result<()> {
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the object"))?;
    match hook {
        Hook::Tc => {
            let program: &mut SchedClassifier = program.try_into()?;
            program.load()?;
            program
                .attach(ifname, TcAttachType::Ingress)
                .with_context(|| format!("attaching {name} to tcx ingress of {ifname}"))?;
        }
        Hook::Xdp => {
            let program: &mut Xdp = program.try_into()?;
            program.load()?;
            // Native mode only: generic XDP would measure a different path.
            program
                .attach(ifname, XdpMode::Driver)
                .with_context(|| format!("attaching {name} to native XDP of {ifname}"))?;
        }
    }
    Ok(())
}

/// The ifindex of `ifname` in the current network namespace.
pub fn ifindex(ifname: &str) -> anyhow::Result<u32> {
    let name = CString::new(ifname)?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => bail!("no device {ifname} in this network namespace"),
        index => Ok(index),
    }
}

/// How long a tool waits after the driver says "stop" for frames still in flight (queued in a
/// veth's ring or a backlog) before it reads its counters.
pub const SETTLE: Duration = Duration::from_millis(100);
