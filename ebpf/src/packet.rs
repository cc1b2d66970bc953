//! The packet model the translating steps share (source NAT, published ports): what differs
//! between IPv4 and IPv6 ([`Family`], implemented by [`V4`] and [`V6`]: where the addresses
//! sit, which checksums cover them, how an ICMP error quotes a packet), what a translation
//! needs to know of an IP packet ([`Packet`]), and where its ports and checksum sit ([`L4`]).
//! Each step is written once over the family, so NAT44 and NAT66, or IPv4 and IPv6 publishing,
//! are the same code.
//!
//! Rewrites use the kernel's checksum helpers, which also handle skbs whose L4 checksum the NIC
//! is still to finish (CHECKSUM_PARTIAL, the containers' default offload). XDP has no such
//! helpers: it reads [`Packet`] from here but updates checksums with [`crate::csum`].

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR},
    helpers::bpf_csum_diff,
    programs::TcContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};
use xnet_common::DropReason;

use crate::ipv6;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

/// Fragment offset bits of the IPv4 flags/fragment field (network order bytes).
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// What a translation needs to know of an IP packet (or of the packet an ICMP error quotes).
pub struct Packet<A> {
    pub src: A,
    pub dst: A,
    /// The L4 protocol; for IPv6 the first next header (packets with extension headers, e.g.
    /// fragments, are not translated).
    pub proto: u8,
    /// Where the L4 header starts in the frame.
    pub l4_off: usize,
}

impl Packet<[u8; 4]> {
    /// Non-first fragments carry no ports and cannot be translated.
    #[inline(always)]
    pub fn of_ipv4(ip: &Ipv4Hdr) -> Result<Self, DropReason> {
        if u16::from_be_bytes(ip.frags) & FRAG_OFFSET_MASK != 0 {
            return Err(DropReason::UnsupportedNat);
        }
        Ok(Self::of_ipv4_at(ip, EthHdr::LEN))
    }

    #[inline(always)]
    fn of_ipv4_at(ip: &Ipv4Hdr, ip_off: usize) -> Self {
        Self {
            src: ip.src_addr,
            dst: ip.dst_addr,
            proto: ip.proto,
            l4_off: ip_off + usize::from(ip.vihl & 0x0f) * 4,
        }
    }
}

impl Packet<[u8; 16]> {
    #[inline(always)]
    pub fn of_ipv6(ip: &Ipv6Hdr) -> Self {
        Self::of_ipv6_at(ip, EthHdr::LEN)
    }

    #[inline(always)]
    fn of_ipv6_at(ip: &Ipv6Hdr, ip_off: usize) -> Self {
        Self {
            src: ip.src_addr,
            dst: ip.dst_addr,
            proto: ip.next_hdr,
            l4_off: ip_off + Ipv6Hdr::LEN,
        }
    }
}

/// What differs between IPv4 and IPv6 packets, for the steps that rewrite their addresses.
pub trait Family {
    type Addr: Copy + 'static;
    /// ICMP's protocol number, and its echo message types.
    const ICMP: u8;
    const ECHO_REQUEST: u8;
    const ECHO_REPLY: u8;
    /// ICMPv6's checksum covers the pseudo header; ICMPv4's does not.
    const ICMP_PSEUDO_HEADER: bool;
    const SRC_OFF: usize;
    const DST_OFF: usize;

    fn same(a: &Self::Addr, b: &Self::Addr) -> bool;
    /// Replaces the outer header's address at `off`, fixing every checksum that covers it.
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: Self::Addr,
        new: Self::Addr,
    ) -> Result<(), DropReason>;
    /// ICMP error types that quote the packet they are about.
    fn is_icmp_error(icmp_type: u8) -> bool;
    /// The packet an ICMP error quotes at `off`, if it is a well-formed header of this family.
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<Self::Addr>>, DropReason>;
    /// Replaces the quoted header's source address (the header starts at `off`), keeping the
    /// ICMP checksum at `icmp_csum_off` right.
    fn set_quoted_src(
        ctx: &TcContext,
        icmp_csum_off: usize,
        off: usize,
        old: Self::Addr,
        new: Self::Addr,
    ) -> Result<(), DropReason>;
}

pub struct V4;
pub struct V6;

const IPV4_CSUM_OFF: usize = EthHdr::LEN + 10;

impl Family for V4 {
    type Addr = [u8; 4];
    const ICMP: u8 = IPPROTO_ICMP;
    const ECHO_REQUEST: u8 = 8;
    const ECHO_REPLY: u8 = 0;
    const ICMP_PSEUDO_HEADER: bool = false;
    const SRC_OFF: usize = EthHdr::LEN + 12;
    const DST_OFF: usize = EthHdr::LEN + 16;

    #[inline(always)]
    fn same(a: &[u8; 4], b: &[u8; 4]) -> bool {
        a == b
    }

    #[inline(always)]
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
        );
        ctx.l3_csum_replace(IPV4_CSUM_OFF, from, to, 4)
            .map_err(|_| DropReason::Truncated)?;
        if l4.pseudo_header {
            let flags = u64::from(BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) | 4;
            ctx.l4_csum_replace(l4.csum_off, from, to, flags)
                .map_err(|_| DropReason::Truncated)?;
        }
        ctx.store(off, &new, 0).map_err(|_| DropReason::Truncated)
    }

    #[inline(always)]
    fn is_icmp_error(icmp_type: u8) -> bool {
        // Destination unreachable, time exceeded, parameter problem.
        matches!(icmp_type, 3 | 11 | 12)
    }

    #[inline(always)]
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<[u8; 4]>>, DropReason> {
        let inner: Ipv4Hdr = ctx.load(off).map_err(|_| DropReason::Truncated)?;
        if inner.vihl >> 4 != 4 || inner.vihl & 0x0f < 5 {
            return Ok(None);
        }
        Ok(Some(Packet::of_ipv4_at(&inner, off)))
    }

    /// The quoted header's own checksum is fixed for the new source; since that exactly
    /// compensates the address change inside the ICMP payload, the ICMP checksum stays.
    #[inline(always)]
    fn set_quoted_src(
        ctx: &TcContext,
        _icmp_csum_off: usize,
        off: usize,
        old: [u8; 4],
        new: [u8; 4],
    ) -> Result<(), DropReason> {
        let (from, to) = (
            u64::from(u32::from_ne_bytes(old)),
            u64::from(u32::from_ne_bytes(new)),
        );
        ctx.l3_csum_replace(off + 10, from, to, 4)
            .and_then(|()| ctx.store(off + 12, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }
}

impl Family for V6 {
    type Addr = [u8; 16];
    const ICMP: u8 = IPPROTO_ICMPV6;
    const ECHO_REQUEST: u8 = 128;
    const ECHO_REPLY: u8 = 129;
    const ICMP_PSEUDO_HEADER: bool = true;
    const SRC_OFF: usize = EthHdr::LEN + 8;
    const DST_OFF: usize = EthHdr::LEN + 24;

    #[inline(always)]
    fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
        ipv6::same(a, b)
    }

    /// IPv6 has no header checksum; every L4 checksum (ICMPv6's too) covers the addresses.
    #[inline(always)]
    fn set_addr(
        ctx: &TcContext,
        l4: &L4,
        off: usize,
        old: [u8; 16],
        new: [u8; 16],
    ) -> Result<(), DropReason> {
        let diff = addr_diff(&old, &new)?;
        let flags = u64::from(BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
        ctx.l4_csum_replace(l4.csum_off, 0, diff, flags)
            .and_then(|()| ctx.store(off, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }

    #[inline(always)]
    fn is_icmp_error(icmp_type: u8) -> bool {
        // Destination unreachable, packet too big, time exceeded, parameter problem.
        matches!(icmp_type, 1..=4)
    }

    #[inline(always)]
    fn quoted(ctx: &TcContext, off: usize) -> Result<Option<Packet<[u8; 16]>>, DropReason> {
        let inner: Ipv6Hdr = ctx.load(off).map_err(|_| DropReason::Truncated)?;
        if inner.vcf[0] >> 4 != 6 {
            return Ok(None);
        }
        Ok(Some(Packet::of_ipv6_at(&inner, off)))
    }

    /// No header checksum to compensate: the address change goes into the ICMPv6 checksum.
    #[inline(always)]
    fn set_quoted_src(
        ctx: &TcContext,
        icmp_csum_off: usize,
        off: usize,
        old: [u8; 16],
        new: [u8; 16],
    ) -> Result<(), DropReason> {
        let diff = addr_diff(&old, &new)?;
        ctx.l4_csum_replace(icmp_csum_off, 0, diff, 0)
            .and_then(|()| ctx.store(off + 8, &new, 0))
            .map_err(|_| DropReason::Truncated)
    }
}

/// The checksum difference of replacing `old` by `new`, for `l4_csum_replace` with size 0.
#[inline(always)]
fn addr_diff(old: &[u8; 16], new: &[u8; 16]) -> Result<u64, DropReason> {
    // SAFETY: both pointers are to 16-byte stack values the helper only reads.
    let diff = unsafe {
        bpf_csum_diff(
            old.as_ptr() as *mut u32,
            16,
            new.as_ptr() as *mut u32,
            16,
            0,
        )
    };
    u64::try_from(diff).map_err(|_| DropReason::Truncated)
}

/// Where a flow's identifiers and checksum sit in the frame.
pub struct L4 {
    pub proto: u8,
    /// ICMP echo: the identifier stands in for the local port, there is no remote port.
    pub echo: bool,
    /// Source port (destination port right after it); for ICMP echo, the identifier.
    pub ports_off: usize,
    pub csum_off: usize,
    /// TCP and UDP checksums cover the addresses (pseudo header); ICMPv4's does not.
    pseudo_header: bool,
    /// SCTP: its CRC32c covers the ports but not the addresses, and cannot be updated
    /// incrementally, so its ports can only be kept (addresses can be rewritten freely).
    crc32c: bool,
}

impl L4 {
    /// Locates TCP, UDP, SCTP or ICMP echo (of `echo_type`) in `packet`; anything else is not
    /// translatable.
    #[inline(always)]
    pub fn of<F: Family>(
        ctx: &TcContext,
        packet: &Packet<F::Addr>,
        echo_type: u8,
    ) -> Result<Self, DropReason> {
        let l4 = packet.l4_off;
        let (ports_off, csum_off, pseudo_header, echo) = match packet.proto {
            IPPROTO_TCP => (l4, l4 + 16, true, false),
            IPPROTO_UDP => (l4, l4 + 6, true, false),
            IPPROTO_SCTP => (l4, l4 + 8, false, false),
            proto if proto == F::ICMP => {
                let icmp_type: u8 = ctx.load(l4).map_err(|_| DropReason::Truncated)?;
                if icmp_type != echo_type {
                    return Err(DropReason::UnsupportedNat);
                }
                (l4 + 4, l4 + 2, F::ICMP_PSEUDO_HEADER, true)
            }
            _ => return Err(DropReason::UnsupportedNat),
        };
        Ok(Self {
            proto: packet.proto,
            echo,
            ports_off,
            csum_off,
            pseudo_header,
            crc32c: packet.proto == IPPROTO_SCTP,
        })
    }

    /// The ICMP error at `icmp_off` as the carrier of the packet it quotes, whose port (or echo
    /// identifier) sits at `ports_off`: the quoted port lies inside the ICMP message, so it is
    /// the ICMP checksum that follows its rewrite, and the outer addresses'.
    #[inline(always)]
    pub fn icmp_error<F: Family>(icmp_off: usize, ports_off: usize) -> Self {
        Self {
            proto: F::ICMP,
            echo: false,
            ports_off,
            csum_off: icmp_off + 2,
            pseudo_header: F::ICMP_PSEUDO_HEADER,
            crc32c: false,
        }
    }

    /// (source port, destination port); ICMP echo: (identifier, 0).
    #[inline(always)]
    pub fn ports(&self, ctx: &TcContext) -> Result<([u8; 2], [u8; 2]), DropReason> {
        let src: [u8; 2] = ctx
            .load(self.ports_off)
            .map_err(|_| DropReason::Truncated)?;
        if self.echo {
            return Ok((src, [0; 2]));
        }
        let dst: [u8; 2] = ctx
            .load(self.ports_off + 2)
            .map_err(|_| DropReason::Truncated)?;
        Ok((src, dst))
    }

    /// Replaces the port (or ICMP identifier) at `port_off`, fixing the L4 checksum.
    #[inline(always)]
    pub fn set_port(
        &self,
        ctx: &TcContext,
        port_off: usize,
        old: [u8; 2],
        new: [u8; 2],
    ) -> Result<(), DropReason> {
        if old == new {
            return Ok(());
        }
        if self.crc32c {
            return Err(DropReason::UnsupportedNat);
        }
        let (from, to) = (
            u64::from(u16::from_ne_bytes(old)),
            u64::from(u16::from_ne_bytes(new)),
        );
        ctx.l4_csum_replace(self.csum_off, from, to, u64::from(BPF_F_MARK_MANGLED_0) | 2)
            .map_err(|_| DropReason::Truncated)?;
        ctx.store(port_off, &new, 0)
            .map_err(|_| DropReason::Truncated)
    }
}
