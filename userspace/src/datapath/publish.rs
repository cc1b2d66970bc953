//! Published ports in the `PUBLISHED` LPM trie: a range of host ports becomes the few port
//! prefixes that cover it exactly, each pointing at the same [`Published`] value.

use std::{net::Ipv4Addr, ops::RangeInclusive};

use anyhow::Context as _;
use aya::maps::lpm_trie::Key;
use xnet_common::{PUBLISH_PREFIX_FIXED_BITS, PublishKey, Published};

use super::{Datapath, ignore_missing};

/// One published range as the datapath stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishEntry {
    /// IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP.
    pub proto: u8,
    /// The host address it is bound to; 0.0.0.0 for every address.
    pub host_ip: Ipv4Addr,
    pub host_ports: RangeInclusive<u16>,
    pub container_ip: Ipv4Addr,
    /// The container port the range's first host port leads to.
    pub container_port_first: u16,
    /// The container endpoint's host-side veth.
    pub ifindex: u32,
}

impl PublishEntry {
    /// The trie keys of this range.
    pub fn keys(&self) -> Vec<Key<PublishKey>> {
        port_prefixes(self.host_ports.clone())
            .into_iter()
            .map(|(port, bits)| {
                Key::new(
                    PUBLISH_PREFIX_FIXED_BITS + bits,
                    PublishKey {
                        proto: self.proto,
                        addr: self.host_ip.octets(),
                        port: port.to_be_bytes(),
                        _pad: 0,
                    },
                )
            })
            .collect()
    }

    /// What each of the range's keys points at.
    pub fn value(&self) -> Published {
        Published {
            ifindex: self.ifindex,
            container_ip: self.container_ip.octets(),
            host_port_first: *self.host_ports.start(),
            container_port_first: self.container_port_first,
        }
    }
}

impl Datapath {
    /// Publishes a range (idempotent: the same range again rewrites the same keys).
    pub fn publish(&mut self, entry: &PublishEntry) -> anyhow::Result<()> {
        let value = entry.value();
        for key in entry.keys() {
            self.published
                .insert(&key, value, 0)
                .context("writing PUBLISHED")?;
        }
        Ok(())
    }

    /// Withdraws a range; keys already gone are fine.
    pub fn unpublish(&mut self, entry: &PublishEntry) -> anyhow::Result<()> {
        for key in entry.keys() {
            self.remove_published(&key)?;
        }
        Ok(())
    }

    /// Every key in the trie (to reconcile with the state).
    pub fn published_keys(&self) -> Vec<Key<PublishKey>> {
        self.published.keys().filter_map(Result::ok).collect()
    }

    pub fn remove_published(&mut self, key: &Key<PublishKey>) -> anyhow::Result<()> {
        ignore_missing(self.published.remove(key)).context("removing from PUBLISHED")
    }
}

/// The aligned port blocks, as (first port, prefix length in bits of the 16), that cover
/// `range` exactly: at most 30 for any range, one for a single port.
pub fn port_prefixes(range: RangeInclusive<u16>) -> Vec<(u16, u32)> {
    let (mut first, last) = (u32::from(*range.start()), u32::from(*range.end()));
    let mut prefixes = Vec::new();
    while first <= last {
        // The largest block aligned at `first` (its lowest set bit) that does not pass `last`.
        let mut size = if first == 0 {
            1 << 16
        } else {
            first & first.wrapping_neg()
        };
        while first + size - 1 > last {
            size >>= 1;
        }
        prefixes.push((first as u16, 16 - size.trailing_zeros()));
        first += size;
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expands prefixes back into the ports they cover.
    fn covered(prefixes: &[(u16, u32)]) -> Vec<u32> {
        prefixes
            .iter()
            .flat_map(|&(first, bits)| {
                let first = u32::from(first);
                first..first + (1 << (16 - bits))
            })
            .collect()
    }

    #[test]
    fn ranges_become_few_exact_prefixes() {
        assert_eq!(port_prefixes(80..=80), vec![(80, 16)]);
        assert_eq!(port_prefixes(8080..=8081), vec![(8080, 15)]);
        assert_eq!(port_prefixes(0..=u16::MAX), vec![(0, 0)]);
        for (first, last) in [(10000, 19999), (1, 65535), (7, 9), (61000, 65535), (3, 3)] {
            let prefixes = port_prefixes(first..=last);
            assert_eq!(
                covered(&prefixes),
                (u32::from(first)..=u32::from(last)).collect::<Vec<_>>(),
                "{first}-{last}"
            );
            assert!(prefixes.len() <= 30, "{first}-{last}: {}", prefixes.len());
        }
    }
}
