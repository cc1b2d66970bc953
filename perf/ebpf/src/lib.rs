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

// The VXLAN mechanisms compared by `vxlan-mech-*` (issue #13). B: the kernel's flow-based
// vxlan device does the encapsulation; C: the programs write the outer headers themselves.
/// B, tcx ingress of a container's host-side veth: `bpf_skb_set_tunnel_key`, then
/// `bpf_redirect` to the collect_md vxlan device.
pub const PROG_KEY_ENCAP: &str = "vxlan_key_encap";
/// B, tcx ingress of the collect_md vxlan device: `bpf_skb_get_tunnel_key`, then
/// `bpf_redirect_peer` into the container.
pub const PROG_KEY_DELIVER: &str = "vxlan_key_deliver";
/// C, tcx ingress of a container's host-side veth: `bpf_skb_adjust_room(+50)` with the ENCAP
/// flags, outer headers, `bpf_redirect` out of the underlay.
pub const PROG_ROOM_ENCAP: &str = "vxlan_room_encap";
/// C, tcx ingress of the underlay: `bpf_skb_adjust_room(-50)`, `bpf_redirect_peer`.
pub const PROG_ROOM_DECAP: &str = "vxlan_room_decap";
/// C with XDP decapsulation, XDP of the underlay: `bpf_xdp_adjust_head(+50)`, the VNI in the
/// frame's metadata, `XDP_PASS`.
pub const PROG_XDP_DECAP: &str = "vxlan_xdp_decap";
/// C with XDP decapsulation, tcx ingress of the underlay: frames the XDP program decapsulated
/// (VNI in the metadata) go to `bpf_redirect_peer`.
pub const PROG_META_DELIVER: &str = "vxlan_meta_deliver";

/// `FLOWS`: flow number (`u32`) -> [`FlowHeaders`].
pub const MAP_FLOWS: &str = "FLOWS";
/// `SINK`: index 0 -> per-CPU [`SinkCounters`].
pub const MAP_SINK: &str = "SINK";
/// `OVERLAY_REMOTES`: [`OverlayKey`] of a container on another host -> [`OverlayRemote`], the
/// VTEP behind it (what a static FDB entry of a vxlan device says, plus the next hop).
pub const MAP_OVERLAY_REMOTES: &str = "OVERLAY_REMOTES";
/// `OVERLAY_LOCALS`: [`OverlayKey`] of a container on this host -> the ifindex (`u32`) of its
/// host-side veth, for `bpf_redirect_peer`.
pub const MAP_OVERLAY_LOCALS: &str = "OVERLAY_LOCALS";

/// Global (`u32`): how many entries of `FLOWS` the generator cycles through.
pub const GLOBAL_FLOWS: &str = "FLOW_COUNT";
/// Global (`u32`): the ifindex the hops redirect to.
pub const GLOBAL_TARGET: &str = "TARGET_IFINDEX";
/// Global (`u32`): the overlay network's VXLAN network identifier.
pub const GLOBAL_VNI: &str = "OVERLAY_VNI";
/// Global (`u32`): this host's underlay IPv4 address, the four bytes in network order read
/// as a native `u32` (`u32::from_ne_bytes(addr.octets())`), so programs compare it with the
/// packet's bytes as they are.
pub const GLOBAL_LOCAL_IP: &str = "OVERLAY_LOCAL_IP";
/// Global (`u32`): the collect_md vxlan device's ifindex (mechanism B).
pub const GLOBAL_TUNNEL: &str = "OVERLAY_TUNNEL_IFINDEX";

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

/// UDP port of VXLAN (IANA, RFC 7348), what Docker's overlay uses by default.
pub const VXLAN_PORT: u16 = 4789;
/// What VXLAN over IPv4 adds in front of the inner Ethernet frame: outer Ethernet (14), IPv4
/// without options (20), UDP (8), VXLAN (8).
pub const VXLAN_OUTER_LEN: usize = 14 + 20 + 8 + 8;
/// Bytes `bpf_skb_adjust_room(.., BPF_ADJ_ROOM_MAC, ..)` inserts after (or removes behind) the
/// frame's Ethernet header: outer IPv4, UDP and VXLAN, and the inner Ethernet header. The
/// Ethernet header in front stays and becomes the outer one.
pub const VXLAN_ROOM: i32 = 20 + 8 + 8 + 14;

/// A container on an overlay network: its network's VNI and its MAC (VXLAN is layer 2, so
/// frames are delivered by destination MAC, as the bridge and the vxlan device's FDB do).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlayKey {
    pub vni: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Where frames for a container on another host go: the remote VTEP, and for the programs
/// that write the outer headers themselves (C) what the kernel's route and neighbour lookups
/// would give - this host's address, the underlay device and the MACs of the hop. Addresses
/// are in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlayRemote {
    /// The remote host's underlay address (the VTEP).
    pub host_ip: [u8; 4],
    /// This host's underlay address (the outer source).
    pub local_ip: [u8; 4],
    /// Outer source MAC: the underlay device's own.
    pub outer_src_mac: [u8; 6],
    /// Outer destination MAC: the next hop's (here the remote host's underlay device).
    pub outer_dst_mac: [u8; 6],
    /// The underlay device, where C sends the encapsulated frame.
    pub underlay_ifindex: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are repr(C), made only of integers and byte arrays, with no implicit
    // padding (checked below), so any bit pattern is a valid value.
    unsafe impl aya::Pod for super::FlowHeaders {}
    unsafe impl aya::Pod for super::SinkCounters {}
    unsafe impl aya::Pod for super::OverlayKey {}
    unsafe impl aya::Pod for super::OverlayRemote {}
}

const _: () = assert!(core::mem::size_of::<FlowHeaders>() == 48);
const _: () = assert!(core::mem::size_of::<SinkCounters>() == 40);
const _: () = assert!(core::mem::size_of::<OverlayKey>() == 12);
const _: () = assert!(core::mem::size_of::<OverlayRemote>() == 24);
