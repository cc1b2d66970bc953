//! Library target of the eBPF crate. It exists only so that `userspace` can name this crate as a
//! build-dependency (cargo then rebuilds the daemon when the programs change); the programs
//! themselves are the `xnet` binary in `main.rs`, built for `bpfel-unknown-none` by aya-build.
#![no_std]
