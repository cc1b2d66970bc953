//! The host's own use of ports, read from procfs in the daemon's namespace: which sockets hold
//! ports that a published mapping would shadow, which process owns one, the ephemeral range
//! that omitted host ports are taken from, and the ports reserved from it. Parsing is pure and
//! unit-tested.

use std::{
    collections::BTreeSet,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use anyhow::Context as _;

use crate::state::ports::{Holder, Holding, Protocol, range_text};

/// `/proc/net/tcp` state of a listening socket.
const TCP_LISTEN: &str = "0A";

/// The sockets of the daemon's namespace that hold a port: listening TCP, bound UDP, listening
/// SCTP (when the kernel has SCTP). An IPv6 socket bound to `::` holds the IPv4 port too (it
/// accepts IPv4 unless IPV6_V6ONLY, which procfs does not show); one bound to an IPv4-mapped
/// address holds only that IPv4 address.
pub fn held_ports() -> anyhow::Result<Vec<Holding>> {
    let mut held = Vec::new();
    for (file, protocol, listen_only) in [
        ("/proc/net/tcp", Protocol::Tcp, true),
        ("/proc/net/tcp6", Protocol::Tcp, true),
        ("/proc/net/udp", Protocol::Udp, false),
        ("/proc/net/udp6", Protocol::Udp, false),
    ] {
        // A kernel without IPv6 has no tcp6/udp6.
        let Some(text) = read_optional(file)? else {
            continue;
        };
        held.extend(parse_inet(&text, protocol, listen_only));
    }
    if let Some(text) = read_optional("/proc/net/sctp/eps")? {
        held.extend(parse_sctp_eps(&text));
    }
    Ok(held)
}

/// `net.ipv4.ip_local_port_range` of the daemon's namespace.
pub fn ephemeral_range() -> anyhow::Result<RangeInclusive<u16>> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = fs::read_to_string(PATH).with_context(|| format!("reading {PATH}"))?;
    parse_port_range(&text).with_context(|| format!("parsing {PATH}: {text:?}"))
}

/// "NAME (pid N)" of a process that has the socket open, found through `/proc/*/fd`; `None`
/// when none is visible (a kernel socket, a process that just exited).
pub fn socket_owner(inode: u64) -> Option<String> {
    let target = format!("socket:[{inode}]");
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let fds = fs::read_dir(entry.path().join("fd")).ok()?;
        let owns = fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == &*target));
        let comm = fs::read_to_string(entry.path().join("comm")).ok()?;
        owns.then(|| format!("{} (pid {pid})", comm.trim_end()))
    })
}

fn read_optional(path: &str) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// The entries of `/proc/net/{tcp,tcp6,udp,udp6}` that hold a port. Columns: `sl
/// local_address rem_address st ... uid timeout inode`; addresses are hex words in the
/// kernel's byte order, `ADDR:PORT`.
fn parse_inet(text: &str, protocol: Protocol, listen_only: bool) -> Vec<Holding> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if listen_only && *state != TCP_LISTEN {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            let inode = inode.parse().ok()?;
            Some(held_addresses(ip_of_hex(addr)?).map(move |addr| Holding {
                protocol,
                addr,
                ports: port..=port,
                holder: Holder::Socket(inode),
            }))
        })
        .flatten()
        .collect()
}

/// The addresses a socket bound to `ip` holds its port on: `::` holds 0.0.0.0 too, an
/// IPv4-mapped address its IPv4 address.
fn held_addresses(ip: IpAddr) -> impl Iterator<Item = IpAddr> {
    let (own, also) = match ip {
        IpAddr::V6(v6) if v6.is_unspecified() => (ip, Some(Ipv4Addr::UNSPECIFIED.into())),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => (v4.into(), None),
            None => (ip, None),
        },
        IpAddr::V4(_) => (ip, None),
    };
    std::iter::once(own).chain(also)
}

/// An address from procfs hex: 8 digits (IPv4) or 32 (IPv6).
fn ip_of_hex(hex: &str) -> Option<IpAddr> {
    let words = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<Vec<u32>>>()?;
    // Each word is printed as a native-endian integer of network-order bytes.
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match bytes.len() {
        4 => Some(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()),
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).into()),
        _ => None,
    }
}

/// `/proc/net/sctp/eps`: `ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS...`, the port in
/// decimal and the local addresses in text; an endpoint holds its port on each of them.
fn parse_sctp_eps(text: &str) -> Vec<Holding> {
    text.lines()
        .skip(1)
        .flat_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = fields.get(5).and_then(|p| p.parse::<u16>().ok());
            let inode = fields.get(7).and_then(|i| i.parse::<u64>().ok());
            let addrs = fields.get(8..).unwrap_or_default();
            port.zip(inode)
                .into_iter()
                .flat_map(move |(port, inode)| {
                    addrs
                        .iter()
                        .filter_map(|a| a.parse::<IpAddr>().ok())
                        .flat_map(held_addresses)
                        .map(move |addr| Holding {
                            protocol: Protocol::Sctp,
                            addr,
                            ports: port..=port,
                            holder: Holder::Socket(inode),
                        })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `net.ipv4.ip_local_reserved_ports`: ports the kernel never picks as a socket's ephemeral
/// port (binding them explicitly still works). One list for TCP, UDP and SCTP, IPv4 and IPv6.
const RESERVED_PORTS: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// The reserved ports of the daemon's namespace.
pub fn reserved_ports() -> anyhow::Result<BTreeSet<u16>> {
    let text =
        fs::read_to_string(RESERVED_PORTS).with_context(|| format!("reading {RESERVED_PORTS}"))?;
    parse_port_list(&text).with_context(|| format!("parsing {RESERVED_PORTS}: {text:?}"))
}

/// Makes `ports` the reserved ports of the daemon's namespace.
pub fn set_reserved_ports(ports: &BTreeSet<u16>) -> anyhow::Result<()> {
    // An empty list is written as a lone newline: the kernel refuses an empty write.
    let text = format!("{}\n", format_port_list(ports));
    fs::write(RESERVED_PORTS, &text)
        .with_context(|| format!("writing {text:?} to {RESERVED_PORTS}"))
}

/// `8080,10000-19999` (the kernel's list syntax) as the ports it names.
fn parse_port_list(text: &str) -> Option<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u16, u16) = (first.parse().ok()?, last.parse().ok()?);
        if first > last {
            return None;
        }
        ports.extend(first..=last);
    }
    Some(ports)
}

/// The ports as the kernel's list syntax, consecutive ones as ranges.
fn format_port_list(ports: &BTreeSet<u16>) -> String {
    let mut ranges: Vec<RangeInclusive<u16>> = Vec::new();
    for &port in ports {
        match ranges.last_mut() {
            Some(range) if u32::from(*range.end()) + 1 == u32::from(port) => {
                *range = *range.start()..=port;
            }
            _ => ranges.push(port..=port),
        }
    }
    ranges.iter().map(range_text).collect::<Vec<_>>().join(",")
}

/// `ip_local_port_range`'s text: `FIRST` and `LAST`, separated by a tab.
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut parts = text.split_whitespace().map(str::parse::<u16>);
    match (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()) {
        (first, last, None) if first <= last => Some(first..=last),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_port_lists_round_trip_as_ranges() {
        let ports = parse_port_list("8080,10000-10002,10003,443\n").unwrap();
        assert_eq!(ports.len(), 6);
        assert_eq!(format_port_list(&ports), "443,8080,10000-10003");
        assert_eq!(parse_port_list("\n").unwrap(), BTreeSet::new());
        assert_eq!(format_port_list(&BTreeSet::new()), "");
        assert!(parse_port_list("10-9").is_none());
        assert!(parse_port_list("http").is_none());
    }

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn line(local: &str, state: &str, inode: u64) -> String {
        format!(
            "   0: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    fn localhost_hex() -> String {
        format!("{:08X}", u32::from_ne_bytes([127, 0, 0, 1]))
    }

    #[test]
    fn listening_tcp_and_bound_udp_sockets_hold_their_ports() {
        let text = format!(
            "{HEADER}{}{}",
            line(&format!("{}:1F90", localhost_hex()), "0A", 11),
            line("00000000:0050", "01", 12)
        );
        assert_eq!(
            parse_inet(&text, Protocol::Tcp, true),
            [Holding {
                protocol: Protocol::Tcp,
                addr: Ipv4Addr::LOCALHOST.into(),
                ports: 8080..=8080,
                holder: Holder::Socket(11)
            }]
        );
        // UDP has no listen state: every bound socket counts.
        let udp = parse_inet(&text, Protocol::Udp, false);
        assert_eq!(udp.len(), 2);
        assert_eq!(
            (udp[1].addr, udp[1].ports.clone()),
            (Ipv4Addr::UNSPECIFIED.into(), 80..=80)
        );
    }

    #[test]
    fn ipv6_sockets_hold_their_ports_and_the_wildcard_the_ipv4_one_too() {
        let mapped = format!(
            "0000000000000000{:08X}{}",
            u32::from_ne_bytes([0, 0, 0xff, 0xff]),
            localhost_hex()
        );
        let text = format!(
            "{HEADER}{}{}{}",
            line(&format!("{}:0016", "0".repeat(32)), "0A", 1),
            line(&format!("{mapped}:0017"), "0A", 2),
            line(&format!("{}:0018", "F".repeat(32)), "0A", 3),
        );
        let held = parse_inet(&text, Protocol::Tcp, true);
        let addrs: Vec<_> = held
            .iter()
            .map(|h| (h.addr.to_string(), *h.ports.start()))
            .collect();
        let expected = [
            ("::", 22),
            ("0.0.0.0", 22),
            ("127.0.0.1", 23),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 24),
        ];
        assert_eq!(addrs, expected.map(|(a, p)| (a.to_string(), p)));
    }

    #[test]
    fn sctp_endpoints_hold_their_ports() {
        let text = "ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n\
                    ffff8881 ffff8882 2   10  29   3868       0 4242 10.0.0.1 127.0.0.1 fd00::1\n";
        let held = parse_sctp_eps(text);
        assert_eq!(held.len(), 3);
        assert_eq!(held[2].addr, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (held[0].addr, held[0].ports.clone(), &held[0].holder),
            (
                "10.0.0.1".parse().unwrap(),
                3868..=3868,
                &Holder::Socket(4242)
            )
        );
        assert_eq!(held[1].protocol, Protocol::Sctp);
    }

    #[test]
    fn the_ephemeral_range_parses() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_port_range("5 4"), None);
        assert_eq!(parse_port_range("5"), None);
        assert!(ephemeral_range().is_ok());
    }

    #[test]
    fn our_own_socket_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = held_ports().unwrap();
        let mine = held
            .iter()
            .find(|h| h.protocol == Protocol::Tcp && *h.ports.start() == port)
            .expect("listener not found");
        let Holder::Socket(inode) = mine.holder else {
            panic!("not a socket")
        };
        let owner = socket_owner(inode).expect("owner not found");
        assert!(
            owner.ends_with(&format!("(pid {})", std::process::id())),
            "{owner}"
        );
    }
}
