//! Published ports in the `PUBLISHED` (IPv4 host addresses) and `PUBLISHED6` (IPv6) LPM
//! tries: a range of host ports becomes the few port prefixes that cover it exactly, each
//! pointing at the same [`Published`] value.

use std::{collections::HashSet, hash::Hash, net::IpAddr, ops::RangeInclusive};

use anyhow::{Context as _, bail};
use aya::{
    Pod,
    maps::{
        MapData,
        lpm_trie::{Key, LpmTrie},
    },
};
use xnet_common::{PUBLISH_PREFIX_FIXED_BITS, PUBLISH6_PREFIX_FIXED_BITS, PublishKey, Published};

use super::{maps::Datapath, object::ignore_missing};

/// One published range as the datapath stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishEntry {
    /// IPPROTO_TCP, IPPROTO_UDP or IPPROTO_SCTP.
    pub proto: u8,
    /// The host address it is bound to; 0.0.0.0 (`::`) for every address of its family.
    pub host_ip: IpAddr,
    pub host_ports: RangeInclusive<u16>,
    /// The container's address of the same family.
    pub container_ip: IpAddr,
    /// The container port the range's first host port leads to.
    pub container_port_first: u16,
    /// The container endpoint's host-side veth.
    pub ifindex: u32,
}

/// A published range in the trie of one family: its keys and their value.
type TrieEntry<A> = (Vec<Key<PublishKey<A>>>, Published<A>);

impl PublishEntry {
    /// The trie keys of this range, for host address `addr` (`fixed_bits` before the port).
    fn keys<A: Copy>(&self, addr: A, fixed_bits: u32) -> Vec<Key<PublishKey<A>>>
    where
        PublishKey<A>: Pod,
    {
        port_prefixes(self.host_ports.clone())
            .into_iter()
            .map(|(port, bits)| {
                Key::new(
                    fixed_bits + bits,
                    PublishKey {
                        proto: self.proto,
                        addr,
                        port: port.to_be_bytes(),
                        _pad: 0,
                    },
                )
            })
            .collect()
    }

    /// What each of the range's keys points at, for container address `container_ip`.
    fn value<A>(&self, container_ip: A) -> Published<A> {
        Published {
            ifindex: self.ifindex,
            container_ip,
            host_port_first: *self.host_ports.start(),
            container_port_first: self.container_port_first,
        }
    }

    /// The entry for `PUBLISHED`, if its host address is IPv4.
    pub fn ipv4(&self) -> anyhow::Result<Option<TrieEntry<[u8; 4]>>> {
        match (self.host_ip, self.container_ip) {
            (IpAddr::V4(host), IpAddr::V4(container)) => Ok(Some((
                self.keys(host.octets(), PUBLISH_PREFIX_FIXED_BITS),
                self.value(container.octets()),
            ))),
            (IpAddr::V4(_), IpAddr::V6(_)) => bail!("{self:?}: IPv4 host address, IPv6 container"),
            (IpAddr::V6(_), _) => Ok(None),
        }
    }

    /// The entry for `PUBLISHED6`, if its host address is IPv6.
    pub fn ipv6(&self) -> anyhow::Result<Option<TrieEntry<[u8; 16]>>> {
        match (self.host_ip, self.container_ip) {
            (IpAddr::V6(host), IpAddr::V6(container)) => Ok(Some((
                self.keys(host.octets(), PUBLISH6_PREFIX_FIXED_BITS),
                self.value(container.octets()),
            ))),
            (IpAddr::V6(_), IpAddr::V4(_)) => bail!("{self:?}: IPv6 host address, IPv4 container"),
            (IpAddr::V4(_), _) => Ok(None),
        }
    }
}

impl Datapath {
    /// Publishes a range (idempotent: the same range again rewrites the same keys).
    pub fn publish(&mut self, entry: &PublishEntry) -> anyhow::Result<()> {
        if let Some((keys, value)) = entry.ipv4()? {
            insert_all(&mut self.published, &keys, value).context("writing PUBLISHED")?;
        }
        if let Some((keys, value)) = entry.ipv6()? {
            insert_all(&mut self.published6, &keys, value).context("writing PUBLISHED6")?;
        }
        Ok(())
    }

    /// Withdraws a range; keys already gone are fine.
    pub fn unpublish(&mut self, entry: &PublishEntry) -> anyhow::Result<()> {
        if let Some((keys, _)) = entry.ipv4()? {
            remove_all(&mut self.published, &keys).context("removing from PUBLISHED")?;
        }
        if let Some((keys, _)) = entry.ipv6()? {
            remove_all(&mut self.published6, &keys).context("removing from PUBLISHED6")?;
        }
        Ok(())
    }

    /// Makes the tries hold exactly `entries`: each is (re)written, and keys that none of them
    /// makes (a container removed while the daemon was down) are removed.
    pub fn reconcile_published(&mut self, entries: &[PublishEntry]) -> anyhow::Result<()> {
        let (mut wanted4, mut wanted6) = (Vec::new(), Vec::new());
        for entry in entries {
            self.publish(entry)?;
            wanted4.extend(entry.ipv4()?.map(|(keys, _)| keys).unwrap_or_default());
            wanted6.extend(entry.ipv6()?.map(|(keys, _)| keys).unwrap_or_default());
        }
        keep_only(&mut self.published, &wanted4).context("reconciling PUBLISHED")?;
        keep_only(&mut self.published6, &wanted6).context("reconciling PUBLISHED6")
    }
}

fn insert_all<K: Pod, V: Pod>(
    trie: &mut LpmTrie<MapData, K, V>,
    keys: &[Key<K>],
    value: V,
) -> anyhow::Result<()> {
    for key in keys {
        trie.insert(key, value, 0)?;
    }
    Ok(())
}

fn remove_all<K: Pod, V: Pod>(
    trie: &mut LpmTrie<MapData, K, V>,
    keys: &[Key<K>],
) -> anyhow::Result<()> {
    for key in keys {
        ignore_missing(trie.remove(key))?;
    }
    Ok(())
}

/// Removes every key of `trie` that is not in `wanted`.
fn keep_only<K: Pod + Eq + Hash, V: Pod>(
    trie: &mut LpmTrie<MapData, K, V>,
    wanted: &[Key<K>],
) -> anyhow::Result<()> {
    let wanted: HashSet<(u32, K)> = wanted.iter().map(|k| (k.prefix_len(), k.data())).collect();
    let stale: Vec<Key<K>> = trie
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
        .collect();
    remove_all(trie, &stale)
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
