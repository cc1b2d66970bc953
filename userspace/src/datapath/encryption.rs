//! The encrypted overlay's side of the datapath: which hosts the encryption worker can seal
//! for (`ENCRYPTION_PEERS`: underlay address → the worker's device), and the programs on that
//! device (`decrypted_xdp`, `decrypted_ingress`). Neither outlives xnetd: the device goes with
//! the worker's descriptors and the programs' links with xnetd's, so these links are not
//! pinned, and the map is emptied on start until the new worker says whom it can seal for.

use std::{collections::BTreeSet, net::Ipv4Addr};

use anyhow::Context as _;
use aya::programs::{TcAttachType, Xdp, XdpMode};
use xnet_common::{PROG_DECRYPTED_INGRESS, PROG_DECRYPTED_XDP};

use super::{
    maps::Datapath,
    object::{classifier, ignore_missing, one_line_load_error, program},
};

pub(super) fn load_xdp(ebpf: &mut aya::Ebpf) -> anyhow::Result<()> {
    program::<Xdp>(ebpf, PROG_DECRYPTED_XDP, "an XDP program")?
        .load()
        .map_err(|e| one_line_load_error(PROG_DECRYPTED_XDP, e))
}

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

    /// Attaches `decrypted_xdp` and `decrypted_ingress` to the worker's device `ifname`, for
    /// as long as xnetd runs (the links are the programs', not pinned).
    pub fn attach_decrypted(&mut self, ifname: &str) -> anyhow::Result<()> {
        program::<Xdp>(&mut self.ebpf, PROG_DECRYPTED_XDP, "an XDP program")?
            .attach(ifname, XdpMode::Default)
            .with_context(|| format!("attaching {PROG_DECRYPTED_XDP} to {ifname}"))?;
        classifier(&mut self.ebpf, PROG_DECRYPTED_INGRESS)?
            .attach(ifname, TcAttachType::Ingress)
            .with_context(|| format!("attaching {PROG_DECRYPTED_INGRESS} to {ifname}"))?;
        Ok(())
    }
}
