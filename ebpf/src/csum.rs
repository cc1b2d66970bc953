//! Internet checksum arithmetic. Incremental updates (RFC 1624), for XDP, which has no
//! checksum helpers: when some 16-bit words a checksum covers change, the checksum follows
//! without reading the rest of the data. Words are taken in the packet's byte order, as they
//! sit in memory; the one's complement sum does not depend on byte order as long as every word
//! is read alike. And the final fold of a sum into the checksum field, for every program that
//! sums words itself.

/// The 16-bit words of a 4-byte field (an IPv4 address).
#[inline(always)]
pub fn words4(bytes: [u8; 4]) -> [u16; 2] {
    [
        u16::from_ne_bytes([bytes[0], bytes[1]]),
        u16::from_ne_bytes([bytes[2], bytes[3]]),
    ]
}

/// The 16-bit words of a 16-byte field (an IPv6 address).
#[inline(always)]
pub fn words16(bytes: [u8; 16]) -> [u16; 8] {
    let word = |i: usize| u16::from_ne_bytes([bytes[i], bytes[i + 1]]);
    [
        word(0),
        word(2),
        word(4),
        word(6),
        word(8),
        word(10),
        word(12),
        word(14),
    ]
}

/// The word of a 2-byte field (a port, a checksum).
#[inline(always)]
pub fn word(bytes: [u8; 2]) -> u16 {
    u16::from_ne_bytes(bytes)
}

/// `check` (as stored in the packet) after the covered words `old` became `new`:
/// HC' = ~(~HC + ~m + m'), RFC 1624 equation 3.
#[inline(always)]
pub fn update<const N: usize>(check: [u8; 2], old: [u16; N], new: [u16; N]) -> [u8; 2] {
    let mut sum = u32::from(!word(check));
    let mut i = 0;
    while i < N {
        sum += u32::from(!old[i]) + u32::from(new[i]);
        i += 1;
    }
    fold(sum).to_ne_bytes()
}

/// The checksum field for `sum`, a 32-bit one's complement sum of at most a few dozen 16-bit
/// words (or a `bpf_csum_diff` result): folded into 16 bits and complemented, in the byte
/// order the words were read in.
#[inline(always)]
pub fn fold(sum: u32) -> u16 {
    // Two folds bring any such sum back into 16 bits.
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
