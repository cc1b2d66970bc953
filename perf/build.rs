//! Compiles the benchmark tools' kernel programs (crate `xnet-perf-ebpf`) for
//! `bpfel-unknown-none` with aya-build and leaves the object in OUT_DIR, where `ebpf::OBJECT`
//! embeds it. Same recipe as userspace/build.rs.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // The eBPF target needs `-Z build-std=core`; RUSTC_BOOTSTRAP=1 lets the stable toolchain
    // accept it.
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let ebpf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [Package {
            name: "xnet-perf-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom("stable"),
    )
    .context("building the perf eBPF programs")
}
