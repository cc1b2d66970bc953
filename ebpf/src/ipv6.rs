//! IPv6 address tests. Written as two 64-bit compares: comparing `[u8; 16]` with `==` may
//! compile to a call to `memcmp`, which the BPF target does not have.

use xnet_common::{Endpoint, link_local_of};

/// Whether `src` may be the source of an IPv6 packet `endpoint` sent: its address, its
/// link-local address, or (duplicate-address probes and early multicast listener reports,
/// which go to groups only, `to_group`) the unspecified address.
#[inline(always)]
pub fn is_own_source(endpoint: &Endpoint, src: &[u8; 16], to_group: bool) -> bool {
    same(src, &endpoint.ipv6)
        || same(src, &link_local_of(endpoint.mac))
        || (to_group && is_unspecified(src))
}

/// `::1`.
pub const LOOPBACK: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Whether two IPv6 addresses are equal.
#[inline(always)]
pub fn same(a: &[u8; 16], b: &[u8; 16]) -> bool {
    halves(a) == halves(b)
}

/// `::`, the source of duplicate-address probes.
#[inline(always)]
pub fn is_unspecified(a: &[u8; 16]) -> bool {
    halves(a) == (0, 0)
}

/// fe80::/10: never leaves the link, so never egress.
#[inline(always)]
pub fn is_link_local(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

/// ff00::/8.
#[inline(always)]
pub fn is_multicast(a: &[u8; 16]) -> bool {
    a[0] == 0xff
}

#[inline(always)]
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let (high, low) = a.split_at(8);
    // Both halves are exactly 8 bytes, so the conversions cannot fail.
    (
        u64::from_ne_bytes(high.try_into().unwrap_or([0; 8])),
        u64::from_ne_bytes(low.try_into().unwrap_or([0; 8])),
    )
}
