//! Overlay networks at the packet level: VXLAN encapsulation of frames for endpoints on other
//! hosts (IPv4 and IPv6, outer headers as RFC 7348 has them), ARP and ND answered for them
//! locally, and decapsulation at the uplink with every check it makes (VTEP, VNI, inner source
//! and destination, isolation between networks, malformed VXLAN). Then the daemon's side of
//! the overlay maps (`xnet::datapath::Datapath`), on a datapath loaded as xnetd loads it.

use std::{
    collections::BTreeSet,
    ffi::CString,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::PathBuf,
    process::Command,
    slice,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap, MapData, MapInfo};
use xnet::datapath::{FloodSet, RemoteEndpoint};
use xnet_common::{
    DropReason, ENDPOINT_ICC_OFF, FloodVteps, MAP_ENCRYPTED_VNIS, MAP_ENCRYPTION_PEERS,
    MAP_FLOOD_VTEPS, MAP_MEMBER_COUNT, MAP_MEMBERS, MAP_NEIGHBORS, MAP_NEIGHBORS6, MAP_TUNNEL,
    MAP_VNIS, MAP_VTEPS, MAX_FLOOD_VTEPS, MAX_NEIGHBORS, MemberKey, Neighbor, Neighbor6Key,
    NeighborKey, PROG_DECRYPTED_INGRESS, PROG_DECRYPTED_XDP, PROG_UPLINK_INGRESS, Tunnel, Vtep,
    link_local_of,
};
use xnet_dockerlab::skip;

use super::{
    Datapath, LOOPBACK, ME_IP, ME_MAC, ME_SLOT, NET, OTHER_NET, PEER_IP, PEER_MAC, STRANGER_IP,
    TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT, XDP_DROP, XDP_PASS, arp_request, csum, eth,
    ipv6::{
        ALL_NODES, ME_IP6, ME_LL, MLD_ROUTERS, UNSPECIFIED, advertisement, assert_advertisement,
        datapath6, fd, icmp6, ipv6_frame, multicast_mac, ns_from_me, solicitation, udp6_from_me,
    },
    me, udp, udp_from_me,
};

/// This host's underlay address, and two other hosts of the cluster.
const LOCAL_VTEP: [u8; 4] = [192, 168, 100, 1];
const VTEP_B: [u8; 4] = [192, 168, 100, 2];
const VTEP_C: [u8; 4] = [192, 168, 100, 3];
const NOT_A_VTEP: [u8; 4] = [192, 168, 100, 9];
const UNDERLAY_IFINDEX: u32 = 7;
/// The encryption worker's device.
const WORKER_IFINDEX: u32 = 8;
const VXLAN_PORT: u16 = 4789;
const VNI: u32 = 0x01_2345;
const OTHER_VNI: u32 = 4097;

/// An endpoint of network `NET` on host B (IPv4, IPv6 and its link-local address).
const REMOTE_IP: [u8; 4] = [10, 0, 0, 5];
const REMOTE_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 5];
const REMOTE_IP6: [u8; 16] = fd(5);
const REMOTE_LL: [u8; 16] = link_local_of(REMOTE_MAC);
/// An endpoint of network `NET` on host C.
const REMOTE_C_IP: [u8; 4] = [10, 0, 0, 6];
const REMOTE_C_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 6];
const REMOTE_C_IP6: [u8; 16] = fd(6);
/// An endpoint of network `OTHER_NET` on host B.
const REMOTE_OTHER_IP: [u8; 4] = [10, 0, 0, 7];
const REMOTE_OTHER_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 7];

const UDP: u8 = 17;
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

fn remote_neighbor(vtep: [u8; 4], mac: [u8; 6], vni: u32) -> Neighbor {
    Neighbor {
        ifindex: 0,
        mac,
        _pad: [0; 2],
        slot: 0,
        vtep,
        vni,
    }
}

impl Datapath {
    /// Makes this datapath a member of a cluster: its tunnel, hosts B and C as VTEPs, `NET`
    /// and `OTHER_NET` as overlay networks, and the remote endpoints above.
    fn join_cluster(&mut self) {
        self.set_tunnel(UNDERLAY_IFINDEX);
        let mut vteps: HashMap<&mut MapData, [u8; 4], Vtep> =
            HashMap::try_from(self.ebpf.map_mut(MAP_VTEPS).unwrap()).unwrap();
        for vtep in [VTEP_B, VTEP_C] {
            vteps.insert(vtep, Vtep { live: 1 }, 0).unwrap();
        }
        let mut vnis: HashMap<&mut MapData, u32, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_VNIS).unwrap()).unwrap();
        vnis.insert(VNI, NET, 0).unwrap();
        vnis.insert(OTHER_VNI, OTHER_NET, 0).unwrap();
        let mut neighbors: HashMap<&mut MapData, NeighborKey, Neighbor> =
            HashMap::try_from(self.ebpf.map_mut(MAP_NEIGHBORS).unwrap()).unwrap();
        let key = |network_id, ipv4| NeighborKey { network_id, ipv4 };
        for (key, value) in [
            (
                key(NET, REMOTE_IP),
                remote_neighbor(VTEP_B, REMOTE_MAC, VNI),
            ),
            (
                key(NET, REMOTE_C_IP),
                remote_neighbor(VTEP_C, REMOTE_C_MAC, VNI),
            ),
            (
                key(OTHER_NET, REMOTE_OTHER_IP),
                remote_neighbor(VTEP_B, REMOTE_OTHER_MAC, OTHER_VNI),
            ),
        ] {
            neighbors.insert(key, value, 0).unwrap();
        }
    }

    /// The IPv6 entries of the remote endpoints of `NET` (for a datapath whose endpoint under
    /// test has IPv6).
    fn add_remote6(&mut self) {
        let mut neighbors: HashMap<&mut MapData, Neighbor6Key, Neighbor> =
            HashMap::try_from(self.ebpf.map_mut(MAP_NEIGHBORS6).unwrap()).unwrap();
        let key = |ipv6| Neighbor6Key {
            network_id: NET,
            ipv6,
        };
        let b = remote_neighbor(VTEP_B, REMOTE_MAC, VNI);
        let c = remote_neighbor(VTEP_C, REMOTE_C_MAC, VNI);
        for (key, value) in [
            (key(REMOTE_IP6), b),
            (key(REMOTE_LL), b),
            (key(REMOTE_C_IP6), c),
            (key(link_local_of(REMOTE_C_MAC)), c),
        ] {
            neighbors.insert(key, value, 0).unwrap();
        }
    }

    /// Makes `vni` an encrypted network's, as the daemon does for `--opt encrypted`.
    fn encrypt(&mut self, vni: u32) {
        let mut encrypted: HashMap<&mut MapData, u32, u8> =
            HashMap::try_from(self.ebpf.map_mut(MAP_ENCRYPTED_VNIS).unwrap()).unwrap();
        encrypted.insert(vni, 1, 0).unwrap();
    }

    /// Lets the datapath hand the encryption worker packets for the host at `vtep`, as xnetd
    /// does once its worker has that host's key.
    fn seal_for(&mut self, vtep: [u8; 4]) {
        let mut peers: HashMap<&mut MapData, [u8; 4], u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_ENCRYPTION_PEERS).unwrap()).unwrap();
        peers.insert(vtep, WORKER_IFINDEX, 0).unwrap();
    }

    /// The tunnel on underlay device `ifindex`; 0: no tunnel.
    fn set_tunnel(&mut self, ifindex: u32) {
        let mut tunnel: Array<&mut MapData, Tunnel> =
            Array::try_from(self.ebpf.map_mut(MAP_TUNNEL).unwrap()).unwrap();
        let value = Tunnel {
            ifindex,
            local: LOCAL_VTEP,
            port: VXLAN_PORT.to_be_bytes(),
            _pad: [0; 2],
        };
        tunnel.set(0, value, 0).unwrap();
    }

    fn uplink_ingress(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(PROG_UPLINK_INGRESS, frame)
    }

    /// Runs the uplink's `hook` on a frame from the underlay.
    fn decap(&mut self, hook: Hook, frame: &[u8]) -> Decap {
        match hook {
            Hook::Xdp => match self.run_xdp(frame) {
                (XDP_DROP, _) => Decap::Dropped,
                (XDP_PASS, out) if out == frame => Decap::Passed,
                (XDP_PASS, out) => {
                    // The test run hands back the metadata too: the note, then the frame.
                    let (note, inner) = out.split_at(NOTE_LEN);
                    assert_eq!(&note[..4], NOTE_MAGIC, "the note for uplink_ingress");
                    Decap::Delivered(inner.to_vec())
                }
                (verdict, _) => panic!("XDP verdict {verdict}"),
            },
            Hook::Tcx => match self.uplink_ingress(frame) {
                (TC_ACT_SHOT, _) => Decap::Dropped,
                (TC_ACT_OK, out) if out == frame => Decap::Passed,
                (TC_ACT_REDIRECT, out) => Decap::Delivered(out),
                (verdict, _) => panic!("tc verdict {verdict}"),
            },
        }
    }

    /// Asserts both of the uplink's hooks drop the frame and count it under `reason`.
    fn assert_decap_dropped(&mut self, frame: &[u8], reason: DropReason) {
        for hook in HOOKS {
            let before = self.drops(reason);
            assert_eq!(
                self.decap(hook, frame),
                Decap::Dropped,
                "{hook:?}, {reason:?}: frame not dropped"
            );
            assert_eq!(
                self.drops(reason),
                before + 1,
                "{hook:?}, {reason:?}: not counted"
            );
        }
    }
}

/// The uplink's two hooks that take VXLAN: XDP first (unicast, decapsulated there and left
/// to the kernel with a note), then tcx (frames with a note, replicas, and everything on
/// drivers without XDP metadata). Every decapsulation test runs on both.
#[derive(Clone, Copy, Debug)]
enum Hook {
    Xdp,
    Tcx,
}

const HOOKS: [Hook; 2] = [Hook::Xdp, Hook::Tcx];

/// The note `uplink_xdp` leaves in front of a frame it decapsulated: a magic, then the
/// host-side ifindex of the endpoint the frame is for.
const NOTE_LEN: usize = 8;
const NOTE_MAGIC: &[u8; 4] = b"xvx1";

/// What one of the uplink's hooks did with a frame from the underlay.
#[derive(Debug, PartialEq)]
enum Decap {
    /// Into an endpoint (from XDP through `uplink_ingress`): the frame as its container gets
    /// it.
    Delivered(Vec<u8>),
    /// Went on unchanged.
    Passed,
    Dropped,
}

fn overlay() -> Datapath {
    let mut dp = Datapath::new();
    dp.join_cluster();
    dp
}

fn overlay6() -> Datapath {
    let mut dp = datapath6();
    dp.join_cluster();
    dp.add_remote6();
    dp
}

/// An IPv4 header without options, with a valid checksum.
fn ipv4_header(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize, frags: u16) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&frags.to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let check = csum(&[&ip]);
    ip[10..12].copy_from_slice(&check.to_be_bytes());
    ip
}

/// A UDP datagram from `src` to `dst` at `dport` carrying `payload`, as it arrives on the
/// uplink.
fn udp_on_underlay(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8], frags: u16) -> Vec<u8> {
    let mut f = eth([0xaa, 0, 0, 0, 0, 7], [0xbb, 0, 0, 0, 0, 2], IPV4);
    f.extend_from_slice(&ipv4_header(src, dst, UDP, 8 + payload.len(), frags));
    f.extend_from_slice(&54321u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// `inner` encapsulated by host `vtep` to this host with `vni` and VXLAN flags `flags`.
fn vxlan(vtep: [u8; 4], vni: u32, flags: u8, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&vni.to_be_bytes()[1..]);
    payload.push(0);
    payload.extend_from_slice(inner);
    udp_on_underlay(vtep, LOCAL_VTEP, VXLAN_PORT, &payload, 0x4000)
}

/// A well-formed VXLAN frame from host B on `NET`'s VNI.
fn from_b(inner: &[u8]) -> Vec<u8> {
    vxlan(VTEP_B, VNI, 0x08, inner)
}

/// Asserts `out` is `inner` (the frame as the endpoint under test sent it) encapsulated as RFC
/// 7348 has it, to host `vtep` with `vni`, its destination MAC made `dst_mac`.
fn assert_encapsulated(out: &[u8], inner: &[u8], vtep: [u8; 4], vni: u32, dst_mac: [u8; 6]) {
    // The MACs are bpf_redirect_neigh's to fill in; a multicast destination would make it
    // drop the packet.
    assert_eq!(
        &out[..12],
        &[0; 12],
        "outer MACs left to the neighbour table"
    );
    assert_vxlan(out, inner, vtep, vni, dst_mac);
}

/// [`assert_encapsulated`] without the outer MACs.
fn assert_vxlan(out: &[u8], inner: &[u8], vtep: [u8; 4], vni: u32, dst_mac: [u8; 6]) {
    assert_eq!(out.len(), inner.len() + 50, "50 bytes of outer headers");
    assert_eq!(&out[12..14], &IPV4.to_be_bytes());
    let ip = &out[14..34];
    assert_eq!(csum(&[ip]), 0, "outer IPv4 checksum");
    assert_eq!(ip[0], 0x45, "IPv4 without options");
    assert_eq!(
        u16::from_be_bytes([ip[2], ip[3]]) as usize,
        out.len() - 14,
        "total length"
    );
    assert_eq!(&ip[6..8], &[0x40, 0], "DF, not fragmented");
    assert_eq!((ip[8], ip[9]), (64, UDP), "TTL, protocol");
    assert_eq!(&ip[12..16], &LOCAL_VTEP, "outer source");
    assert_eq!(&ip[16..20], &vtep, "outer destination");
    let udp = &out[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!(sport >= 0xc000, "source port {sport} in the dynamic range");
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), VXLAN_PORT);
    assert_eq!(
        u16::from_be_bytes([udp[4], udp[5]]) as usize,
        out.len() - 34
    );
    assert_eq!(&udp[6..8], &[0, 0], "no UDP checksum over IPv4");
    let mut header = vec![0x08, 0, 0, 0];
    header.extend_from_slice(&vni.to_be_bytes()[1..]);
    header.push(0);
    assert_eq!(&out[42..50], &header[..], "VXLAN: the I flag, the VNI");
    assert_eq!(&out[50..56], &dst_mac, "inner destination MAC");
    assert_eq!(&out[56..], &inner[6..], "inner frame otherwise intact");
}

#[test]
fn ipv4_to_a_remote_endpoint_is_encapsulated_to_its_host() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    // Addressed to the gateway's MAC, as a container with a stale entry might: the inner
    // frame still reaches the owner's MAC.
    for dst_mac in [REMOTE_MAC, super::HOST_MAC] {
        let frame = udp_from_me(dst_mac, REMOTE_IP);
        let (verdict, out) = dp.ingress(&frame);
        assert_eq!(verdict, TC_ACT_REDIRECT, "out of the underlay");
        let mut expected = frame.clone();
        expected[..6].copy_from_slice(&REMOTE_MAC);
        assert_encapsulated(&out, &expected, VTEP_B, VNI, REMOTE_MAC);
    }
    let (_, to_c) = dp.ingress(&udp_from_me(REMOTE_C_MAC, REMOTE_C_IP));
    assert_eq!(&to_c[30..34], &VTEP_C, "each endpoint's own host");
    assert_eq!(dp.counters(ME_SLOT).tx_packets, 3);
}

#[test]
fn ipv6_to_a_remote_endpoint_is_encapsulated_to_its_host() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay6();
    for dst in [REMOTE_IP6, REMOTE_LL] {
        let frame = udp6_from_me(REMOTE_MAC, dst);
        let (verdict, out) = dp.ingress(&frame);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_encapsulated(&out, &frame, VTEP_B, VNI, REMOTE_MAC);
        assert_eq!(&out[62..64], &IPV6.to_be_bytes(), "inner EtherType");
    }
}

#[test]
fn an_encrypted_networks_frames_never_cross_hosts_in_clear() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay6();
    dp.encrypt(VNI);
    // Out, with no encryption worker (no host in ENCRYPTION_PEERS): nothing leaves, IPv4 or
    // IPv6.
    dp.assert_dropped(&udp_from_me(REMOTE_MAC, REMOTE_IP), DropReason::Unencrypted);
    dp.assert_dropped(
        &udp6_from_me(REMOTE_MAC, REMOTE_IP6),
        DropReason::Unencrypted,
    );
    // In: cleartext VXLAN with its VNI, from a live host and a registered source, at both
    // hooks.
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    dp.assert_decap_dropped(&from_b(&inner), DropReason::CleartextVxlan);
    for group in group_frames_from_b() {
        dp.assert_decap_dropped(&from_b(&group), DropReason::CleartextVxlan);
    }
    // Broadcasts: no copy for either other host (this host's members would get theirs),
    // each counted.
    dp.set_flood(NET, VNI, &[VTEP_B, VTEP_C]);
    let before = dp.drops(DropReason::Unencrypted);
    let (verdict, _) = dp.ingress(&udp_from_me([0xff; 6], [10, 0, 0, 255]));
    assert_eq!(verdict, TC_ACT_SHOT, "consumed");
    assert_eq!(
        dp.drops(DropReason::Unencrypted),
        before + 2,
        "one per host"
    );
    // The worker can seal for host B: a frame for B goes to the worker's device, encapsulated
    // as for a plain network; one for C, whose key the worker lacks, still does not.
    dp.seal_for(VTEP_B);
    for frame in [
        udp_from_me(REMOTE_MAC, REMOTE_IP),
        udp6_from_me(REMOTE_MAC, REMOTE_IP6),
    ] {
        let (verdict, out) = dp.ingress(&frame);
        assert_eq!(verdict, TC_ACT_REDIRECT, "to the worker");
        assert_encapsulated(&out, &frame, VTEP_B, VNI, REMOTE_MAC);
    }
    dp.assert_dropped(
        &udp_from_me(REMOTE_C_MAC, REMOTE_C_IP),
        DropReason::Unencrypted,
    );
    // In: what the worker decrypted goes through the same checks, the encrypted VNI welcome:
    // at the device's XDP hook, decapsulated with the note for GRO and tcx, as at the
    // uplink's; at its tcx hook (replicas, drivers without metadata), into the endpoint.
    let (verdict, out) = dp.run_xdp_named(PROG_DECRYPTED_XDP, &from_b(&inner));
    assert_eq!(verdict, XDP_PASS, "decapsulated");
    let (note, frame) = out.split_at(NOTE_LEN);
    assert_eq!(&note[..4], NOTE_MAGIC, "the note for decrypted_ingress");
    assert_eq!(frame, &inner[..]);
    let (verdict, _) = dp.run_xdp_named(PROG_DECRYPTED_XDP, &inner);
    assert_eq!(verdict, XDP_DROP, "not VXLAN");
    let (verdict, out) = dp.run(PROG_DECRYPTED_INGRESS, &from_b(&inner));
    assert_eq!(verdict, TC_ACT_REDIRECT, "delivered");
    assert_eq!(out, inner);
    let spoofed = udp(ME_MAC, REMOTE_C_MAC, REMOTE_C_IP, ME_IP);
    let before = dp.drops(DropReason::SpoofedInnerSource);
    let (verdict, _) = dp.run(PROG_DECRYPTED_INGRESS, &from_b(&spoofed));
    assert_eq!(verdict, TC_ACT_SHOT, "C's endpoint, sealed by B");
    assert_eq!(dp.drops(DropReason::SpoofedInnerSource), before + 1);
    // The worker's device takes nothing but VXLAN for this host.
    let before = dp.drops(DropReason::MalformedVxlan);
    let (verdict, _) = dp.run(PROG_DECRYPTED_INGRESS, &inner);
    assert_eq!(verdict, TC_ACT_SHOT, "not VXLAN");
    assert_eq!(dp.drops(DropReason::MalformedVxlan), before + 1);
    // A network that is not encrypted is untouched.
    dp.set_flood(NET, OTHER_VNI, &[VTEP_B]);
    let mut to_other_vni = remote_neighbor(VTEP_B, REMOTE_MAC, OTHER_VNI);
    to_other_vni.slot = 0;
    let mut neighbors: HashMap<&mut MapData, NeighborKey, Neighbor> =
        HashMap::try_from(dp.ebpf.map_mut(MAP_NEIGHBORS).unwrap()).unwrap();
    let key = NeighborKey {
        network_id: NET,
        ipv4: REMOTE_IP,
    };
    neighbors.insert(key, to_other_vni, 0).unwrap();
    let (verdict, out) = dp.ingress(&udp_from_me(REMOTE_MAC, REMOTE_IP));
    assert_eq!(verdict, TC_ACT_REDIRECT, "a plain VNI still leaves");
    assert_eq!(&out[46..49], &OTHER_VNI.to_be_bytes()[1..]);
}

#[test]
fn remote_endpoints_need_a_tunnel_and_icc() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    dp.set_tunnel(0);
    dp.assert_dropped(&udp_from_me(REMOTE_MAC, REMOTE_IP), DropReason::NoTunnel);
    dp.set_tunnel(UNDERLAY_IFINDEX);
    dp.set_me(Some(me(ENDPOINT_ICC_OFF)));
    dp.assert_dropped(&udp_from_me(REMOTE_MAC, REMOTE_IP), DropReason::IccBlocked);
    dp.assert_dropped(&arp_request(REMOTE_IP), DropReason::IccBlocked);
    // A remote endpoint of another network is as unreachable as a local one.
    dp.set_me(Some(me(0)));
    dp.assert_dropped(
        &udp_from_me(REMOTE_OTHER_MAC, REMOTE_OTHER_IP),
        DropReason::OtherNetwork,
    );
}

#[test]
fn arp_and_nd_for_remote_endpoints_are_answered_locally() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay6();
    let (verdict, reply) = dp.ingress(&arp_request(REMOTE_IP));
    assert_eq!(verdict, TC_ACT_REDIRECT, "back into the asker");
    assert_eq!(&reply[..12], &[&ME_MAC[..], &REMOTE_MAC[..]].concat());
    assert_eq!(&reply[20..22], &[0, 2], "a reply");
    assert_eq!(&reply[22..32], &[&REMOTE_MAC[..], &REMOTE_IP[..]].concat());
    for target in [REMOTE_IP6, REMOTE_LL] {
        let (verdict, out) = dp.ingress(&ns_from_me(target));
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_advertisement(&out, target, REMOTE_MAC, 0x60, true);
    }
}

#[test]
fn vxlan_from_a_vtep_is_delivered_into_the_endpoint() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    // Addressed to another unicast MAC: delivered to the owner of the address, re-addressed.
    let mut stale = inner.clone();
    stale[..6].copy_from_slice(&PEER_MAC);
    for (received, hook) in (1..).zip(HOOKS) {
        for sent in [&inner, &stale] {
            assert_eq!(
                dp.decap(hook, &from_b(sent)),
                Decap::Delivered(inner.clone()),
                "{hook:?}: exactly the inner frame, to the owner's MAC"
            );
        }
        assert_eq!(dp.counters(ME_SLOT).rx_packets, 2 * received, "{hook:?}");
    }
}

/// What host B's endpoint sends to every member of `NET`: an IPv4 broadcast and an mDNS query
/// over IPv6 from its link-local address.
fn group_frames_from_b() -> [Vec<u8>; 2] {
    const MDNS6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfb];
    let broadcast = udp([0xff; 6], REMOTE_MAC, REMOTE_IP, [10, 0, 0, 255]);
    let mdns6 = ipv6_frame(
        multicast_mac(MDNS6),
        REMOTE_MAC,
        (REMOTE_LL, MDNS6),
        (UDP, 255),
        vec![0x14, 0xe9, 0x14, 0xe9, 0, 12, 0, 0, b'm', b'd', b'n', b's'],
        6,
    );
    [broadcast, mdns6]
}

#[test]
fn xdp_leaves_the_endpoint_in_a_note_and_replicas_to_uplink_ingress() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay6();
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    let (verdict, out) = dp.run_xdp(&from_b(&inner));
    assert_eq!(verdict, XDP_PASS, "on to the kernel, which runs GRO");
    let mut note = NOTE_MAGIC.to_vec();
    note.extend_from_slice(&LOOPBACK.to_ne_bytes());
    assert_eq!(
        &out[..NOTE_LEN],
        &note[..],
        "the endpoint's host-side ifindex"
    );
    assert_eq!(&out[NOTE_LEN..], &inner[..]);
    // Frames to group MACs are flooded by uplink_ingress, which checks them again.
    for group in group_frames_from_b() {
        assert_eq!(dp.decap(Hook::Xdp, &from_b(&group)), Decap::Passed);
    }
    assert_eq!(dp.counters(ME_SLOT).rx_packets, 1, "counted once, at XDP");
}

#[test]
fn vxlan_with_ipv6_inside_is_delivered_from_both_source_addresses() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay6();
    for hook in HOOKS {
        for (src, dst) in [(REMOTE_IP6, ME_IP6), (REMOTE_LL, ME_LL)] {
            let inner = ipv6_frame(ME_MAC, REMOTE_MAC, (src, dst), (UDP, 64), vec![0; 12], 6);
            assert_eq!(
                dp.decap(hook, &from_b(&inner)),
                Decap::Delivered(inner),
                "{hook:?}"
            );
        }
    }
    // Host C's endpoint (address and MAC), sent from host B.
    let spoofed = ipv6_frame(
        ME_MAC,
        REMOTE_C_MAC,
        (REMOTE_C_IP6, ME_IP6),
        (UDP, 64),
        vec![0; 12],
        6,
    );
    dp.assert_decap_dropped(&from_b(&spoofed), DropReason::SpoofedInnerSource);
}

#[test]
fn ipv6_never_reaches_an_endpoint_of_an_ipv4_only_network() {
    if skip::unless_root() {
        return;
    }
    // The endpoint under test has no IPv6, so NEIGHBORS6 has no entry for it.
    let mut dp = overlay6();
    dp.set_me(Some(me(0)));
    let mut neighbors: HashMap<&mut MapData, Neighbor6Key, Neighbor> =
        HashMap::try_from(dp.ebpf.map_mut(MAP_NEIGHBORS6).unwrap()).unwrap();
    for ipv6 in [ME_IP6, ME_LL] {
        neighbors
            .remove(&Neighbor6Key {
                network_id: NET,
                ipv6,
            })
            .unwrap();
    }
    let inner = ipv6_frame(
        ME_MAC,
        REMOTE_MAC,
        (REMOTE_IP6, ME_IP6),
        (UDP, 64),
        vec![0; 12],
        6,
    );
    dp.assert_decap_dropped(&from_b(&inner), DropReason::UnknownInnerDestination);
}

#[test]
fn vxlan_from_unknown_hosts_or_networks_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    dp.assert_decap_dropped(
        &vxlan(NOT_A_VTEP, VNI, 0x08, &inner),
        DropReason::UnknownVtep,
    );
    dp.assert_decap_dropped(&vxlan(VTEP_B, 9999, 0x08, &inner), DropReason::UnknownVni);
}

#[test]
fn vxlan_speaks_only_for_endpoints_of_the_sending_host() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    for (src_mac, src) in [
        // Host C's endpoint, sent from host B.
        (REMOTE_C_MAC, REMOTE_C_IP),
        // Host B's endpoint's address with another MAC.
        (REMOTE_C_MAC, REMOTE_IP),
        // A local endpoint's address, an unknown one, one of another network.
        (PEER_MAC, PEER_IP),
        (REMOTE_MAC, [10, 0, 0, 99]),
        (REMOTE_OTHER_MAC, REMOTE_OTHER_IP),
    ] {
        let inner = udp(ME_MAC, src_mac, src, ME_IP);
        dp.assert_decap_dropped(&from_b(&inner), DropReason::SpoofedInnerSource);
    }
}

#[test]
fn vxlan_reaches_only_local_endpoints_of_its_network() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    for (dst_mac, dst) in [
        // Nobody's, and another host's endpoint (no forwarding between hosts).
        (ME_MAC, [10, 0, 0, 99]),
        (REMOTE_C_MAC, REMOTE_C_IP),
        // Isolation: NET's VNI carrying a frame for an endpoint of OTHER_NET on this host.
        (super::STRANGER_MAC, STRANGER_IP),
    ] {
        let inner = udp(dst_mac, REMOTE_MAC, REMOTE_IP, dst);
        dp.assert_decap_dropped(&from_b(&inner), DropReason::UnknownInnerDestination);
    }
    // ARP is answered on every host, never sent across.
    let mut arp = eth([0xff; 6], REMOTE_MAC, 0x0806);
    arp.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&REMOTE_MAC);
    arp.extend_from_slice(&REMOTE_IP);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ME_IP);
    arp[..6].copy_from_slice(&ME_MAC);
    dp.assert_decap_dropped(&from_b(&arp), DropReason::UnknownInnerDestination);
}

#[test]
fn malformed_vxlan_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    // No I flag; a flag RFC 7348 does not define (as Linux's vxlan driver, strict).
    for flags in [0x00, 0x0c, 0x88] {
        dp.assert_decap_dropped(
            &vxlan(VTEP_B, VNI, flags, &inner),
            DropReason::MalformedVxlan,
        );
    }
    let mut reserved = vxlan(VTEP_B, VNI, 0x08, &inner);
    reserved[49] = 1;
    dp.assert_decap_dropped(&reserved, DropReason::MalformedVxlan);
    // Truncated: inside the VXLAN header, the inner Ethernet header, the inner IP header.
    let whole = from_b(&inner);
    for len in [46, 60, 70] {
        let mut cut = whole[..len].to_vec();
        cut[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        dp.assert_decap_dropped(&cut, DropReason::MalformedVxlan);
    }
    // The first fragment of a fragmented VXLAN packet (More Fragments set).
    let mut payload = vec![0x08, 0, 0, 0, 0x01, 0x23, 0x45, 0];
    payload.extend_from_slice(&inner);
    let fragment = udp_on_underlay(VTEP_B, LOCAL_VTEP, VXLAN_PORT, &payload, 0x2000);
    dp.assert_decap_dropped(&fragment, DropReason::MalformedVxlan);
}

#[test]
fn other_traffic_on_the_underlay_passes_untouched() {
    if skip::unless_root() {
        return;
    }
    let mut dp = overlay();
    let inner = udp(ME_MAC, REMOTE_MAC, REMOTE_IP, ME_IP);
    let mut payload = vec![0x08, 0, 0, 0, 0x01, 0x23, 0x45, 0];
    payload.extend_from_slice(&inner);
    let frames = [
        // Another port, another destination address, a later fragment (no UDP header to tell).
        udp_on_underlay(VTEP_B, LOCAL_VTEP, 4790, &payload, 0x4000),
        udp_on_underlay(VTEP_B, [192, 168, 100, 77], VXLAN_PORT, &payload, 0x4000),
        udp_on_underlay(VTEP_B, LOCAL_VTEP, VXLAN_PORT, &payload, 0x0010),
    ];
    for hook in HOOKS {
        for frame in &frames {
            assert_eq!(dp.decap(hook, frame), Decap::Passed, "{hook:?}");
        }
    }
    // Without a tunnel, VXLAN is the host's like anything else.
    dp.set_tunnel(0);
    for hook in HOOKS {
        assert_eq!(dp.decap(hook, &from_b(&inner)), Decap::Passed, "{hook:?}");
    }
}

/// Runs `test` on a thread in a network namespace of its own: unshared, so it lives as long as
/// the thread and takes every device made in it along, and BPF_PROG_TEST_RUN runs the
/// programs there (on its loopback), with its FIB and neighbour table.
fn in_own_netns(test: impl FnOnce() + Send + 'static) {
    let ran = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        test()
    })
    .join();
    if let Err(panic) = ran {
        std::panic::resume_unwind(panic);
    }
}

/// `ip ARGS` in the calling thread's namespace (a child inherits the thread's).
fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

fn ifindex(name: &str) -> u32 {
    let name = CString::new(name).unwrap();
    // SAFETY: a NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}

/// A packet socket reading every frame a device receives.
struct Capture(OwnedFd);

impl Capture {
    fn on(ifindex: u32) -> Self {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain syscalls; the descriptor is owned from here on, the address is a
        // whole sockaddr_ll.
        unsafe {
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(all),
            );
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = all;
            addr.sll_ifindex = ifindex as i32;
            let bound = libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            Self(fd)
        }
    }

    /// The frames received since the last call that `wanted` picks (devices of a new
    /// namespace send their own, IPv6 autoconfiguration's), once `count` of them arrived
    /// (within a second) and nothing more for a moment after.
    fn frames(&self, count: usize, wanted: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut quiet_until = None;
        loop {
            let mut buf = vec![0u8; 2048];
            // SAFETY: reads into a buffer of the length given.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                buf.truncate(n as usize);
                if wanted(&buf) {
                    frames.push(buf);
                }
                continue;
            }
            let now = Instant::now();
            if frames.len() >= count {
                match quiet_until {
                    None => quiet_until = Some(now + Duration::from_millis(100)),
                    Some(until) if now >= until => return frames,
                    Some(_) => {}
                }
            } else if now >= deadline {
                return frames;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Whether `frame` is VXLAN to this cluster's port.
fn is_vxlan(frame: &[u8]) -> bool {
    frame.len() >= 42
        && frame[12..14] == IPV4.to_be_bytes()
        && frame[23] == UDP
        && frame[36..38] == VXLAN_PORT.to_be_bytes()
}

/// Whether `frame` was sent by the endpoint under test (and is not VXLAN).
fn from_me(frame: &[u8]) -> bool {
    frame.len() >= 14 && frame[6..12] == ME_MAC
}

/// The MAC of this host's underlay device, and those host B's and host C's addresses resolve
/// to.
const UNDERLAY_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0xbb, 0, 0, 0, 2];
const MAC_C: [u8; 6] = [0x02, 0xcc, 0, 0, 0, 3];

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// An overlay datapath in the calling thread's own namespace, with real devices: the
/// underlay `ul0` (LOCAL_VTEP/24, the tunnel's device, host B's address resolved, host C's
/// not), whose far end `ul1` is captured, and a member of `NET` behind `m0` (besides the
/// endpoint under test), whose container end `m1` is captured.
struct Hosts {
    dp: Datapath,
    underlay: Capture,
    member: Capture,
}

impl Hosts {
    fn new(dp: Datapath) -> Self {
        let mut dp = dp;
        dp.join_cluster();
        ip("link set lo up");
        ip("link add ul0 type veth peer name ul1");
        ip(&format!("link set ul0 address {}", mac_text(UNDERLAY_MAC)));
        ip("addr add 192.168.100.1/24 dev ul0");
        ip("link add m0 type veth peer name m1");
        for device in ["ul0", "ul1", "m0", "m1"] {
            ip(&format!("link set {device} up"));
        }
        ip(&format!(
            "neigh replace 192.168.100.2 lladdr {} dev ul0 nud permanent",
            mac_text(MAC_B)
        ));
        dp.set_tunnel(ifindex("ul0"));
        dp.set_members(NET, &[LOOPBACK, ifindex("m0")]);
        dp.set_flood(NET, VNI, &[VTEP_B, VTEP_C]);
        Self {
            dp,
            underlay: Capture::on(ifindex("ul1")),
            member: Capture::on(ifindex("m1")),
        }
    }

    /// Host C's address resolved too.
    fn resolve_c(&self) {
        ip(&format!(
            "neigh replace 192.168.100.3 lladdr {} dev ul0 nud permanent",
            mac_text(MAC_C)
        ));
    }

    /// The copies sent to other hosts (`count` expected), by outer destination.
    fn replicated(&self, count: usize) -> Vec<Vec<u8>> {
        let mut copies = self.underlay.frames(count, is_vxlan);
        copies.sort_by_key(|c| c[30..34].to_vec());
        copies
    }
}

impl Datapath {
    fn set_members(&mut self, network_id: u32, members: &[u32]) {
        let mut slots: HashMap<&mut MapData, MemberKey, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_MEMBERS).unwrap()).unwrap();
        for (slot, ifindex) in (0..).zip(members) {
            slots
                .insert(MemberKey { network_id, slot }, ifindex, 0)
                .unwrap();
        }
        let mut count: HashMap<&mut MapData, u32, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_MEMBER_COUNT).unwrap()).unwrap();
        count.insert(network_id, members.len() as u32, 0).unwrap();
    }

    /// Where broadcasts of `network_id` are replicated to, as the daemon writes it.
    fn set_flood(&mut self, network_id: u32, vni: u32, vteps: &[[u8; 4]]) {
        let mut value = FloodVteps {
            vni,
            count: vteps.len() as u32,
            vteps: [[0; 4]; MAX_FLOOD_VTEPS as usize],
        };
        value.vteps[..vteps.len()].copy_from_slice(vteps);
        let mut flood: HashMap<&mut MapData, u32, FloodVteps> =
            HashMap::try_from(self.ebpf.map_mut(MAP_FLOOD_VTEPS).unwrap()).unwrap();
        flood.insert(network_id, value, 0).unwrap();
    }
}

/// Asserts `copy` is the replica of `frame` for host `vtep`, addressed on the underlay to
/// `mac` from this host's underlay device.
fn assert_replica(copy: &[u8], frame: &[u8], vtep: [u8; 4], mac: [u8; 6]) {
    assert_eq!(&copy[..6], &mac, "outer destination MAC: the host's");
    assert_eq!(
        &copy[6..12],
        &UNDERLAY_MAC,
        "outer source MAC: the underlay's"
    );
    // The inner frame is the one sent, group MAC and all.
    assert_vxlan(copy, frame, vtep, VNI, frame[..6].try_into().unwrap());
}

#[test]
fn broadcasts_on_an_overlay_reach_the_local_members_and_one_copy_goes_to_each_other_host() {
    if skip::unless_root() {
        return;
    }
    in_own_netns(|| {
        let mut hosts = Hosts::new(Datapath::new());
        let broadcast = udp_from_me([0xff; 6], [10, 0, 0, 255]);
        // Host C's neighbour entry is not resolved: its copy is the original, last, through
        // bpf_redirect_neigh (which resolves it); host B's was cloned out with its MACs.
        let (verdict, out) = hosts.dp.ingress(&broadcast);
        assert_eq!(verdict, TC_ACT_REDIRECT);
        assert_encapsulated(&out, &broadcast, VTEP_C, VNI, [0xff; 6]);
        let copies = hosts.replicated(1);
        assert_eq!(copies.len(), 1, "one clone, to host B");
        assert_replica(&copies[0], &broadcast, VTEP_B, MAC_B);
        // The local member got the frame as sent, before any encapsulation; the sender
        // did not get its own.
        assert_eq!(hosts.member.frames(1, from_me), slice::from_ref(&broadcast));

        // Both resolved: two clones, the original consumed, nothing counted as a drop.
        hosts.resolve_c();
        let multicast = udp_from_me([0x01, 0x00, 0x5e, 0, 0, 0xfb], [224, 0, 0, 251]);
        for frame in [&broadcast, &multicast] {
            assert_eq!(hosts.dp.ingress(frame).0, TC_ACT_SHOT);
            let copies = hosts.replicated(2);
            assert_eq!(copies.len(), 2, "one copy per host");
            assert_replica(&copies[0], frame, VTEP_B, MAC_B);
            assert_replica(&copies[1], frame, VTEP_C, MAC_C);
            assert_eq!(hosts.member.frames(1, from_me), slice::from_ref(frame));
        }
        assert_eq!(hosts.dp.counters(ME_SLOT).drops, 0);
        assert_eq!(hosts.dp.drops(DropReason::UnreachableVtep), 0);

        // A host with no route, and a second unresolved one in the same frame: counted per
        // copy, the others still get theirs.
        let (no_route, unresolved) = ([203, 0, 113, 9], [192, 168, 100, 4]);
        hosts.dp.set_flood(
            NET,
            VNI,
            &[VTEP_B, no_route, [192, 168, 100, 5], unresolved, VTEP_C],
        );
        let (verdict, out) = hosts.dp.ingress(&broadcast);
        assert_eq!(verdict, TC_ACT_REDIRECT, "the first unresolved host's copy");
        assert_eq!(&out[30..34], &[192, 168, 100, 5]);
        assert_eq!(hosts.replicated(2).len(), 2, "hosts B and C");
        assert_eq!(hosts.dp.drops(DropReason::UnreachableVtep), 2);
        assert_eq!(hosts.member.frames(1, from_me).len(), 1);

        // A network without other hosts (or not an overlay) keeps its broadcasts here.
        let mut flood: HashMap<&mut MapData, u32, FloodVteps> =
            HashMap::try_from(hosts.dp.ebpf.map_mut(MAP_FLOOD_VTEPS).unwrap()).unwrap();
        flood.remove(&NET).unwrap();
        assert_eq!(hosts.dp.ingress(&broadcast).0, TC_ACT_SHOT);
        assert!(hosts.replicated(0).is_empty());
        assert_eq!(hosts.member.frames(1, from_me).len(), 1);
    });
}

#[test]
fn address_resolution_and_anonymous_multicast_never_cross_hosts() {
    if skip::unless_root() {
        return;
    }
    in_own_netns(|| {
        let mut hosts = Hosts::new(datapath6());
        hosts.resolve_c();
        // ARP for an address nobody has: dropped, asked of no other host.
        hosts
            .dp
            .assert_dropped(&arp_request([10, 0, 0, 99]), DropReason::UnknownArpTarget);
        // Announcements and probes of its own addresses (gratuitous ARP, duplicate-address
        // probes from `::`, unsolicited advertisements, router solicitations), and
        // multicast from `::`: heard by the local members only.
        let report_from_nobody = icmp6(
            multicast_mac(MLD_ROUTERS),
            (UNSPECIFIED, MLD_ROUTERS),
            143,
            1,
            &[0; 4],
        );
        let local_only = [
            arp_request(ME_IP),
            solicitation(UNSPECIFIED, ME_IP6, None),
            advertisement(multicast_mac(ALL_NODES), ALL_NODES, ME_IP6, ME_MAC),
            icmp6(
                [0x33, 0x33, 0, 0, 0, 2],
                (ME_LL, [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
                133,
                255,
                &[0; 4],
            ),
            report_from_nobody,
        ];
        for frame in &local_only {
            assert_eq!(hosts.dp.ingress(frame).0, TC_ACT_SHOT);
            assert_eq!(hosts.member.frames(1, from_me), slice::from_ref(frame));
        }
        assert!(
            hosts.replicated(0).is_empty(),
            "nothing crossed the underlay"
        );
        // IPv6 multicast from the endpoint's own addresses crosses like IPv4's.
        let report = icmp6(
            multicast_mac(MLD_ROUTERS),
            (ME_LL, MLD_ROUTERS),
            143,
            1,
            &[0; 4],
        );
        assert_eq!(hosts.dp.ingress(&report).0, TC_ACT_SHOT);
        let copies = hosts.replicated(2);
        assert_eq!(copies.len(), 2);
        assert_replica(&copies[1], &report, VTEP_C, MAC_C);
    });
}

#[test]
fn replicated_vxlan_from_a_registered_endpoint_reaches_every_local_member() {
    if skip::unless_root() {
        return;
    }
    in_own_netns(|| {
        let mut hosts = Hosts::new(overlay6_datapath());
        let [broadcast, mdns6] = group_frames_from_b();
        let from_b_mac = |frame: &[u8]| frame.len() >= 14 && frame[6..12] == REMOTE_MAC;
        for inner in [&broadcast, &mdns6] {
            // Consumed here after its copies, never sent on to another host.
            assert_eq!(hosts.dp.uplink_ingress(&from_b(inner)).0, TC_ACT_SHOT);
            // Every member, the endpoint under test included (its copy went out of the
            // loopback, which nothing captures): the inner frame, exactly.
            assert_eq!(hosts.member.frames(1, from_b_mac), slice::from_ref(inner));
        }
        assert!(
            hosts.replicated(0).is_empty(),
            "no copy went on to other hosts"
        );
        for reason in DropReason::ALL {
            assert_eq!(hosts.dp.drops(reason), 0, "{reason:?}");
        }

        // The same checks as unicast: a live VTEP, a known VNI, an inner source registered on
        // that very host with that MAC.
        hosts.dp.assert_decap_dropped(
            &vxlan(NOT_A_VTEP, VNI, 0x08, &broadcast),
            DropReason::UnknownVtep,
        );
        hosts.dp.assert_decap_dropped(
            &vxlan(VTEP_B, 9999, 0x08, &broadcast),
            DropReason::UnknownVni,
        );
        for (src_mac, src) in [
            // Host C's endpoint from host B, B's address with C's MAC, a local endpoint, an
            // endpoint of another network.
            (REMOTE_C_MAC, REMOTE_C_IP),
            (REMOTE_C_MAC, REMOTE_IP),
            (PEER_MAC, PEER_IP),
            (REMOTE_OTHER_MAC, REMOTE_OTHER_IP),
        ] {
            let spoofed = udp([0xff; 6], src_mac, src, [10, 0, 0, 255]);
            hosts
                .dp
                .assert_decap_dropped(&from_b(&spoofed), DropReason::SpoofedInnerSource);
        }
        // IPv6 from `::` belongs to nobody; ARP never crosses.
        let anonymous = ipv6_frame(
            multicast_mac(ALL_NODES),
            REMOTE_MAC,
            (UNSPECIFIED, ALL_NODES),
            (UDP, 255),
            vec![0x14, 0xe9, 0x14, 0xe9, 0, 12, 0, 0, b'm', b'd', b'n', b's'],
            6,
        );
        hosts
            .dp
            .assert_decap_dropped(&from_b(&anonymous), DropReason::SpoofedInnerSource);
        let mut gratuitous = eth([0xff; 6], REMOTE_MAC, 0x0806);
        gratuitous.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        gratuitous.extend_from_slice(&REMOTE_MAC);
        gratuitous.extend_from_slice(&REMOTE_IP);
        gratuitous.extend_from_slice(&[0; 6]);
        gratuitous.extend_from_slice(&REMOTE_IP);
        hosts
            .dp
            .assert_decap_dropped(&from_b(&gratuitous), DropReason::UnknownInnerDestination);
        assert!(
            hosts.member.frames(0, from_b_mac).is_empty(),
            "nothing refused got through"
        );
    });
}

/// [`overlay6`]'s datapath before it joins the cluster (which [`Hosts::new`] does).
fn overlay6_datapath() -> Datapath {
    let mut dp = datapath6();
    dp.add_remote6();
    dp
}

/// xnetd's own `Datapath`, loaded as xnetd loads it into a private bpffs directory, removed
/// on drop.
struct Loaded {
    datapath: xnet::datapath::Datapath,
    dir: PathBuf,
}

impl Loaded {
    fn new(prepare: impl FnOnce(&std::path::Path)) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/xnet-test-overlay-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        xnet::os::bpffs::ensure_mounted(&dir).unwrap();
        std::fs::create_dir_all(dir.join("maps")).unwrap();
        prepare(&dir.join("maps"));
        let datapath = xnet::datapath::Datapath::load(&dir).unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("loading: {e:?}")
        });
        Self { datapath, dir }
    }

    /// Loads the programs again, as a restarted xnetd does, and asserts it reused every
    /// pinned map (the layout check recreates none of today's own).
    fn reload(&mut self) {
        let ids = || {
            let mut ids: Vec<_> = std::fs::read_dir(self.dir.join("maps"))
                .unwrap()
                .map(|pin| {
                    let pin = pin.unwrap().path();
                    (pin.clone(), MapInfo::from_pin(&pin).unwrap().id())
                })
                .collect();
            ids.sort();
            ids
        };
        let before = ids();
        self.datapath = xnet::datapath::Datapath::load(&self.dir).unwrap();
        assert_eq!(ids(), before, "maps recreated on reload");
    }

    /// `NEIGHBORS` as a test writes it behind the daemon's back (a local endpoint's entry).
    fn neighbors(&self) -> HashMap<MapData, NeighborKey, Neighbor> {
        let pin = self.dir.join("maps").join(MAP_NEIGHBORS);
        HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(pin).unwrap())).unwrap()
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn remote(ipv4: [u8; 4], ipv6: Option<[u8; 16]>, mac: [u8; 6], vtep: [u8; 4]) -> RemoteEndpoint {
    RemoteEndpoint {
        network_id: NET,
        vni: VNI,
        vtep: vtep.into(),
        ipv4: ipv4.into(),
        ipv6: ipv6.map(Ipv6Addr::from),
        mac,
    }
}

#[test]
fn the_daemon_keeps_tunnel_vnis_and_vteps() {
    if skip::unless_root() {
        return;
    }
    let mut loaded = Loaded::new(|_| {});
    let dp = &mut loaded.datapath;
    dp.set_tunnel(Some((UNDERLAY_IFINDEX, LOCAL_VTEP.into(), VXLAN_PORT)))
        .unwrap();
    dp.add_vni(VNI, NET, true).unwrap();
    dp.add_vni(OTHER_VNI, OTHER_NET, true).unwrap();
    assert!(dp.add_vni(1 << 24, 3, false).is_err(), "VNIs have 24 bits");
    dp.remove_vni(OTHER_VNI).unwrap();
    dp.remove_vni(OTHER_VNI).unwrap();
    assert_eq!(dp.vnis(), [(VNI, NET)]);
    assert_eq!(dp.encrypted_vnis(), [VNI], "removed with its VNI");
    dp.add_vtep(VTEP_C.into()).unwrap();
    dp.add_vtep(VTEP_B.into()).unwrap();
    dp.remove_vtep(NOT_A_VTEP.into()).unwrap();
    assert_eq!(dp.vteps(), [Ipv4Addr::from(VTEP_B), VTEP_C.into()]);
    dp.remove_vtep(VTEP_B.into()).unwrap();
    assert_eq!(dp.vteps(), [Ipv4Addr::from(VTEP_C)]);
    loaded.reload();
    assert_eq!(
        loaded.datapath.vnis(),
        [(VNI, NET)],
        "kept across a restart"
    );
    assert_eq!(loaded.datapath.encrypted_vnis(), [VNI]);
    loaded.datapath.add_vni(VNI, NET, false).unwrap();
    assert!(
        loaded.datapath.encrypted_vnis().is_empty(),
        "no longer encrypted"
    );
    assert_eq!(loaded.datapath.vteps(), [Ipv4Addr::from(VTEP_C)]);
    let tunnel: Array<MapData, Tunnel> = Array::try_from(aya::maps::Map::Array(
        MapData::from_pin(loaded.dir.join("maps").join(MAP_TUNNEL)).unwrap(),
    ))
    .unwrap();
    let value = tunnel.get(&0, 0).unwrap();
    assert_eq!(
        (value.ifindex, value.local, value.port),
        (UNDERLAY_IFINDEX, LOCAL_VTEP, [0x12, 0xb5])
    );
    loaded.datapath.set_tunnel(None).unwrap();
    assert_eq!(tunnel.get(&0, 0).unwrap(), Tunnel::default());
}

#[test]
fn remote_endpoints_never_replace_local_ones_and_survive_pruning() {
    if skip::unless_root() {
        return;
    }
    let mut loaded = Loaded::new(|_| {});
    // A local endpoint of this host owns ME_IP.
    let local = Neighbor {
        ifindex: 42,
        mac: ME_MAC,
        _pad: [0; 2],
        slot: ME_SLOT,
        vtep: [0; 4],
        vni: 0,
    };
    let me_key = NeighborKey {
        network_id: NET,
        ipv4: ME_IP,
    };
    loaded.neighbors().insert(me_key, local, 0).unwrap();

    let b = remote(REMOTE_IP, Some(REMOTE_IP6), REMOTE_MAC, VTEP_B);
    let c = remote(REMOTE_C_IP, None, REMOTE_C_MAC, VTEP_C);
    let clash = remote(ME_IP, Some(fd(8)), [0x02, 0x42, 10, 0, 0, 8], VTEP_C);
    let dp = &mut loaded.datapath;
    for r in [&b, &c, &clash] {
        dp.add_remote(r).unwrap();
    }
    // The clash's IPv4 entry was left to the local endpoint; its IPv6 entries exist.
    let mut clash_back = clash.clone();
    clash_back.ipv4 = Ipv4Addr::UNSPECIFIED;
    let mut expected = vec![b.clone(), c.clone(), clash_back.clone()];
    expected.sort();
    assert_eq!(dp.remote_endpoints(), expected);
    assert_eq!(loaded.neighbors().get(&me_key, 0).unwrap(), local);

    // A restart prunes local entries no endpoint owns; remote ones stay.
    let dp = &mut loaded.datapath;
    dp.prune_neighbors(&[]).unwrap();
    assert_eq!(dp.remote_endpoints(), expected);
    assert!(loaded.neighbors().get(&me_key, 0).is_err(), "pruned");

    // Removal takes only entries that are still this endpoint's: not those of another host
    // or MAC that took the address since.
    let dp = &mut loaded.datapath;
    let moved = remote(REMOTE_IP, Some(REMOTE_IP6), REMOTE_MAC, VTEP_C);
    dp.remove_remote(&moved).unwrap();
    dp.remove_remote(&clash_back).unwrap();
    assert_eq!(dp.remote_endpoints(), [b.clone(), c.clone()]);
    // A restart reuses the pinned maps (their layout is today's): nothing is lost.
    loaded.reload();
    let dp = &mut loaded.datapath;
    assert_eq!(dp.remote_endpoints(), [b.clone(), c.clone()]);
    dp.remove_remote(&b).unwrap();
    dp.remove_remote(&c).unwrap();
    dp.remove_remote(&c).unwrap();
    assert_eq!(dp.remote_endpoints(), []);
}

#[test]
fn neighbor_maps_pinned_preallocated_are_recreated_per_entry() {
    if skip::unless_root() {
        return;
    }
    // What an xnetd before overlays left: NEIGHBORS of today's sizes, but preallocated.
    let loaded = Loaded::new(|maps| {
        let old = aya_obj::Map::Legacy(aya_obj::maps::LegacyMap {
            def: aya_obj::maps::bpf_map_def {
                map_type: aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_HASH as u32,
                key_size: size_of::<NeighborKey>() as u32,
                value_size: size_of::<Neighbor>() as u32,
                max_entries: MAX_NEIGHBORS,
                map_flags: 0,
                ..Default::default()
            },
            inner_def: None,
            section_index: 0,
            section_kind: aya_obj::EbpfSectionKind::Maps,
            symbol_index: None,
            data: Vec::new(),
        });
        let pinned = MapData::create(old, MAP_NEIGHBORS, None).unwrap();
        pinned.pin(maps.join(MAP_NEIGHBORS)).unwrap();
    });
    for name in [MAP_NEIGHBORS, MAP_NEIGHBORS6] {
        let info = MapInfo::from_pin(loaded.dir.join("maps").join(name)).unwrap();
        assert_eq!(info.map_flags(), 1, "{name}: BPF_F_NO_PREALLOC");
    }
}

#[test]
fn the_daemon_sets_where_broadcasts_are_replicated_and_a_restart_keeps_it() {
    if skip::unless_root() {
        return;
    }
    let mut loaded = Loaded::new(|_| {});
    let dp = &mut loaded.datapath;
    let set = |vni, vteps: &[[u8; 4]]| FloodSet {
        vni,
        vteps: vteps.iter().copied().map(Ipv4Addr::from).collect(),
    };
    dp.set_flood(NET, &set(VNI, &[VTEP_C, VTEP_B])).unwrap();
    dp.set_flood(OTHER_NET, &set(OTHER_VNI, &[VTEP_B])).unwrap();
    let too_many: BTreeSet<Ipv4Addr> = (0..=MAX_FLOOD_VTEPS)
        .map(|i| Ipv4Addr::from(0x0a00_0000 + i))
        .collect();
    let refused = FloodSet {
        vni: VNI,
        vteps: too_many,
    };
    assert!(
        dp.set_flood(3, &refused).is_err(),
        "more hosts than the datapath takes"
    );
    assert!(
        dp.set_flood(3, &set(1 << 24, &[VTEP_B])).is_err(),
        "VNIs have 24 bits"
    );
    // No other host: the entry goes.
    dp.set_flood(OTHER_NET, &set(OTHER_VNI, &[])).unwrap();
    dp.remove_flood(OTHER_NET).unwrap();
    let expected = [(NET, set(VNI, &[VTEP_B, VTEP_C]))].into();
    assert_eq!(dp.flood_sets(), expected);
    // What the programs read: the VNI, the count, the addresses in order, zeros after.
    let pin = loaded.dir.join("maps").join(MAP_FLOOD_VTEPS);
    let map: HashMap<MapData, u32, FloodVteps> =
        HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(pin).unwrap())).unwrap();
    let value = map.get(&NET, 0).unwrap();
    assert_eq!((value.vni, value.count), (VNI, 2));
    assert_eq!(&value.vteps[..3], &[VTEP_B, VTEP_C, [0; 4]]);
    loaded.reload();
    assert_eq!(
        loaded.datapath.flood_sets(),
        expected,
        "kept across a restart"
    );
}
