//! What the overlay programs (`vxlan-mech-*`) share: the network's VNI, this host's underlay
//! address and the collect_md device (globals the loader patches in), the two tables (containers
//! on other hosts, containers on this one) and a frame's destination MAC. Frames are delivered
//! by destination MAC, as the bridge and the vxlan device's FDB deliver them: VXLAN carries
//! layer 2.

use aya_ebpf::{macros::map, maps::HashMap, programs::TcContext};
use xnet_perf_ebpf::{OverlayKey, OverlayRemote};

/// Ethernet header length, the same for the outer and the inner frame.
pub const ETH_LEN: usize = 14;

/// The overlay network's VXLAN network identifier.
#[unsafe(no_mangle)]
static OVERLAY_VNI: u32 = 0;

/// This host's underlay IPv4 address, network-order bytes read as a native `u32`.
#[unsafe(no_mangle)]
static OVERLAY_LOCAL_IP: u32 = 0;

/// The collect_md vxlan device (mechanism B only).
#[unsafe(no_mangle)]
static OVERLAY_TUNNEL_IFINDEX: u32 = 0;

/// Containers on other hosts, and how to reach their VTEP.
#[map]
static OVERLAY_REMOTES: HashMap<OverlayKey, OverlayRemote> = HashMap::with_max_entries(1024, 0);

/// Containers on this host: the ifindex of their host-side veth.
#[map]
static OVERLAY_LOCALS: HashMap<OverlayKey, u32> = HashMap::with_max_entries(1024, 0);

#[inline(always)]
fn global(value: &u32) -> u32 {
    // SAFETY: a read of a constant the loader patched; volatile so it is not folded to 0.
    unsafe { core::ptr::read_volatile(value) }
}

#[inline(always)]
pub fn vni() -> u32 {
    global(&OVERLAY_VNI)
}

#[inline(always)]
pub fn local_ip() -> u32 {
    global(&OVERLAY_LOCAL_IP)
}

#[inline(always)]
pub fn tunnel_ifindex() -> u32 {
    global(&OVERLAY_TUNNEL_IFINDEX)
}

#[inline(always)]
fn key(vni: u32, mac: [u8; 6]) -> OverlayKey {
    OverlayKey {
        vni,
        mac,
        _pad: [0; 2],
    }
}

/// The container on another host that owns `mac` on network `vni`, copied out of the map
/// (the copy stays valid after the packet changes shape).
#[inline(always)]
pub fn remote(vni: u32, mac: [u8; 6]) -> Option<OverlayRemote> {
    // SAFETY: the value is copied out at once; entries are only written from user space.
    unsafe { OVERLAY_REMOTES.get(key(vni, mac)).copied() }
}

/// The host-side veth of the container on this host that owns `mac` on network `vni`.
#[inline(always)]
pub fn local(vni: u32, mac: [u8; 6]) -> Option<u32> {
    // SAFETY: as in `remote`.
    unsafe { OVERLAY_LOCALS.get(key(vni, mac)).copied() }
}

/// The destination MAC of the frame, if its Ethernet header is in the linear data.
#[inline(always)]
pub fn dst_mac(ctx: &TcContext) -> Option<[u8; 6]> {
    let data = ctx.data();
    if data + ETH_LEN > ctx.data_end() {
        return None;
    }
    // SAFETY: the check above keeps the six bytes inside the packet.
    Some(unsafe { *(data as *const [u8; 6]) })
}
