//! Published ports at the packet level: destination NAT at the uplink (its XDP program) with
//! the client's address kept, the reverse for replies, host-address bindings, ranges, and
//! hairpin through the gateway, over IPv4 and IPv6. The published container is the endpoint
//! under test (ifindex 1), so every leg runs on the test runner's device.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::{
    Pod,
    maps::{LpmTrie, MapData, lpm_trie::Key},
};
use xnet::datapath::PublishEntry;
use xnet_common::{
    DropReason, MAP_PUBLISHED, MAP_PUBLISHED6, NAT_PORT_FIRST, PROG_UPLINK_INGRESS, PublishKey,
    Published, Uplink,
};
use xnet_dockerlab::skip;

use super::{
    Datapath, GATEWAY, HOST_MAC, LOOPBACK, ME_IP, ME_MAC, REMOTE_IP, TC_ACT_OK, TC_ACT_REDIRECT,
    UPLINK_IP, XDP_DROP, XDP_PASS, XDP_REDIRECT, checked_udp,
    ipv6::{
        GATEWAY6, ME_IP6, REMOTE_IP6, UPLINK_IP6, assert_nat_port, checked6, dp_with_uplink6,
        ipv6_frame, port, udp6,
    },
    udp_with_checksums,
};

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

/// The entry publishing host ports `host` (bound to `host_ip`) to the endpoint under test's
/// address `container_ip` and ports starting at `container_first`.
fn entry(
    proto: u8,
    host_ip: IpAddr,
    host: (u16, u16),
    container_ip: IpAddr,
    container_first: u16,
) -> PublishEntry {
    PublishEntry {
        proto,
        host_ip,
        host_ports: host.0..=host.1,
        container_ip,
        container_port_first: container_first,
        ifindex: LOOPBACK,
    }
}

impl Datapath {
    /// Publishes host ports `host` (bound to `host_ip`) to the endpoint under test's ports
    /// starting at `container_first`, the way the daemon writes them.
    fn publish(&mut self, proto: u8, host_ip: [u8; 4], host: (u16, u16), container_first: u16) {
        let entry = entry(
            proto,
            Ipv4Addr::from(host_ip).into(),
            host,
            Ipv4Addr::from(ME_IP).into(),
            container_first,
        );
        let (keys, value) = entry.ipv4().unwrap().expect("an IPv4 entry");
        self.insert_published(MAP_PUBLISHED, &keys, value);
    }

    /// The same on an IPv6 host address, to the endpoint's IPv6 address.
    fn publish6(&mut self, proto: u8, host_ip: [u8; 16], host: (u16, u16), container_first: u16) {
        let entry = entry(
            proto,
            Ipv6Addr::from(host_ip).into(),
            host,
            Ipv6Addr::from(ME_IP6).into(),
            container_first,
        );
        let (keys, value) = entry.ipv6().unwrap().expect("an IPv6 entry");
        self.insert_published(MAP_PUBLISHED6, &keys, value);
    }

    fn insert_published<A>(&mut self, map: &str, keys: &[Key<PublishKey<A>>], value: Published<A>)
    where
        PublishKey<A>: Pod,
        Published<A>: Pod,
    {
        let mut published: LpmTrie<&mut MapData, PublishKey<A>, Published<A>> =
            LpmTrie::try_from(self.ebpf.map_mut(map).unwrap()).unwrap();
        for key in keys {
            published.insert(key, value, 0).unwrap();
        }
    }

    fn with_uplink() -> Self {
        let mut dp = Datapath::new();
        dp.set_uplink(Uplink {
            ifindex: 7,
            ipv4: UPLINK_IP,
            ipv6: [0; 16],
        });
        dp
    }

    /// Runs the uplink's XDP program, where frames to published ports are translated.
    fn on_uplink(&mut self, frame: &[u8]) -> (u32, Vec<u8>) {
        self.run_xdp(frame)
    }
}

/// A UDP datagram as it arrives on the uplink from `src` to `dst`.
fn wire(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
    let mut f = udp_with_checksums(src.0, src.1, dst.0, dst.1);
    f[0..6].copy_from_slice(&HOST_MAC);
    f[6..12].copy_from_slice(&[0xee; 6]);
    f
}

#[test]
fn outside_clients_reach_published_ports_with_their_own_address() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(UDP, [0; 4], (8080, 8080), 80);
    let (verdict, inside) = dp.on_uplink(&wire((REMOTE_IP, 5555), (UPLINK_IP, 8080)));
    assert_eq!(verdict, XDP_REDIRECT, "delivered into the container");
    assert_eq!(checked_udp(&inside), (REMOTE_IP, 5555, ME_IP, 80));
    assert_eq!(
        (&inside[0..6], &inside[6..12]),
        (&ME_MAC[..], &HOST_MAC[..])
    );

    // The reply leaves through the uplink as what the client dialed.
    let (verdict, out) = dp.ingress(&udp_with_checksums(ME_IP, 80, REMOTE_IP, 5555));
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent out of the uplink");
    assert_eq!(checked_udp(&out), (UPLINK_IP, 8080, REMOTE_IP, 5555));

    // Another port, or another protocol on the same port, is the host's business.
    let other_port = wire((REMOTE_IP, 5555), (UPLINK_IP, 8081));
    assert_eq!(dp.on_uplink(&other_port), (XDP_PASS, other_port.clone()));
    dp.publish(TCP, [0; 4], (9090, 9090), 90);
    let udp_to_tcp_port = wire((REMOTE_IP, 5555), (UPLINK_IP, 9090));
    assert_eq!(
        dp.on_uplink(&udp_to_tcp_port),
        (XDP_PASS, udp_to_tcp_port.clone())
    );
}

#[test]
fn ranges_map_port_by_port() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(UDP, [0; 4], (10000, 19999), 10000);
    dp.publish(UDP, [0; 4], (20000, 20009), 30000);
    for (port, expected) in [
        (10000, 10000),
        (12345, 12345),
        (19999, 19999),
        (20005, 30005),
    ] {
        let (verdict, inside) = dp.on_uplink(&wire((REMOTE_IP, 5555), (UPLINK_IP, port)));
        assert_eq!(verdict, XDP_REDIRECT, "{port}");
        assert_eq!(checked_udp(&inside).3, expected, "{port}");
    }
    let past = wire((REMOTE_IP, 5555), (UPLINK_IP, 20010));
    assert_eq!(dp.on_uplink(&past).0, XDP_PASS);
}

#[test]
fn host_address_bindings_are_honoured() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    // Bound to loopback: never from the wire, even addressed to 127.0.0.1 (moby#45610).
    dp.publish(UDP, [127, 0, 0, 1], (9000, 9000), 90);
    let sneaky = wire((REMOTE_IP, 5555), ([127, 0, 0, 1], 9000));
    assert_eq!(dp.on_uplink(&sneaky), (XDP_PASS, sneaky.clone()));
    let via_uplink = wire((REMOTE_IP, 5555), (UPLINK_IP, 9000));
    assert_eq!(
        dp.on_uplink(&via_uplink).0,
        XDP_PASS,
        "loopback binding leaked"
    );
    // Bound to one host address: reachable there, not through another.
    let other_host_ip = [10, 200, 0, 9];
    dp.publish(UDP, other_host_ip, (9100, 9100), 91);
    assert_eq!(
        dp.on_uplink(&wire((REMOTE_IP, 5555), (other_host_ip, 9100)))
            .0,
        XDP_REDIRECT
    );
    let wrong_address = wire((REMOTE_IP, 5555), (UPLINK_IP, 9100));
    assert_eq!(dp.on_uplink(&wrong_address).0, XDP_PASS);
    // Bound to every address: through the uplink's address, but not to addresses that are not
    // the host's (transit traffic is never captured).
    dp.publish(UDP, [0; 4], (9200, 9200), 92);
    let transit = wire((REMOTE_IP, 5555), ([10, 77, 0, 1], 9200));
    assert_eq!(dp.on_uplink(&transit).0, XDP_PASS);
}

#[test]
fn containers_reach_published_ports_through_the_host_address() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(UDP, [0; 4], (8080, 8080), 80);
    // The container under test is client and server at once (hairpin to itself): the server
    // sees the connection coming from its gateway.
    let (verdict, inside) = dp.ingress(&udp_with_checksums(ME_IP, 4000, GATEWAY, 8080));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked_udp(&inside), (GATEWAY, 4000, ME_IP, 80));
    // Its reply comes back as from what the client dialed.
    let (verdict, back) = dp.ingress(&udp_with_checksums(ME_IP, 80, GATEWAY, 4000));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked_udp(&back), (GATEWAY, 8080, ME_IP, 4000));
    // The same through the uplink's address.
    let (verdict, inside) = dp.ingress(&udp_with_checksums(ME_IP, 4001, UPLINK_IP, 8080));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked_udp(&inside), (GATEWAY, 4001, ME_IP, 80));
    let (_, back) = dp.ingress(&udp_with_checksums(ME_IP, 80, GATEWAY, 4001));
    assert_eq!(checked_udp(&back), (UPLINK_IP, 8080, ME_IP, 4001));
    // Ports that are not published are the host stack's.
    let plain = udp_with_checksums(ME_IP, 4002, GATEWAY, 53);
    assert_eq!(dp.ingress(&plain), (TC_ACT_OK, plain.clone()));
}

#[test]
fn sctp_keeps_its_ports() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(SCTP, [0; 4], (7000, 7000), 7000);
    dp.publish(SCTP, [0; 4], (7001, 7001), 7100);
    let sctp = |port: u16| {
        let mut f = wire((REMOTE_IP, 5555), (UPLINK_IP, port));
        f[23] = SCTP;
        f
    };
    let (verdict, inside) = dp.on_uplink(&sctp(7000));
    assert_eq!(verdict, XDP_REDIRECT);
    assert_eq!(&inside[30..34], &ME_IP, "address translated");
    // Its CRC32c covers the ports and cannot follow a change: never half-translated.
    let before = dp.drops(DropReason::UnsupportedNat);
    assert_eq!(dp.on_uplink(&sctp(7001)).0, XDP_DROP);
    assert_eq!(dp.drops(DropReason::UnsupportedNat), before + 1);
}

/// A TCP segment from the wire with `flags` (checksums are not what this test is about).
fn tcp_segment(src: ([u8; 4], u16), dst: ([u8; 4], u16), flags: u8) -> Vec<u8> {
    let mut f = super::eth(HOST_MAC, [0xee; 6], 0x0800);
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, TCP, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

#[test]
fn tcp_is_captured_only_from_the_connections_first_segment() {
    if skip::unless_root() {
        return;
    }
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    let mut dp = Datapath::with_uplink();
    dp.publish(TCP, [0; 4], (40000, 40000), 80);
    // A segment of a connection the host itself made from port 40000 (say, the answer to its
    // own SYN): the host's, even though the port is published now.
    let hosts_own = tcp_segment((REMOTE_IP, 443), (UPLINK_IP, 40000), SYN | ACK);
    assert_eq!(dp.on_uplink(&hosts_own), (XDP_PASS, hosts_own.clone()));
    // A new connection is the container's, and so is the rest of it.
    let open = tcp_segment((REMOTE_IP, 5555), (UPLINK_IP, 40000), SYN);
    let (verdict, inside) = dp.on_uplink(&open);
    assert_eq!(verdict, XDP_REDIRECT);
    assert_eq!(
        (&inside[30..34], &inside[36..38]),
        (&ME_IP[..], &80u16.to_be_bytes()[..])
    );
    let rest = tcp_segment((REMOTE_IP, 5555), (UPLINK_IP, 40000), ACK);
    assert_eq!(dp.on_uplink(&rest).0, XDP_REDIRECT);
}

#[test]
fn udp_without_checksum_stays_without() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(UDP, [0; 4], (8080, 8080), 80);
    let mut frame = wire((REMOTE_IP, 5555), (UPLINK_IP, 8080));
    frame[40..42].copy_from_slice(&[0, 0]);
    let (verdict, inside) = dp.on_uplink(&frame);
    assert_eq!(verdict, XDP_REDIRECT);
    assert_eq!(&inside[40..42], &[0, 0], "a zero UDP checksum means none");
    assert_eq!(
        (&inside[30..34], &inside[36..38]),
        (&ME_IP[..], &80u16.to_be_bytes()[..])
    );
}

#[test]
fn nat_replies_win_over_ports_published_in_the_nat_range() {
    if skip::unless_root() {
        return;
    }
    let mut dp = Datapath::with_uplink();
    dp.publish(UDP, [0; 4], (NAT_PORT_FIRST, u16::MAX), NAT_PORT_FIRST);
    // The container's own connection to the outside leaves from a NAT port...
    let (_, out) = dp.ingress(&udp_with_checksums(ME_IP, 40000, REMOTE_IP, 53));
    let (src, nat_port, _, _) = checked_udp(&out);
    assert_eq!(src, UPLINK_IP);
    // ...and its reply is the NAT flow's (`uplink_ingress` delivers it), not a connection to
    // the port published there.
    let reply = wire((REMOTE_IP, 53), (UPLINK_IP, nat_port));
    assert_eq!(dp.on_uplink(&reply), (XDP_PASS, reply.clone()));
    let (verdict, inside) = dp.run(PROG_UPLINK_INGRESS, &reply);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked_udp(&inside), (REMOTE_IP, 53, ME_IP, 40000));
    // Another client on that port is a connection to the published port.
    let other = wire((REMOTE_IP, 54), (UPLINK_IP, nat_port));
    assert_eq!(dp.on_uplink(&other).0, XDP_REDIRECT);
}

/// A UDP datagram over IPv6 as it arrives on the uplink from `src` to `dst`.
fn wire6(src: ([u8; 16], u16), dst: ([u8; 16], u16)) -> Vec<u8> {
    let mut f = udp6([0xee; 6], src, dst);
    f[0..6].copy_from_slice(&HOST_MAC);
    f
}

/// A TCP segment over IPv6 with `flags` and a valid checksum.
fn tcp6(src: ([u8; 16], u16), dst: ([u8; 16], u16), flags: u8) -> Vec<u8> {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&src.1.to_be_bytes());
    tcp.extend_from_slice(&dst.1.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    tcp.extend_from_slice(b"xnet publish6");
    ipv6_frame(HOST_MAC, [0xee; 6], (src.0, dst.0), (TCP, 64), tcp, 16)
}

/// (source address, source port, destination address, destination port) of an IPv6 frame
/// whose transport checksum verifies.
fn checked6_ports(frame: &[u8]) -> ([u8; 16], u16, [u8; 16], u16) {
    let (src, dst, l4) = checked6(frame);
    (src, port(l4), dst, port(&l4[2..]))
}

#[test]
fn outside_clients_reach_ports_published_on_ipv6_with_their_own_address() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    dp.publish6(UDP, [0; 16], (8080, 8080), 80);
    let (verdict, inside) = dp.on_uplink(&wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 8080)));
    assert_eq!(verdict, XDP_REDIRECT, "delivered into the container");
    assert_eq!(checked6_ports(&inside), (REMOTE_IP6, 5555, ME_IP6, 80));
    assert_eq!(
        (&inside[0..6], &inside[6..12]),
        (&ME_MAC[..], &HOST_MAC[..])
    );

    // The reply leaves through the uplink as what the client dialed (not NAT66).
    let (verdict, out) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 80), (REMOTE_IP6, 5555)));
    assert_eq!(verdict, TC_ACT_REDIRECT, "sent out of the uplink");
    assert_eq!(checked6_ports(&out), (UPLINK_IP6, 8080, REMOTE_IP6, 5555));

    // TCP: a new connection, its checksum following the address and port change.
    dp.publish6(TCP, [0; 16], (9090, 9090), 90);
    let (verdict, inside) = dp.on_uplink(&tcp6((REMOTE_IP6, 6000), (UPLINK_IP6, 9090), 0x02));
    assert_eq!(verdict, XDP_REDIRECT);
    assert_eq!(checked6_ports(&inside), (REMOTE_IP6, 6000, ME_IP6, 90));

    // Another port is the host's business, and so is an IPv4-only publication.
    let other_port = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 8081));
    assert_eq!(dp.on_uplink(&other_port), (XDP_PASS, other_port.clone()));
    dp.publish(UDP, [0; 4], (7070, 7070), 70);
    let v4_only = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 7070));
    assert_eq!(dp.on_uplink(&v4_only).0, XDP_PASS);
}

#[test]
fn ipv6_frames_the_xdp_program_cannot_translate_pass_untouched() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    dp.publish6(UDP, [0; 16], (8080, 8080), 80);
    // UDP over IPv6 without a checksum is invalid: the host's stack decides (and drops).
    let mut no_checksum = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 8080));
    no_checksum[60..62].copy_from_slice(&[0, 0]);
    assert_eq!(dp.on_uplink(&no_checksum), (XDP_PASS, no_checksum.clone()));
    // An extension header (hop-by-hop options) before the transport: passed, not parsed.
    let mut extension = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 8080));
    extension[20] = 0;
    assert_eq!(dp.on_uplink(&extension), (XDP_PASS, extension.clone()));
}

#[test]
fn ipv6_host_address_bindings_are_honoured() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    let loopback = Ipv6Addr::LOCALHOST.octets();
    // Bound to [::1]: never from the wire, even addressed to ::1.
    dp.publish6(UDP, loopback, (9000, 9000), 90);
    let sneaky = wire6((REMOTE_IP6, 5555), (loopback, 9000));
    assert_eq!(dp.on_uplink(&sneaky), (XDP_PASS, sneaky.clone()));
    let via_uplink = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 9000));
    assert_eq!(
        dp.on_uplink(&via_uplink).0,
        XDP_PASS,
        "[::1] binding leaked"
    );
    // Bound to one host address: reachable there, not through another.
    let other_host_ip = Ipv6Addr::new(0xfd00, 0xc8, 0, 0, 0, 0, 0, 9).octets();
    dp.publish6(UDP, other_host_ip, (9100, 9100), 91);
    let there = wire6((REMOTE_IP6, 5555), (other_host_ip, 9100));
    assert_eq!(dp.on_uplink(&there).0, XDP_REDIRECT);
    let wrong_address = wire6((REMOTE_IP6, 5555), (UPLINK_IP6, 9100));
    assert_eq!(dp.on_uplink(&wrong_address).0, XDP_PASS);
    // Bound to every address: never for addresses that are not the host's (transit).
    dp.publish6(UDP, [0; 16], (9200, 9200), 92);
    let transit = wire6((REMOTE_IP6, 5555), (REMOTE_IP6, 9200));
    assert_eq!(dp.on_uplink(&transit).0, XDP_PASS);
}

#[test]
fn nat66_replies_win_over_ports_published_in_the_nat_range() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    dp.publish6(UDP, [0; 16], (NAT_PORT_FIRST, u16::MAX), NAT_PORT_FIRST);
    let (_, out) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 40000), (REMOTE_IP6, 53)));
    let (src, nat_port, _, _) = checked6_ports(&out);
    assert_eq!(src, UPLINK_IP6);
    assert_nat_port(nat_port);
    let reply = wire6((REMOTE_IP6, 53), (UPLINK_IP6, nat_port));
    assert_eq!(dp.on_uplink(&reply), (XDP_PASS, reply.clone()));
    let (verdict, inside) = dp.run(PROG_UPLINK_INGRESS, &reply);
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked6_ports(&inside), (REMOTE_IP6, 53, ME_IP6, 40000));
    let other = wire6((REMOTE_IP6, 54), (UPLINK_IP6, nat_port));
    assert_eq!(dp.on_uplink(&other).0, XDP_REDIRECT);
}

#[test]
fn containers_reach_ports_published_on_ipv6_through_the_host_address() {
    if skip::unless_root() {
        return;
    }
    let mut dp = dp_with_uplink6();
    dp.publish6(UDP, [0; 16], (8080, 8080), 80);
    // Hairpin to itself through its IPv6 gateway: the server sees the gateway as client.
    let (verdict, inside) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 4000), (GATEWAY6, 8080)));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked6_ports(&inside), (GATEWAY6, 4000, ME_IP6, 80));
    let (verdict, back) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 80), (GATEWAY6, 4000)));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked6_ports(&back), (GATEWAY6, 8080, ME_IP6, 4000));
    // The same through the uplink's IPv6 address.
    let (verdict, inside) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 4001), (UPLINK_IP6, 8080)));
    assert_eq!(verdict, TC_ACT_REDIRECT);
    assert_eq!(checked6_ports(&inside), (GATEWAY6, 4001, ME_IP6, 80));
    let (_, back) = dp.ingress(&udp6(ME_MAC, (ME_IP6, 80), (GATEWAY6, 4001)));
    assert_eq!(checked6_ports(&back), (UPLINK_IP6, 8080, ME_IP6, 4001));
    // Ports that are not published are the host stack's, untouched.
    let plain = udp6(ME_MAC, (ME_IP6, 4002), (GATEWAY6, 53));
    assert_eq!(dp.ingress(&plain), (TC_ACT_OK, plain.clone()));
}
