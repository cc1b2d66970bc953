//! The frames the generator sends: Ethernet + IPv4 + UDP with valid checksums, one header set
//! per flow.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use anyhow::{anyhow, ensure};
use xnet_perf_ebpf::{FlowHeaders, HEADERS_LEN};

/// Frame sizes count the 4-byte FCS, as RFC 2544 does ("64-byte frames"); the kernel is handed
/// the frame without it.
pub const FCS_LEN: usize = 4;
/// Smallest and largest frame size (FCS included) the generator builds.
pub const MIN_FRAME: usize = 64;
pub const MAX_FRAME: usize = 1518;
/// The UDP ports of flow 0 unless asked otherwise; flow `i` uses `first + i` for both.
pub const FIRST_SRC_PORT: u16 = 10_000;
pub const FIRST_DST_PORT: u16 = 20_000;

const ETH_P_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
const TTL: u8 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut mac = [0; 6];
        let mut parts = s.split(':');
        for byte in &mut mac {
            let part = parts.next().ok_or_else(|| anyhow!("short MAC {s:?}"))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| anyhow!("bad MAC {s:?}"))?;
        }
        ensure!(parts.next().is_none(), "long MAC {s:?}");
        Ok(Self(mac))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The addresses every frame carries, and flow 0's ports. Only ports vary between flows: the
/// sending container may use no other source address (xnet drops anything else as spoofed).
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The headers of flow `flow` (ports `src_port + flow` -> `dst_port + flow`) for frames of
/// `frame_size` bytes (FCS included), with a zero payload.
pub fn flow_headers(ends: &Endpoints, flow: u16, frame_size: usize) -> anyhow::Result<FlowHeaders> {
    ensure!(
        (MIN_FRAME..=MAX_FRAME).contains(&frame_size),
        "frame size {frame_size} is outside {MIN_FRAME}..={MAX_FRAME}"
    );
    let ip_len = frame_size - FCS_LEN - 14;
    let udp_len = ip_len - 20;
    let port = |first: u16| {
        first
            .checked_add(flow)
            .ok_or_else(|| anyhow!("flow {flow} from port {first} is past port 65535"))
    };
    let (sport, dport) = (port(ends.src_port)?, port(ends.dst_port)?);
    let mut h = [0u8; HEADERS_LEN];
    h[0..6].copy_from_slice(&ends.dst_mac.0);
    h[6..12].copy_from_slice(&ends.src_mac.0);
    h[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
    let ip = &mut h[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[8] = TTL;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&ends.src_ip.octets());
    ip[16..20].copy_from_slice(&ends.dst_ip.octets());
    let ip_check = checksum(&[ip]);
    ip[10..12].copy_from_slice(&ip_check.to_be_bytes());
    let udp = &mut h[34..42];
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    // The payload is zeros, which add nothing to the sum; the pseudo-header and header do.
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&ends.src_ip.octets());
    pseudo[4..8].copy_from_slice(&ends.dst_ip.octets());
    pseudo[9] = IPPROTO_UDP;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let udp_check = match checksum(&[&pseudo, udp]) {
        // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_check.to_be_bytes());
    Ok(FlowHeaders {
        bytes: h,
        _pad: [0; 6],
    })
}

/// A whole frame (without FCS) with the given headers and a zero payload.
pub fn frame(headers: &FlowHeaders, frame_size: usize) -> Vec<u8> {
    let mut frame = vec![0; frame_size - FCS_LEN];
    frame[..HEADERS_LEN].copy_from_slice(&headers.bytes);
    frame
}

/// The Internet checksum (RFC 1071) over the concatenation of even-length `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = parts
        .iter()
        .flat_map(|part| part.chunks(2))
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Endpoints {
        Endpoints {
            src_mac: "02:42:ac:12:00:02".parse().unwrap(),
            dst_mac: "02:42:ac:12:00:03".parse().unwrap(),
            src_ip: Ipv4Addr::new(172, 18, 0, 2),
            dst_ip: Ipv4Addr::new(172, 18, 0, 3),
            src_port: FIRST_SRC_PORT,
            dst_port: FIRST_DST_PORT,
        }
    }

    #[test]
    fn checksums_verify_to_zero() {
        for size in [64, 128, 1518] {
            let h = flow_headers(&ends(), 7, size).unwrap();
            let f = frame(&h, size);
            assert_eq!(f.len(), size - FCS_LEN);
            assert_eq!(checksum(&[&f[14..34]]), 0, "IPv4 header");
            let udp = &f[34..];
            let mut pseudo = [0u8; 12];
            pseudo[0..4].copy_from_slice(&f[26..30]);
            pseudo[4..8].copy_from_slice(&f[30..34]);
            pseudo[9] = IPPROTO_UDP;
            pseudo[10..12].copy_from_slice(&(udp.len() as u16).to_be_bytes());
            assert_eq!(checksum(&[&pseudo, udp]), 0, "UDP, size {size}");
        }
    }

    #[test]
    fn flows_differ_only_in_ports() {
        let (a, b) = (
            flow_headers(&ends(), 0, 64).unwrap(),
            flow_headers(&ends(), 63, 64).unwrap(),
        );
        assert_eq!(a.bytes[..34], b.bytes[..34]);
        assert_eq!(u16::from_be_bytes([b.bytes[34], b.bytes[35]]), 10_063);
        assert_eq!(u16::from_be_bytes([b.bytes[36], b.bytes[37]]), 20_063);
    }

    #[test]
    fn ports_start_where_asked_and_stop_at_65535() {
        let ends = Endpoints {
            dst_port: 65_534,
            ..ends()
        };
        let h = flow_headers(&ends, 1, 64).unwrap();
        assert_eq!(u16::from_be_bytes([h.bytes[36], h.bytes[37]]), 65_535);
        assert!(flow_headers(&ends, 2, 64).is_err());
    }

    #[test]
    fn sizes_outside_ethernet_are_refused() {
        assert!(flow_headers(&ends(), 0, 63).is_err());
        assert!(flow_headers(&ends(), 0, 1519).is_err());
    }

    #[test]
    fn macs_round_trip() {
        let mac: Mac = "02:42:AC:12:00:0a".parse().unwrap();
        assert_eq!(mac.to_string(), "02:42:ac:12:00:0a");
        assert!("02:42".parse::<Mac>().is_err());
        assert!("02:42:ac:12:00:0a:ff".parse::<Mac>().is_err());
    }
}
