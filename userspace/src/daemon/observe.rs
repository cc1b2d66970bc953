//! What `xnetd --metrics-addr` shows, read at one moment under the lock: the counters of
//! `xnet stats`, how full each map is, and in a cluster whether its store answers and which
//! other hosts this host sends overlay traffic to.

use std::net::Ipv4Addr;

use tracing::warn;

use super::inner::Inner;
use crate::{api::types::StatsReport, datapath::MapFill};

pub struct Observation {
    pub stats: StatsReport,
    /// Every growing map's fill level; empty if they could not be read (said in the log).
    pub maps: Vec<MapFill>,
    /// In a cluster: whether its store answers.
    pub store_up: Option<bool>,
    /// The other live hosts of the cluster, this host's overlay peers.
    pub peers: Vec<Peer>,
}

pub struct Peer {
    pub name: String,
    pub address: Ipv4Addr,
    /// Whether the encryption worker holds its key, so encrypted overlays reach it.
    pub keyed: bool,
}

impl Inner {
    /// Completes `stats` (read a moment before) into an observation.
    pub(crate) fn observe(&self, stats: StatsReport) -> Observation {
        let maps = self.kernel.datapath.fill().unwrap_or_else(|e| {
            warn!("reading the maps' fill levels: {e:#}");
            Vec::new()
        });
        let cluster = self.cluster.as_ref();
        let keyed = cluster
            .and_then(|c| c.encryption.as_ref())
            .map(|w| w.peers())
            .unwrap_or_default();
        let peers = cluster
            .map(|c| {
                c.view
                    .hosts()
                    .filter(|h| h.id != c.host.id)
                    .map(|h| Peer {
                        name: h.name.clone(),
                        address: h.address,
                        keyed: keyed.contains(&h.address),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Observation {
            stats,
            maps,
            store_up: cluster.map(|c| c.store.is_some()),
            peers,
        }
    }
}
