//! Packet-level tests of the kernel programs with BPF_PROG_TEST_RUN: crafted frames in,
//! verdict and bytes out. No traffic, no interfaces: the test runner hands the program an skb
//! on the loopback device (ifindex 1), so the endpoint under test is keyed by ifindex 1.
//!
//! This file holds the harness and the IPv4 tests; `ipv6` the IPv6 ones (ND, forwarding,
//! isolation, NAT66); `publish` those of published ports; `overlay` VXLAN between hosts;
//! `lan` macvlan and ipvlan networks; `monitor` the events of `xnet monitor`.

mod ipv6;
mod lan;
mod monitor;
mod overlay;
mod publish;

use std::sync::atomic::{AtomicU32, Ordering};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, HashMap, MapData, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp},
};
use xnet::datapath::EBPF_OBJECT;
use xnet_common::{
    DropReason, ENDPOINT_ICC_OFF, ENDPOINT_INTERNAL, Endpoint, EndpointCounters, MAP_DROP_STATS,
    MAP_ENDPOINT_STATS, MAP_ENDPOINTS, MAP_NEIGHBORS, MAP_SUBNETS, MAP_UPLINK, NAT_PORT_COUNT,
    NAT_PORT_FIRST, Neighbor, NeighborKey, PROG_DECRYPTED_INGRESS, PROG_DECRYPTED_XDP,
    PROG_ENDPOINT_EGRESS, PROG_ENDPOINT_INGRESS, PROG_LAN_ENDPOINT_INGRESS, PROG_PARENT_INGRESS,
    PROG_UPLINK_INGRESS, PROG_UPLINK_XDP, Uplink,
};
use xnet_dockerlab::skip;

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;
/// XDP verdicts.
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// The device BPF_PROG_TEST_RUN runs skb programs on.
const LOOPBACK: u32 = 1;
const NET: u32 = 1;
const OTHER_NET: u32 = 2;
const ME_IP: [u8; 4] = [10, 0, 0, 2];
const ME_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 2];
const HOST_MAC: [u8; 6] = [0xaa, 0, 0, 0, 0, 1];
const GATEWAY: [u8; 4] = [10, 0, 0, 1];
const PEER_IP: [u8; 4] = [10, 0, 0, 3];
const PEER_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 3];
const PEER_IFINDEX: u32 = 42;
/// Counter slots of the endpoint under test and of its peer.
const ME_SLOT: u32 = 0;
const PEER_SLOT: u32 = 1;
/// An endpoint of another network; its address is in the same range on purpose.
const STRANGER_IP: [u8; 4] = [10, 0, 0, 4];
const STRANGER_MAC: [u8; 6] = [0x02, 0x42, 10, 0, 0, 4];

/// The programs loaded with maps pinned in a private bpffs directory (the maps are declared
/// pinned, and parallel tests must not share them), removed on drop.
struct Datapath {
    ebpf: Ebpf,
    pin_dir: std::path::PathBuf,
}

impl Datapath {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let pin_dir = std::path::PathBuf::from(format!(
            "/sys/fs/bpf/xnet-test-dp-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        xnet::os::bpffs::ensure_mounted(&pin_dir).unwrap();
        std::fs::create_dir_all(&pin_dir).unwrap();
        let loaded = (|| -> anyhow::Result<Ebpf> {
            let mut ebpf = EbpfLoader::new()
                .default_map_pin_directory(&pin_dir)
                .load(EBPF_OBJECT)?;
            for name in [
                PROG_ENDPOINT_INGRESS,
                PROG_ENDPOINT_EGRESS,
                PROG_UPLINK_INGRESS,
                PROG_DECRYPTED_INGRESS,
                PROG_LAN_ENDPOINT_INGRESS,
                PROG_PARENT_INGRESS,
            ] {
                prog(&mut ebpf, name).load()?;
            }
            xdp_prog(&mut ebpf).load()?;
            xdp_named(&mut ebpf, PROG_DECRYPTED_XDP).load()?;
            Ok(ebpf)
        })();
        // A program the verifier refuses must not leave the maps it pinned behind.
        let ebpf = loaded.unwrap_or_else(|e| {
            let _ = std::fs::remove_dir_all(&pin_dir);
            panic!("loading the programs: {e:?}")
        });
        let mut dp = Self { ebpf, pin_dir };
        dp.set_me(Some(me(0)));
        let key = |network_id, ipv4| NeighborKey { network_id, ipv4 };
        dp.add_neighbors(
            MAP_NEIGHBORS,
            [
                (key(NET, ME_IP), LOOPBACK, ME_MAC, ME_SLOT),
                (key(NET, PEER_IP), PEER_IFINDEX, PEER_MAC, PEER_SLOT),
                (key(OTHER_NET, STRANGER_IP), 43, STRANGER_MAC, 2),
            ],
        );
        // Both networks' addresses lie in 10.0.0.0/24 (on purpose: only the network id
        // separates them); the subnet registry marks it as never-outside.
        let mut subnets: LpmTrie<&mut MapData, [u8; 4], u32> =
            LpmTrie::try_from(dp.ebpf.map_mut(MAP_SUBNETS).unwrap()).unwrap();
        subnets
            .insert(&Key::new(24, [10, 0, 0, 0]), NET, 0)
            .unwrap();
        dp
    }

    fn set_me(&mut self, endpoint: Option<Endpoint>) {
        let mut endpoints: HashMap<&mut MapData, u32, Endpoint> =
            HashMap::try_from(self.ebpf.map_mut(MAP_ENDPOINTS).unwrap()).unwrap();
        match endpoint {
            Some(ep) => endpoints.insert(LOOPBACK, ep, 0).unwrap(),
            None => endpoints.remove(&LOOPBACK).unwrap(),
        }
    }

    /// Registers owners of addresses in `map` (`NEIGHBORS` or `NEIGHBORS6`), as the daemon
    /// would: (key, host-side ifindex, MAC, counter slot).
    fn add_neighbors<K: aya::Pod>(
        &mut self,
        map: &str,
        entries: impl IntoIterator<Item = (K, u32, [u8; 6], u32)>,
    ) {
        let mut neighbors: HashMap<&mut MapData, K, Neighbor> =
            HashMap::try_from(self.ebpf.map_mut(map).unwrap()).unwrap();
        for (key, ifindex, mac, slot) in entries {
            let value = Neighbor {
                ifindex,
                mac,
                _pad: [0; 2],
                slot,
                vtep: [0; 4],
                vni: 0,
            };
            neighbors.insert(key, value, 0).unwrap();
        }
    }

    fn set_uplink(&mut self, uplink: Uplink) {
        let mut map: Array<&mut MapData, Uplink> =
            Array::try_from(self.ebpf.map_mut(MAP_UPLINK).unwrap()).unwrap();
        map.set(0, uplink, 0).unwrap();
    }

    /// Runs TC `program` on `frame`; returns the verdict and the frame as the program left it.
    fn run(&mut self, program: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        run_on(prog(&mut self.ebpf, program), frame)
    }

    /// The same for the uplink's XDP program.
    fn run_xdp(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        run_on(xdp_prog(&mut self.ebpf), frame)
    }

    /// The same for XDP program `program`.
    fn run_xdp_named(&mut self, program: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        run_on(xdp_named(&mut self.ebpf, program), frame)
    }

    fn ingress(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run(PROG_ENDPOINT_INGRESS, frame)
    }

    fn drops(&self, reason: DropReason) -> u64 {
        let drops: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_DROP_STATS).unwrap()).unwrap();
        drops.get(&(reason as u32), 0).unwrap().iter().sum()
    }

    fn counters(&self, slot: u32) -> EndpointCounters {
        let stats: PerCpuArray<&MapData, EndpointCounters> =
            PerCpuArray::try_from(self.ebpf.map(MAP_ENDPOINT_STATS).unwrap()).unwrap();
        stats
            .get(&slot, 0)
            .unwrap()
            .iter()
            .fold(EndpointCounters::default(), |mut a, c| {
                a.rx_packets += c.rx_packets;
                a.tx_packets += c.tx_packets;
                a.drops += c.drops;
                a
            })
    }

    /// Asserts the frame is dropped and counted under `reason`.
    fn assert_dropped(&mut self, frame: &[u8], reason: DropReason) {
        let before = self.drops(reason);
        let (verdict, _) = self.ingress(frame);
        assert_eq!(verdict, TC_ACT_SHOT, "{reason:?}: frame not dropped");
        assert_eq!(self.drops(reason), before + 1, "{reason:?}: not counted");
    }
}

impl Drop for Datapath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

/// The endpoint under test, with `flags`.
fn me(flags: u32) -> Endpoint {
    Endpoint {
        network_id: NET,
        ipv4: ME_IP,
        gateway: GATEWAY,
        mac: ME_MAC,
        host_mac: HOST_MAC,
        flags,
        slot: ME_SLOT,
        ipv6: [0; 16],
        gateway6: [0; 16],
    }
}

fn prog<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut SchedClassifier {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

fn xdp_prog(ebpf: &mut Ebpf) -> &mut Xdp {
    xdp_named(ebpf, PROG_UPLINK_XDP)
}

fn xdp_named<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    ebpf.program_mut(name).unwrap().try_into().unwrap()
}

fn run_on<P>(program: &P, frame: &[u8]) -> (u32, Vec<u8>)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; frame.len() + 64];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    let result = program.test_run(opts).unwrap();
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

fn eth(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ether_type.to_be_bytes());
    f
}

fn arp(oper: u16, sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = eth([0xff; 6], sha, 0x0806);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    f.extend_from_slice(&oper.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f
}

fn arp_request(tpa: [u8; 4]) -> Vec<u8> {
    arp(1, ME_MAC, ME_IP, tpa)
}

/// An IPv4/UDP frame (checksums are irrelevant to the datapath's forwarding decisions; the NAT
/// tests use `udp_with_checksums`).
fn udp(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&[0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x30, 0x39, 0x00, 0x50, 0, 12, 0, 0, b'p', b'i', b'n', b'g']);
    f
}

fn udp_from_me(dst_mac: [u8; 6], dst: [u8; 4]) -> Vec<u8> {
    udp(dst_mac, ME_MAC, ME_IP, dst)
}

#[test]
fn arp_request_for_a_peer_is_answered_with_its_mac() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let (verdict, reply) = dp.ingress(&arp_request(PEER_IP));
    assert_eq!(
        verdict, TC_ACT_REDIRECT,
        "the reply goes back out of the same veth"
    );
    assert_eq!(reply, {
        let mut expected = eth(ME_MAC, PEER_MAC, 0x0806);
        expected.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 2]);
        expected.extend_from_slice(&PEER_MAC);
        expected.extend_from_slice(&PEER_IP);
        expected.extend_from_slice(&ME_MAC);
        expected.extend_from_slice(&ME_IP);
        expected
    });
}

#[test]
fn arp_request_for_the_gateway_is_answered_with_the_host_side_mac() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let (verdict, reply) = dp.ingress(&arp_request(GATEWAY));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(&reply[6..12], &HOST_MAC, "eth source");
    assert_eq!(&reply[22..28], &HOST_MAC, "sender hardware address");
    assert_eq!(&reply[28..32], &GATEWAY, "sender protocol address");
}

#[test]
fn arp_reply_to_the_host_goes_to_the_host_stack() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let (verdict, _) = dp.ingress(&arp(2, ME_MAC, ME_IP, GATEWAY));
    assert_eq!(verdict, TC_ACT_OK);
}

#[test]
fn arp_is_never_answered_for_unknown_or_foreign_addresses() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.assert_dropped(&arp_request([10, 0, 0, 99]), DropReason::UnknownArpTarget);
    // The stranger exists, but on another network: no answer, no leak of its MAC.
    dp.assert_dropped(&arp_request(STRANGER_IP), DropReason::UnknownArpTarget);
}

#[test]
fn broadcasts_go_to_the_members_and_are_never_forwarded_as_unicast() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    // Gratuitous ARP and a subnet broadcast: fanned out to the members (none are registered
    // here), the original consumed, nothing counted as a drop.
    let mut broadcast = udp_from_me([0xff; 6], [10, 0, 0, 255]);
    let mut mdns = udp_from_me([0x01, 0x00, 0x5e, 0, 0, 0xfb], [224, 0, 0, 251]);
    for frame in [&arp_request(ME_IP), &broadcast, &mdns] {
        assert_eq!(dp.ingress(frame).0, TC_ACT_SHOT);
    }
    assert_eq!(dp.counters(ME_SLOT).drops, 0);
    assert_eq!(dp.counters(ME_SLOT).tx_packets, 3);
    // A broadcast MAC does not launder a peer's unicast address into a unicast redirect.
    let sneaky = udp_from_me([0xff; 6], PEER_IP);
    assert_eq!(dp.ingress(&sneaky).0, TC_ACT_SHOT);
    // ICC off: members don't hear each other's broadcasts either; anti-spoofing still holds.
    dp.set_me(Some(me(ENDPOINT_ICC_OFF)));
    dp.assert_dropped(&broadcast, DropReason::IccBlocked);
    dp.assert_dropped(&arp_request(ME_IP), DropReason::IccBlocked);
    dp.set_me(Some(me(0)));
    broadcast[26..30].copy_from_slice(&[10, 0, 0, 77]);
    dp.assert_dropped(&broadcast, DropReason::SpoofedIp);
    mdns[6..12].copy_from_slice(&STRANGER_MAC);
    dp.assert_dropped(&mdns, DropReason::SpoofedMac);
}

#[test]
fn spoofed_and_malformed_arp_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.assert_dropped(&arp(1, PEER_MAC, ME_IP, GATEWAY), DropReason::SpoofedMac);
    // Ethernet source right, ARP sender hardware address forged.
    let mut forged = arp_request(GATEWAY);
    forged[22..28].copy_from_slice(&PEER_MAC);
    dp.assert_dropped(&forged, DropReason::SpoofedMac);
    dp.assert_dropped(&arp(1, ME_MAC, PEER_IP, GATEWAY), DropReason::SpoofedIp);
    dp.assert_dropped(&arp(3, ME_MAC, ME_IP, GATEWAY), DropReason::MalformedArp);
    let mut not_ipv4 = arp_request(GATEWAY);
    not_ipv4[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
    dp.assert_dropped(&not_ipv4, DropReason::MalformedArp);
}

#[test]
fn ipv4_to_a_peer_is_redirected_into_it_with_its_mac() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    // Addressed to the gateway's MAC: still delivered to the owner of the IP, re-addressed.
    let (verdict, out) = dp.ingress(&udp_from_me(HOST_MAC, PEER_IP));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(&out[0..6], &PEER_MAC);
    assert_eq!(
        out[14..],
        udp_from_me(HOST_MAC, PEER_IP)[14..],
        "payload untouched"
    );
    assert_eq!(dp.counters(ME_SLOT).tx_packets, 1);
    assert_eq!(dp.counters(PEER_SLOT).rx_packets, 1);
}

#[test]
fn ipv4_to_the_gateway_goes_to_the_host_stack() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let (verdict, out) = dp.ingress(&udp_from_me(HOST_MAC, GATEWAY));
    assert_eq!(verdict, TC_ACT_OK);
    assert_eq!(out, udp_from_me(HOST_MAC, GATEWAY), "passed on unchanged");
}

#[test]
fn ipv4_to_another_network_or_nowhere_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.assert_dropped(
        &udp_from_me(STRANGER_MAC, STRANGER_IP),
        DropReason::OtherNetwork,
    );
    // Outside, but no uplink configured.
    dp.assert_dropped(
        &udp_from_me(HOST_MAC, [192, 168, 1, 1]),
        DropReason::NoUplink,
    );
    dp.assert_dropped(&udp_from_me(ME_MAC, ME_IP), DropReason::NoRoute);
    assert_eq!(dp.counters(ME_SLOT).drops, 3);
    assert_eq!(dp.counters(ME_SLOT).tx_packets, 0);
}

#[test]
fn spoofed_ipv4_is_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.assert_dropped(
        &udp(PEER_MAC, ME_MAC, [10, 0, 0, 77], PEER_IP),
        DropReason::SpoofedIp,
    );
    dp.assert_dropped(
        &udp(PEER_MAC, STRANGER_MAC, ME_IP, PEER_IP),
        DropReason::SpoofedMac,
    );
}

#[test]
fn truncated_and_unsupported_frames_are_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    // Cut anywhere inside the ARP header, or right after the Ethernet header. (Short IPv4
    // frames cannot be crafted here: BPF_PROG_TEST_RUN itself rejects an IPv4 EtherType with
    // less than an IPv4 header behind it, with EINVAL. Both go through `parse::header`.)
    for len in [14, 20, 30, 41] {
        dp.assert_dropped(&arp_request(PEER_IP)[..len], DropReason::Truncated);
    }
    // Header length below the minimum, and a version-6 packet behind an IPv4 EtherType.
    let mut bad_ihl = udp_from_me(PEER_MAC, PEER_IP);
    bad_ihl[14] = 0x44;
    dp.assert_dropped(&bad_ihl, DropReason::MalformedIp);
    let mut bad_version = udp_from_me(PEER_MAC, PEER_IP);
    bad_version[14] = 0x65;
    dp.assert_dropped(&bad_version, DropReason::MalformedIp);
    // VLAN-tagged (the tag would hide a foreign network's traffic) and IPv6.
    let mut tagged = eth(PEER_MAC, ME_MAC, 0x8100);
    tagged.extend_from_slice(&[0, 10, 0x08, 0x00]);
    tagged.extend_from_slice(&udp_from_me(PEER_MAC, PEER_IP)[14..]);
    dp.assert_dropped(&tagged, DropReason::UnsupportedEtherType);
    let mut ipv6 = eth(PEER_MAC, ME_MAC, 0x86dd);
    ipv6.extend_from_slice(&[0x60; 40]);
    dp.assert_dropped(&ipv6, DropReason::UnsupportedEtherType);
}

#[test]
fn frames_from_an_unknown_veth_are_dropped() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.set_me(None);
    dp.assert_dropped(&udp_from_me(PEER_MAC, PEER_IP), DropReason::UnknownEndpoint);
    dp.assert_dropped(&arp_request(PEER_IP), DropReason::UnknownEndpoint);
}

#[test]
fn egress_passes_host_traffic_and_counts_it() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let frame = udp(ME_MAC, HOST_MAC, GATEWAY, ME_IP);
    let (verdict, out) = dp.run(PROG_ENDPOINT_EGRESS, &frame);
    assert_eq!(verdict, TC_ACT_OK);
    assert_eq!(out, frame);
    assert_eq!(dp.counters(ME_SLOT).rx_packets, 1);
}

#[test]
fn icc_off_blocks_peers_at_l2_and_l3_but_not_the_gateway() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.set_me(Some(me(ENDPOINT_ICC_OFF)));
    dp.assert_dropped(&arp_request(PEER_IP), DropReason::IccBlocked);
    dp.assert_dropped(&udp_from_me(PEER_MAC, PEER_IP), DropReason::IccBlocked);
    assert_eq!(dp.ingress(&arp_request(GATEWAY)).0, TC_ACT_REDIRECT);
    assert_eq!(dp.ingress(&udp_from_me(HOST_MAC, GATEWAY)).0, TC_ACT_OK);
}

const UPLINK_IP: [u8; 4] = [10, 200, 0, 1];
const REMOTE_IP: [u8; 4] = [10, 201, 0, 1];

/// RFC 1071 ones'-complement sum, folded.
fn csum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        for pair in chunk.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP frame with valid IP and UDP checksums.
fn udp_with_checksums(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    let payload = b"xnet nat";
    let udp_len = (8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&(20 + udp_len).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let ip_check = csum(&[&ip]);
    ip[10..12].copy_from_slice(&ip_check.to_be_bytes());
    let mut udp = Vec::new();
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let pseudo = [&src[..], &dst[..], &[0, 17], &udp_len.to_be_bytes()[..]].concat();
    let udp_check = csum(&[&pseudo, &udp]);
    udp[6..8].copy_from_slice(&udp_check.to_be_bytes());
    let mut f = eth(HOST_MAC, ME_MAC, 0x0800);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// Asserts the frame's IP and UDP checksums verify; returns (src, sport, dst, dport).
fn checked_udp(frame: &[u8]) -> ([u8; 4], u16, [u8; 4], u16) {
    let ip = &frame[14..34];
    assert_eq!(csum(&[ip]), 0, "bad IP checksum");
    let (src, dst): ([u8; 4], [u8; 4]) = (
        ip[12..16].try_into().unwrap(),
        ip[16..20].try_into().unwrap(),
    );
    let udp = &frame[34..];
    let pseudo = [
        &src[..],
        &dst[..],
        &[0, 17],
        &(udp.len() as u16).to_be_bytes()[..],
    ]
    .concat();
    assert_eq!(csum(&[&pseudo, udp]), 0, "bad UDP checksum");
    let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
    (src, port(0), dst, port(2))
}

#[test]
fn egress_is_source_natted_to_the_uplink_and_replies_come_back() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    dp.set_uplink(Uplink {
        ifindex: 7,
        ipv4: UPLINK_IP,
        ipv6: [0; 16],
    });
    let (verdict, out) = dp.ingress(&udp_with_checksums(ME_IP, 40000, REMOTE_IP, 53));
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent out of the uplink");
    let (src, nat_port, dst, dport) = checked_udp(&out);
    assert_eq!((src, dst, dport), (UPLINK_IP, REMOTE_IP, 53));
    let nat_range =
        u32::from(NAT_PORT_FIRST)..u32::from(NAT_PORT_FIRST) + u32::from(NAT_PORT_COUNT);
    assert!(nat_range.contains(&u32::from(nat_port)), "{nat_port}");
    // The same flow keeps its port.
    let (_, again) = dp.ingress(&udp_with_checksums(ME_IP, 40000, REMOTE_IP, 53));
    assert_eq!(checked_udp(&again).1, nat_port);

    // The reply, as it arrives on the uplink, goes back to the container.
    let (verdict, back) = dp.run(
        PROG_UPLINK_INGRESS,
        &udp_with_checksums(REMOTE_IP, 53, UPLINK_IP, nat_port),
    );
    assert_eq!(verdict, TC_ACT_REDIRECT, "redirected into the container");
    assert_eq!(checked_udp(&back), (REMOTE_IP, 53, ME_IP, 40000));
    assert_eq!(&back[0..6], &ME_MAC);
    assert_eq!(&back[6..12], &HOST_MAC);

    // Traffic for the uplink's address that belongs to no flow is the host's: untouched.
    let host_traffic = udp_with_checksums(REMOTE_IP, 53, UPLINK_IP, nat_port + 1);
    assert_eq!(
        dp.run(PROG_UPLINK_INGRESS, &host_traffic),
        (TC_ACT_OK, host_traffic)
    );
}

#[test]
fn egress_respects_internal_networks_other_networks_and_missing_uplinks() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::new();
    let frame = udp_with_checksums(ME_IP, 40000, REMOTE_IP, 53);
    dp.assert_dropped(&frame, DropReason::NoUplink);
    dp.set_uplink(Uplink {
        ifindex: 7,
        ipv4: UPLINK_IP,
        ipv6: [0; 16],
    });
    dp.set_me(Some(me(ENDPOINT_INTERNAL)));
    dp.assert_dropped(&frame, DropReason::Internal);
    dp.set_me(Some(me(0)));
    // The host by its uplink address: its own stack answers.
    assert_eq!(
        dp.ingress(&udp_with_checksums(ME_IP, 40000, UPLINK_IP, 53))
            .0,
        TC_ACT_OK
    );
    // GRE is not translated.
    let mut gre = udp_with_checksums(ME_IP, 40000, REMOTE_IP, 53);
    gre[23] = 47;
    dp.assert_dropped(&gre, DropReason::UnsupportedNat);
}
