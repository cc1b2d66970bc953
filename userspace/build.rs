//! Compiles the kernel programs (crate `xnet-ebpf`) for `bpfel-unknown-none` with aya-build and
//! leaves the object in OUT_DIR, where `datapath::EBPF_OBJECT` embeds it.

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    // The eBPF target needs `-Z build-std=core`. RUSTC_BOOTSTRAP=1 lets the one stable toolchain
    // this project uses accept it, instead of requiring a second (nightly) toolchain.
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let metadata = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ebpf_dir = metadata
        .parent()
        .context("userspace has no parent directory")?
        .join("ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [Package {
            name: "xnet-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Custom("stable"),
    )
}
