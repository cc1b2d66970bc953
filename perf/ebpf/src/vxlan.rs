//! VXLAN over IPv4 on the wire (RFC 7348), for the programs that write and strip the outer
//! headers themselves (mechanism C): the 64 bytes in front of the inner IP packet - outer
//! Ethernet, IPv4, UDP, VXLAN, inner Ethernet - built on the stack and stored with one
//! `bpf_skb_store_bytes`, and a received frame checked and taken apart.

use xnet_perf_ebpf::{OverlayRemote, VXLAN_OUTER_LEN, VXLAN_PORT};

use crate::overlay::ETH_LEN;

/// Outer headers plus the inner Ethernet header.
pub const HEADERS_LEN: usize = VXLAN_OUTER_LEN + ETH_LEN;

// Offsets in the frame (IPv4 without options).
const IP: usize = ETH_LEN;
const UDP: usize = IP + 20;
const VXLAN: usize = UDP + 8;
const INNER: usize = VXLAN + 8;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const IPPROTO_UDP: u8 = 17;
/// The VXLAN flags byte with the I bit: "the VNI is valid", the only flag RFC 7348 defines.
const VXLAN_FLAG_VNI: u8 = 0x08;
/// Outer TTL, the kernel's default (`IPDEFTTL`), as the vxlan device and Cilium use.
const TTL: u8 = 64;
/// DF: the outer packet is never fragmented (the containers' MTU leaves room for the 50
/// bytes, as Docker's overlay does with MTU 1450 on a 1500 underlay).
const DONT_FRAGMENT: [u8; 2] = [0x40, 0x00];

/// The headers C writes at the front of a frame of `frame_len` bytes (after
/// `bpf_skb_adjust_room` made room, so the length includes them): outer Ethernet and IPv4 to
/// `remote`, UDP from `src_port` to 4789 without checksum (RFC 7348 allows 0 over IPv4; the
/// inner packet keeps its own, or its CHECKSUM_PARTIAL), VXLAN with `vni`, then the frame's own
/// Ethernet header `inner_eth`.
#[inline(always)]
pub fn headers(
    remote: &OverlayRemote,
    inner_eth: &[u8; ETH_LEN],
    vni: u32,
    frame_len: u32,
    src_port: u16,
) -> [u8; HEADERS_LEN] {
    let mut h = [0u8; HEADERS_LEN];
    h[0..6].copy_from_slice(&remote.outer_dst_mac);
    h[6..12].copy_from_slice(&remote.outer_src_mac);
    h[12..14].copy_from_slice(&ETHERTYPE_IPV4);

    // A GSO skb can be longer than 64 KiB with its new headers: length 0 then, as the kernel
    // writes it (iph_set_totlen); segmentation writes every segment's own length and checksum.
    let ip_len = length(frame_len - ETH_LEN as u32);
    h[IP] = 0x45;
    h[IP + 2..IP + 4].copy_from_slice(&ip_len);
    h[IP + 6..IP + 8].copy_from_slice(&DONT_FRAGMENT);
    h[IP + 8] = TTL;
    h[IP + 9] = IPPROTO_UDP;
    h[IP + 12..IP + 16].copy_from_slice(&remote.local_ip);
    h[IP + 16..IP + 20].copy_from_slice(&remote.host_ip);
    let check = ipv4_checksum(&h);
    h[IP + 10..IP + 12].copy_from_slice(&check);

    h[UDP..UDP + 2].copy_from_slice(&src_port.to_be_bytes());
    h[UDP + 2..UDP + 4].copy_from_slice(&VXLAN_PORT.to_be_bytes());
    let udp_len = length(frame_len - UDP as u32);
    h[UDP + 4..UDP + 6].copy_from_slice(&udp_len);

    h[VXLAN] = VXLAN_FLAG_VNI;
    let vni = vni.to_be_bytes();
    h[VXLAN + 4..VXLAN + 7].copy_from_slice(&vni[1..4]);

    h[INNER..HEADERS_LEN].copy_from_slice(inner_eth);
    h
}

#[inline(always)]
fn length(len: u32) -> [u8; 2] {
    if len > u32::from(u16::MAX) {
        [0; 2]
    } else {
        (len as u16).to_be_bytes()
    }
}

/// The IPv4 header checksum of the header at `IP` in `h` (checksum field still 0).
#[inline(always)]
fn ipv4_checksum(h: &[u8; HEADERS_LEN]) -> [u8; 2] {
    let mut sum = 0u32;
    let mut i = IP;
    while i < UDP {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}

/// What decapsulation needs of a VXLAN frame sent to this host.
pub struct Received {
    pub vni: u32,
    pub inner_eth: [u8; ETH_LEN],
}

/// Takes apart the frame at `data..data_end` if it is VXLAN for this host: IPv4 without
/// options or fragmentation to `local_ip`, UDP to 4789, the VNI flag set, an inner Ethernet
/// header. Anything else is not ours (`None`) and goes on to the host's stack.
#[inline(always)]
pub fn received(data: usize, data_end: usize, local_ip: u32) -> Option<Received> {
    if data + HEADERS_LEN > data_end {
        return None;
    }
    // SAFETY: the check above keeps all HEADERS_LEN bytes inside the packet.
    let h = unsafe { &*(data as *const [u8; HEADERS_LEN]) };
    let fragmented = u16::from_be_bytes([h[IP + 6], h[IP + 7]]) & 0x3fff != 0;
    if h[12..14] != ETHERTYPE_IPV4
        || h[IP] != 0x45
        || h[IP + 9] != IPPROTO_UDP
        || fragmented
        || u32::from_ne_bytes([h[IP + 16], h[IP + 17], h[IP + 18], h[IP + 19]]) != local_ip
        || u16::from_be_bytes([h[UDP + 2], h[UDP + 3]]) != VXLAN_PORT
        || h[VXLAN] & VXLAN_FLAG_VNI == 0
    {
        return None;
    }
    let mut inner_eth = [0u8; ETH_LEN];
    inner_eth.copy_from_slice(&h[INNER..HEADERS_LEN]);
    Some(Received {
        vni: u32::from_be_bytes([0, h[VXLAN + 4], h[VXLAN + 5], h[VXLAN + 6]]),
        inner_eth,
    })
}

/// The outer UDP source port for a flow: from the skb's flow hash, so the underlay's ECMP and
/// the receiver's RSS/RPS spread flows and keep each one on one path (as the vxlan device does
/// with `udp_flow_src_port`); in the dynamic port range.
#[inline(always)]
pub fn src_port(flow_hash: u32) -> u16 {
    0xc000 | (flow_hash & 0x3fff) as u16
}
