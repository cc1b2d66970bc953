//! Encrypted overlays on this host: the encryption worker's peers, and the datapath's list of
//! hosts it may hand packets to the worker for, both from the cluster's view of live hosts
//! and their public keys. A host without a usable key gets nothing from this host's encrypted
//! networks (dropped, `unencrypted`), and the log says so.

use std::net::Ipv4Addr;

use boringtun::x25519::PublicKey;
use tracing::warn;

use super::inner::Inner;
use crate::state::{Network, host_key::parse_public};

impl Inner {
    /// Makes the worker's peers the other live hosts of the view that have a public key, then
    /// `ENCRYPTION_PEERS` those hosts (the worker first: the datapath never hands it a packet
    /// for a host it has no session for). Without a worker, `ENCRYPTION_PEERS` stays empty.
    pub(super) fn sync_encryption_peers(&mut self) -> anyhow::Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let Some(worker) = &cluster.encryption else {
            return Ok(());
        };
        let mut wanted: Vec<(Ipv4Addr, PublicKey)> = Vec::new();
        for host in cluster.view.hosts().filter(|h| h.id != cluster.host.id) {
            match parse_public(&host.public_key) {
                Some(key) => wanted.push((host.address, key)),
                None => warn!(
                    host = %host.name,
                    address = %host.address,
                    "this host published no usable public key (an xnetd before encrypted overlays?): encrypted networks' traffic to it is dropped, counted as unencrypted"
                ),
            }
        }
        let peers = worker.set_peers(&wanted);
        let ifindex = worker.ifindex();
        self.kernel.datapath.set_encryption_peers(ifindex, &peers)
    }

    /// What `inspect` says of an encrypted overlay's encryption on this host: encrypting to
    /// every other host with endpoints on it, or which ones it cannot encrypt to and why.
    /// `None` for any other network.
    pub(super) fn encryption_status(&self, net: &Network) -> Option<String> {
        if !net.is_encrypted() {
            return None;
        }
        let cluster = self.cluster.as_ref()?;
        let Some(worker) = &cluster.encryption else {
            return Some(
                "not encrypting: the encryption worker did not start (xnetd's log says why); \
                 traffic to other hosts is dropped, counted as unencrypted"
                    .into(),
            );
        };
        let sealed = worker.peers();
        let others: Vec<_> = cluster
            .view
            .hosts_on(&net.id)
            .filter(|h| h.id != cluster.host.id)
            .collect();
        let missing: Vec<String> = others
            .iter()
            .filter(|h| !sealed.contains(&h.address))
            .map(|h| format!("{} ({})", h.name, h.address))
            .collect();
        Some(if missing.is_empty() {
            format!(
                "encrypting: WireGuard to {} other host(s) of the network",
                others.len()
            )
        } else {
            format!(
                "not encrypting to {}: no usable public key; traffic to them is dropped, \
                 counted as unencrypted",
                missing.join(", ")
            )
        })
    }
}
