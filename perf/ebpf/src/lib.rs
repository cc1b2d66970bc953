//! The contract between the benchmark tools' kernel programs (`main.rs`, built for
//! `bpfel-unknown-none`) and their user-space side (crate `xnet-perf`): program, map and global
//! names, and the `#[repr(C)]` values the maps hold. Both sides compile this file.
#![no_std]

/// XDP program the generator runs with `BPF_F_TEST_XDP_LIVE_FRAMES`.
pub const PROG_GENERATOR: &str = "generator";
/// TC (tcx ingress) sink: counts and drops UDP, passes everything else.
pub const PROG_SINK_TC: &str = "sink_tc";
/// XDP sink: counts and drops UDP, passes everything else.
pub const PROG_SINK_XDP: &str = "sink_xdp";
/// tcx ingress hop: `bpf_redirect_peer` to a fixed ifindex, no lookups (the ceiling).
pub const PROG_HOP_PEER: &str = "hop_peer";
/// XDP hop: `XDP_REDIRECT` to a fixed ifindex (the reference).
pub const PROG_HOP_XDP: &str = "hop_xdp";

/// `FLOWS`: flow number (`u32`) -> [`FlowHeaders`].
pub const MAP_FLOWS: &str = "FLOWS";
/// `SINK`: index 0 -> per-CPU [`SinkCounters`].
pub const MAP_SINK: &str = "SINK";

/// Global (`u32`): how many entries of `FLOWS` the generator cycles through.
pub const GLOBAL_FLOWS: &str = "FLOW_COUNT";
/// Global (`u32`): the ifindex the hops redirect to.
pub const GLOBAL_TARGET: &str = "TARGET_IFINDEX";

/// Capacity of `FLOWS`.
pub const MAX_FLOWS: u32 = 1024;
/// Ethernet + IPv4 (no options) + UDP: the part of a frame the generator rewrites.
pub const HEADERS_LEN: usize = 14 + 20 + 8;

/// The headers of one flow, checksums included, exactly as they go on the wire. Aligned to 8
/// so the generator can copy them as whole words (a byte-wise copy costs it a third of its
/// speed).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHeaders {
    pub bytes: [u8; HEADERS_LEN],
    pub _pad: [u8; 6],
}

/// What a sink saw on one CPU. Reading the clock for every frame would cost the receiver a
/// tenth of its time, so only the first frame and every [`SINK_STAMP_EVERY`]th are stamped:
/// the rate is `packets_at_last - 1` frames over `last_ns - first_ns`. Timestamps are
/// `bpf_ktime_get_ns`; 0 means "nothing yet".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkCounters {
    pub packets: u64,
    pub bytes: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// `packets` when `last_ns` was taken.
    pub packets_at_last: u64,
}

/// A sink reads the clock on every this many frames (a power of two).
pub const SINK_STAMP_EVERY: u64 = 256;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), made only of integers and byte arrays, with no implicit
    // padding (checked below), so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::FlowHeaders {}
    unsafe impl aya::Pod for super::SinkCounters {}
}

const _: () = assert!(core::mem::size_of::<FlowHeaders>() == 48);
const _: () = assert!(core::mem::size_of::<SinkCounters>() == 40);
