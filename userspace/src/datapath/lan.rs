//! LAN networks (macvlan, ipvlan) in the datapath: how each meets its LAN (`LAN_NETWORKS`),
//! the layer-2 network of each parent and VLAN (`LAN_PARENTS`), macvlan containers by MAC
//! (`LAN_MACS`), ipvlan l3 subnets (`LAN_SUBNETS`, `LAN_SUBNETS6`), and the parent devices'
//! tcx program (`parent_ingress`), pinned as `parent-<ifindex>` under the links directory and
//! detached when no LAN network uses the parent any more.

use std::{collections::HashSet, fs, path::PathBuf};

use anyhow::Context as _;
use aya::programs::{LinkOrder, TcAttachType};
use ipnet::IpNet;
use xnet_common::{LanMacKey, LanNetwork, LanParent, LanParentKey, Neighbor, PROG_PARENT_INGRESS};

use super::{
    maps::{Datapath, update_trie},
    object::{ignore_missing, remove_file_if_exists},
};

/// The prefix of a parent's link pin: `parent-<ifindex>`.
const PARENT_PIN_PREFIX: &str = "parent-";

impl Datapath {
    /// Describes LAN network `network_id` (`lan`): its layer-2 place on the parent (`layer2`)
    /// or, for ipvlan l3, its routed `subnets`.
    pub fn add_lan_network(
        &mut self,
        network_id: u32,
        lan: LanNetwork,
        layer2: bool,
        subnets: &[IpNet],
    ) -> anyhow::Result<()> {
        self.lan_networks
            .insert(network_id, lan, 0)
            .context("writing LAN_NETWORKS")?;
        if layer2 {
            // A parent device seen under two names (renamed, or an alternative name) is still
            // one parent: its VLAN takes one layer-2 network.
            if let Ok(other) = self.lan_parents.get(&parent_key(&lan), 0)
                && other.network_id != network_id
                && lan.parent != 0
            {
                anyhow::bail!("the parent device (and VLAN) is already another network's");
            }
            if lan.parent != 0 {
                let parent = LanParent {
                    network_id,
                    flags: lan.flags,
                    _pad: 0,
                    parent_mac: lan.parent_mac,
                };
                self.lan_parents
                    .insert(parent_key(&lan), parent, 0)
                    .context("writing LAN_PARENTS")?;
            }
        } else {
            for subnet in subnets {
                self.update_lan_subnet(*subnet, Some(network_id))?;
            }
        }
        Ok(())
    }

    /// Undoes [`Self::add_lan_network`], tolerating what is already gone, and detaches the
    /// parent's program if no other LAN network uses the parent.
    pub fn remove_lan_network(&mut self, network_id: u32, subnets: &[IpNet]) -> anyhow::Result<()> {
        let Ok(lan) = self.lan_networks.get(&network_id, 0) else {
            return Ok(());
        };
        let key = parent_key(&lan);
        if self.lan_parents.get(&key, 0).ok().map(|p| p.network_id) == Some(network_id) {
            ignore_missing(self.lan_parents.remove(&key)).context("removing from LAN_PARENTS")?;
        }
        for subnet in subnets {
            self.update_lan_subnet(*subnet, None)?;
        }
        ignore_missing(self.lan_networks.remove(&network_id))
            .context("removing from LAN_NETWORKS")?;
        if lan.parent != 0 && !self.lan_parent_in_use(lan.parent) {
            remove_file_if_exists(&self.parent_pin(lan.parent))?;
        }
        Ok(())
    }

    /// Attaches `parent_ingress` to parent `ifname` (`ifindex`), or adopts the pinned link.
    /// First among the hook's programs: it passes on (`TC_ACT_UNSPEC`) what is not a
    /// container's, where `uplink_ingress` (on a parent that is also the uplink) ends the
    /// chain with `TC_ACT_OK`.
    pub fn attach_parent(&mut self, ifname: &str, ifindex: u32) -> anyhow::Result<()> {
        let pin = self.parent_pin(ifindex);
        self.attach_ordered(
            PROG_PARENT_INGRESS,
            TcAttachType::Ingress,
            ifname,
            &pin,
            LinkOrder::first(),
        )
    }

    /// A macvlan container, found by its MAC on its network.
    pub fn add_lan_mac(
        &mut self,
        network_id: u32,
        mac: [u8; 6],
        container: Neighbor,
    ) -> anyhow::Result<()> {
        self.lan_macs
            .insert(mac_key(network_id, mac), container, 0)
            .context("writing LAN_MACS")
    }

    /// How many macvlan containers network `network_id` has.
    pub fn lan_macs_of(&self, network_id: u32) -> usize {
        self.lan_macs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.network_id == network_id)
            .count()
    }

    pub fn remove_lan_mac(&mut self, network_id: u32, mac: [u8; 6]) -> anyhow::Result<()> {
        ignore_missing(self.lan_macs.remove(&mac_key(network_id, mac)))
            .context("removing from LAN_MACS")
    }

    /// Removes what no LAN network or container of the state explains: entries of networks not
    /// in `networks`, MAC entries not in `macs`, and parent links of parents no network uses.
    pub fn prune_lan(
        &mut self,
        networks: &HashSet<u32>,
        macs: &HashSet<(u32, [u8; 6])>,
    ) -> anyhow::Result<()> {
        let stale: Vec<u32> = self
            .lan_networks
            .keys()
            .filter_map(Result::ok)
            .filter(|id| !networks.contains(id))
            .collect();
        let stale_subnets: Vec<IpNet> = self
            .lan_subnets()
            .into_iter()
            .filter(|(_, id)| !networks.contains(id))
            .map(|(subnet, _)| subnet)
            .collect();
        for id in stale {
            self.remove_lan_network(id, &[])?;
        }
        for subnet in stale_subnets {
            self.update_lan_subnet(subnet, None)?;
        }
        // Parent entries that no longer match their network's parent (a device made anew has
        // a new ifindex).
        let stale_parents: Vec<LanParentKey> = self
            .lan_parents
            .iter()
            .filter_map(Result::ok)
            .filter(|(key, parent)| {
                !self
                    .lan_networks
                    .get(&parent.network_id, 0)
                    .is_ok_and(|lan| parent_key(&lan) == *key)
            })
            .map(|(key, _)| key)
            .collect();
        for key in stale_parents {
            ignore_missing(self.lan_parents.remove(&key)).context("removing from LAN_PARENTS")?;
        }
        let stale_macs: Vec<LanMacKey> = self
            .lan_macs
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !macs.contains(&(k.network_id, k.mac)))
            .collect();
        for key in stale_macs {
            ignore_missing(self.lan_macs.remove(&key)).context("removing from LAN_MACS")?;
        }
        for (pin, ifindex) in self.parent_pins()? {
            if !self.lan_parent_in_use(ifindex) {
                remove_file_if_exists(&pin)?;
            }
        }
        Ok(())
    }

    /// Whether a LAN network still has `ifindex` as its parent.
    fn lan_parent_in_use(&self, ifindex: u32) -> bool {
        self.lan_networks
            .iter()
            .filter_map(Result::ok)
            .any(|(_, lan)| lan.parent == ifindex)
    }

    /// The ipvlan l3 subnets in the maps, with their networks.
    fn lan_subnets(&self) -> Vec<(IpNet, u32)> {
        let v4 = self
            .lan_subnets
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(key, id)| {
                let net = ipnet::Ipv4Net::new(key.data().into(), key.prefix_len() as u8).ok()?;
                Some((IpNet::V4(net), id))
            });
        let v6 = self
            .lan_subnets6
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(key, id)| {
                let net = ipnet::Ipv6Net::new(key.data().into(), key.prefix_len() as u8).ok()?;
                Some((IpNet::V6(net), id))
            });
        v4.chain(v6).collect()
    }

    fn update_lan_subnet(&mut self, subnet: IpNet, network_id: Option<u32>) -> anyhow::Result<()> {
        match subnet {
            IpNet::V4(s) => update_trie(
                &mut self.lan_subnets,
                s.network().octets(),
                s.prefix_len(),
                network_id,
            )
            .context("updating LAN_SUBNETS"),
            IpNet::V6(s) => update_trie(
                &mut self.lan_subnets6,
                s.network().octets(),
                s.prefix_len(),
                network_id,
            )
            .context("updating LAN_SUBNETS6"),
        }
    }

    fn parent_pin(&self, ifindex: u32) -> PathBuf {
        self.links_dir.join(format!("{PARENT_PIN_PREFIX}{ifindex}"))
    }

    /// The parents' link pins, with their ifindex.
    fn parent_pins(&self) -> anyhow::Result<Vec<(PathBuf, u32)>> {
        let mut pins = Vec::new();
        for entry in fs::read_dir(&self.links_dir)? {
            let path = entry?.path();
            let ifindex = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(PARENT_PIN_PREFIX))
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(ifindex) = ifindex {
                pins.push((path, ifindex));
            }
        }
        Ok(pins)
    }
}

fn parent_key(lan: &LanNetwork) -> LanParentKey {
    LanParentKey {
        ifindex: lan.parent,
        vlan: lan.vlan,
        _pad: [0; 2],
    }
}

fn mac_key(network_id: u32, mac: [u8; 6]) -> LanMacKey {
    LanMacKey {
        network_id,
        mac,
        _pad: [0; 2],
    }
}
