//! Endpoints on networks of global scope, as the cluster shares them. This host registers
//! its own in the store (addresses claimed and record written in one transaction, under its
//! lease) and turns every other host's into remote entries of its datapath: the endpoint's
//! addresses and MAC, the VTEP of its host, the VNI of its network. Hosts are VTEPs while
//! their lease lives; when one dies, etcd drops its keys and every host forgets its endpoints.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use etcd_client::Event;
use tracing::{info, warn};
use xnet_common::MAX_FLOOD_VTEPS;

use super::{
    endpoints::StaticIps,
    inner::Inner,
    remotes::{self, Remotes, mirrored},
};
use crate::{
    api::types::Peer,
    cluster::{
        endpoints::AddressRequest,
        keys,
        records::EndpointRecord,
        store::{Store, unavailable},
        view::Change,
    },
    datapath::{Datapath, FloodSet, RemoteEndpoint},
    encryption::worker::SEALING_OVERHEAD,
    error::{Result, XnetError},
    state::{Endpoint, Mac, Network, ids::random_id},
};

/// What VXLAN over IPv4 adds to a frame: outer Ethernet (14), IPv4 (20), UDP (8), VXLAN (8).
/// An overlay's default MTU is the underlay's less this.
pub const VXLAN_OVERHEAD: u32 = 50;

impl Inner {
    /// A new endpoint on a network of global scope: addresses claimed cluster-wide and its
    /// record written in one transaction under this host's lease (refused in one line while
    /// the store does not answer), a random MAC.
    pub(super) async fn new_global_endpoint(
        &self,
        net: &Network,
        ips: StaticIps<'_>,
        ifname: String,
        container: &str,
    ) -> Result<Endpoint> {
        if net.ipv6.is_none() && ips.ipv6.is_some() {
            return Err(XnetError::invalid(format!(
                "--ip6 needs IPv6: network {} was created without --ipv6",
                net.name
            )));
        }
        let (mut store, _) = self.cluster_store(&net.driver)?;
        let (host, lease) = self.membership()?;
        let mut record = EndpointRecord {
            id: random_id()?,
            network: net.id.clone(),
            host,
            container: container.to_string(),
            ipv4: std::net::Ipv4Addr::UNSPECIFIED,
            ipv6: None,
            mac: Mac::random()?,
        };
        let request = AddressRequest {
            ipv4: &net.ipv4,
            ipv6: net.ipv6.as_ref(),
            requested4: ips.ipv4,
            requested6: ips.ipv6,
        };
        store.register_endpoint(&mut record, request, lease).await?;
        Ok(Endpoint {
            static_ipv4: ips.ipv4.is_some(),
            static_ipv6: ips.ipv6.is_some(),
            mac: record.mac,
            ..self.unplumbed_endpoint(record.id, net, record.ipv4, record.ipv6, ifname)?
        })
    }

    /// Takes endpoint `endpoint_id` of this host, with its `addresses`, out of the store.
    /// Best effort: when the store does not answer, the endpoint goes here anyway, and what is
    /// left of it in the store (under this host's lease) is removed when this host joins
    /// again.
    pub(crate) async fn withdraw_global_endpoint(
        &self,
        net: &Network,
        endpoint_id: &str,
        addresses: &[IpAddr],
    ) {
        let Some(Ok((mut store, _))) = self
            .cluster
            .as_ref()
            .map(|_| self.cluster_store(&net.driver))
        else {
            warn!(network = %net.name, endpoint = %endpoint_id, "not withdrawn from the cluster store now; when this host joins again");
            return;
        };
        if let Err(e) = store
            .withdraw_endpoint(&net.id, endpoint_id, addresses)
            .await
        {
            warn!(network = %net.name, endpoint = %endpoint_id, "withdrawing from the cluster store: {e}; done when this host joins again");
        }
    }

    /// This host's id and lease; the lease is known once it joined.
    pub(crate) fn membership(&self) -> Result<(String, i64)> {
        let membership = self.state.cluster.as_ref();
        match membership.and_then(|m| m.lease.map(|lease| (m.host_id.clone(), lease))) {
            Some(known) => Ok(known),
            None => Err(unavailable(
                &self
                    .cluster
                    .as_ref()
                    .map_or(String::new(), |c| c.config.endpoints.join(",")),
                "this host has not joined yet",
            )),
        }
    }

    /// After joining: what the store holds under this host's `lease` that the state does not
    /// (a request that died with the daemon, a removal while the store did not answer) is
    /// removed; every endpoint the state has is put (back) under the lease, in case the lease
    /// expired meanwhile. An address another host took in between is said in the log.
    pub(super) async fn restore_own_endpoints(&self, store: &mut Store, lease: i64) -> Result<()> {
        let records = self.own_endpoint_records();
        // Addresses xnet's IPAM reserved for Docker endpoints to come are this host's too.
        let ids: BTreeSet<&str> = records
            .iter()
            .map(|r| r.id.as_str())
            .chain(self.state.docker_reservations.values().map(String::as_str))
            .collect();
        let stale: Vec<String> = store
            .keys_under_lease(lease)
            .await?
            .into_iter()
            .filter(|(key, value)| {
                let endpoint = match key.starts_with(keys::ENDPOINTS) {
                    true => key.rsplit('/').next().unwrap_or_default(),
                    false => value.as_str(),
                };
                !ids.contains(endpoint)
            })
            .map(|(key, _)| key)
            .collect();
        if !stale.is_empty() {
            info!(
                keys = stale.len(),
                "removing this host's keys that no endpoint owns from the cluster store"
            );
        }
        store.delete_keys(stale).await?;
        for record in &records {
            if !store.restore_endpoint(record, lease).await? {
                warn!(
                    endpoint = %record.id,
                    container = %record.container,
                    "an address of the endpoint was taken by another host while this host was out of the cluster"
                );
            }
        }
        Ok(())
    }

    /// The cluster's records of this host's endpoints on networks of global scope: those of
    /// its containers, and Docker's endpoints created on them and not joined yet.
    fn own_endpoint_records(&self) -> Vec<EndpointRecord> {
        let Some(membership) = &self.state.cluster else {
            return Vec::new();
        };
        let record = |id: &str, net: &Network, container: &str, ipv4, ipv6, mac| EndpointRecord {
            id: id.to_string(),
            network: net.id.clone(),
            host: membership.host_id.clone(),
            container: container.to_string(),
            ipv4,
            ipv6,
            mac,
        };
        let joined = self
            .state
            .containers
            .values()
            .flat_map(|c| c.endpoints.iter().map(move |e| (c, e)))
            .filter_map(|(c, e)| {
                let net = self
                    .state
                    .networks
                    .get(&e.network)
                    .filter(|n| n.vni.is_some())?;
                Some(record(&e.id, net, &c.name, e.ipv4, e.ipv6, e.mac))
            });
        let unjoined = self
            .state
            .docker_endpoints
            .iter()
            .filter(|(id, _)| self.state.joined_endpoint(id).is_none())
            .filter_map(|(id, e)| {
                let net = self.state.network_by_id(&e.network_id).ok()?;
                net.vni?;
                Some(record(id, net, id, e.ipv4, e.ipv6, e.mac))
            });
        joined.chain(unjoined).collect()
    }

    /// Makes the datapath's remote endpoints and VTEPs those of the view (see
    /// [`Remotes`]), against what the maps hold: after joining, and when the networks this
    /// host mirrors changed. Only the differences are written.
    pub(super) fn resync_remote_endpoints(&mut self) -> anyhow::Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let datapath = &mut self.kernel.datapath;
        let have: BTreeSet<RemoteEndpoint> = datapath.remote_endpoints().into_iter().collect();
        let networks = mirrored(self.state.networks.values());
        let remotes = Remotes {
            me: &cluster.host.id,
            view: &cluster.view,
            networks: &networks,
        };
        remotes::write(datapath, &remotes.resync(&have, &datapath.vteps()))?;
        let wanted = networks
            .keys()
            .filter_map(|network| remotes.flood_set(network))
            .collect();
        sync_flood_sets(datapath, wanted, Prune::Others)?;
        self.sync_encryption_peers()
    }

    /// Applies the store's `events` to the view, and what each changed to the datapath at
    /// once: a watch event costs the writes of the one endpoint or host it is about, not a
    /// pass over every endpoint of the cluster.
    pub(super) fn follow_remote_endpoints(&mut self, events: &[Event]) -> anyhow::Result<()> {
        let Some(cluster) = self.cluster.as_mut() else {
            return Ok(());
        };
        let networks = mirrored(self.state.networks.values());
        let mut touched = BTreeSet::new();
        let mut hosts_changed = false;
        for event in events {
            let change = cluster.view.apply(event);
            hosts_changed |= matches!(change, Change::Host { .. });
            let remotes = Remotes {
                me: &cluster.host.id,
                view: &cluster.view,
                networks: &networks,
            };
            remotes::write(&mut self.kernel.datapath, &remotes.follow(&change))?;
            touched.extend(remotes.touched(&change));
        }
        // Flood sets once per batch, for the networks its changes were about (none for a
        // batch of address claims alone, which need no read of the flood map).
        if !touched.is_empty() {
            let remotes = Remotes {
                me: &cluster.host.id,
                view: &cluster.view,
                networks: &networks,
            };
            let wanted = touched
                .iter()
                .filter_map(|network| remotes.flood_set(network))
                .collect();
            sync_flood_sets(&mut self.kernel.datapath, wanted, Prune::None)?;
        }
        // A host came, went or changed its key: the worker's sessions follow.
        if hosts_changed {
            self.sync_encryption_peers()?;
        }
        Ok(())
    }

    /// Docker's `Peers` of an overlay network: the hosts with endpoints on it, this one
    /// included when it has some.
    pub(super) fn peers(&self, net: &Network) -> Option<Vec<Peer>> {
        let cluster = self.cluster.as_ref().filter(|_| net.vni.is_some())?;
        let local = self.state.endpoints_on(&net.name).next().is_some();
        let peers = cluster
            .view
            .hosts_on(&net.id)
            .filter(|h| h.id != cluster.host.id)
            .chain(local.then_some(&cluster.host))
            .map(|h| Peer {
                name: h.name.clone(),
                ip: h.address.to_string(),
            })
            .collect();
        Some(peers)
    }

    /// The MTU of an overlay network's endpoints on this host when none was asked for: the
    /// underlay's less VXLAN's overhead, and less WireGuard's too for an encrypted network.
    pub(super) fn overlay_mtu(&self, net: &Network) -> Option<u32> {
        let underlay = &self.cluster.as_ref()?.underlay;
        let encryption = if net.is_encrypted() {
            SEALING_OVERHEAD
        } else {
            0
        };
        Some(underlay.mtu.saturating_sub(VXLAN_OVERHEAD + encryption))
    }
}

/// Which flood sets [`sync_flood_sets`] removes besides those wanted empty.
enum Prune {
    /// Also those of every network not wanted (a resync: `wanted` has every network).
    Others,
    /// No others (following: `wanted` has the networks that changed).
    None,
}

/// Makes the datapath's flood sets (where each overlay network's broadcasts and multicasts are
/// replicated to: every other live host with endpoints on it) those of `wanted`, by datapath
/// network id; a network without such hosts has no entry. Only differences are written.
fn sync_flood_sets(
    datapath: &mut Datapath,
    wanted: BTreeMap<u32, FloodSet>,
    prune: Prune,
) -> anyhow::Result<()> {
    let current = datapath.flood_sets();
    if let Prune::Others = prune {
        for network_id in current.keys().filter(|id| !wanted.contains_key(id)) {
            datapath.remove_flood(*network_id)?;
        }
    }
    for (network_id, all) in wanted {
        // The datapath's fan-out is a bounded loop: the hosts past its bound (the highest
        // addresses) miss this network's broadcasts, which the log says when it changes.
        let set = FloodSet {
            vni: all.vni,
            vteps: all
                .vteps
                .iter()
                .copied()
                .take(MAX_FLOOD_VTEPS as usize)
                .collect(),
        };
        match current.get(&network_id) {
            Some(now) if *now == set => continue,
            None if set.vteps.is_empty() => continue,
            _ => {}
        }
        if set.vteps.len() < all.vteps.len() {
            warn!(
                vni = all.vni,
                hosts = all.vteps.len(),
                "broadcasts and multicasts of the overlay network reach only {MAX_FLOOD_VTEPS} of its other hosts"
            );
        }
        datapath.set_flood(network_id, &set)?;
    }
    Ok(())
}
