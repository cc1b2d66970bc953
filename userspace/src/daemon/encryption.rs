//! Encrypted overlays on this host: the encryption worker's peers, and the datapath's list of
//! hosts it may hand packets to the worker for, both from the cluster's view of live hosts
//! and their public keys. A host without a usable key gets nothing from this host's encrypted
//! networks (dropped, `unencrypted`), and the log says so.

use std::net::Ipv4Addr;

use boringtun::x25519::PublicKey;
use tracing::warn;

use super::inner::Inner;
use crate::state::host_key::parse_public;

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
        let (_, ifindex) = worker.device();
        self.kernel.datapath.set_encryption_peers(ifindex, &peers)
    }
}
