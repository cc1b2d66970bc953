//! The encrypted overlay's side of the datapath: which hosts the encryption worker can seal
//! for (`ENCRYPTION_PEERS`: underlay address → the worker's device), and the program on that
//! device (`decrypted_ingress`). Neither outlives xnetd: the device goes with the worker's
//! descriptors and the program's link with xnetd's, so this link is not pinned, and the map is
//! emptied on start until the new worker says whom it can seal for.

use std::{collections::BTreeSet, net::Ipv4Addr};

use anyhow::Context as _;
use aya::programs::TcAttachType;
use xnet_common::PROG_DECRYPTED_INGRESS;

use super::{
    maps::Datapath,
    object::{classifier, ignore_missing},
};

impl Datapath {
    /// Makes `ENCRYPTION_PEERS` exactly `peers`, each to the worker's device `ifindex`.
    /// Removals first: a host that is no peer any more is never sealed for.
    pub fn set_encryption_peers(
        &mut self,
        ifindex: u32,
        peers: &BTreeSet<Ipv4Addr>,
    ) -> anyhow::Result<()> {
        self.remove_encryption_peers(|address, device| {
            device != ifindex || !peers.contains(&address)
        })?;
        for peer in peers {
            self.encryption_peers
                .insert(peer.octets(), ifindex, 0)
                .context("writing ENCRYPTION_PEERS")?;
        }
        Ok(())
    }

    /// Forgets every host the datapath could seal for (a previous worker's, on start).
    pub fn clear_encryption_peers(&mut self) -> anyhow::Result<()> {
        self.remove_encryption_peers(|_, _| true)
    }

    /// Removes the entries (host, device) for which `stale` says so.
    fn remove_encryption_peers(
        &mut self,
        stale: impl Fn(Ipv4Addr, u32) -> bool,
    ) -> anyhow::Result<()> {
        let gone: Vec<[u8; 4]> = self
            .encryption_peers
            .iter()
            .filter_map(Result::ok)
            .filter(|(address, device)| stale(Ipv4Addr::from(*address), *device))
            .map(|(address, _)| address)
            .collect();
        for address in &gone {
            ignore_missing(self.encryption_peers.remove(address))
                .context("removing from ENCRYPTION_PEERS")?;
        }
        Ok(())
    }

    /// The hosts the datapath seals for, ordered.
    pub fn encryption_peers(&self) -> Vec<Ipv4Addr> {
        let mut peers: Vec<_> = self
            .encryption_peers
            .keys()
            .filter_map(Result::ok)
            .map(Ipv4Addr::from)
            .collect();
        peers.sort();
        peers
    }

    /// Attaches `decrypted_ingress` to the worker's device `ifname`, for as long as xnetd
    /// runs (the link is the program's, not pinned).
    pub fn attach_decrypted_ingress(&mut self, ifname: &str) -> anyhow::Result<()> {
        classifier(&mut self.ebpf, PROG_DECRYPTED_INGRESS)?
            .attach(ifname, TcAttachType::Ingress)
            .with_context(|| format!("attaching {PROG_DECRYPTED_INGRESS} to {ifname}"))?;
        Ok(())
    }
}
