//! The one value every request works on, under the daemon's lock, and what all of them share:
//! persisting, recording kernel objects before they are made, finding a network's driver, and
//! keeping a network's member list in step.

use std::{collections::BTreeSet, path::PathBuf};

use tracing::warn;

use super::config::DockerConfig;
use crate::dns::DnsServers;
use crate::{
    cluster::{
        config::ClusterConfig,
        records::{HostRecord, Settings},
        store::Store as ClusterStore,
        view::ClusterView,
    },
    drivers::{self, Attachment, EndpointDriver, Kernel},
    encryption::EncryptionWorker,
    error::{Result, XnetError},
    state::{KernelObject, Network, State, Store},
};

pub(crate) struct Inner {
    pub(crate) state: State,
    pub(crate) store: Store,
    pub(crate) kernel: Kernel,
    /// Where container namespaces are pinned (beside the socket).
    pub(crate) netns_dir: PathBuf,
    /// The ports reserved from the ephemeral range by someone else (the admin) when the daemon
    /// started: kept whatever xnet publishes and withdraws (see `reserve_host_ports`).
    pub(crate) reserved_by_others: BTreeSet<u16>,
    /// Set when serving Docker's plugin protocol.
    pub(crate) docker: Option<DockerConfig>,
    /// Set with `--cluster-store`: this host's membership of a cluster.
    pub(crate) cluster: Option<Cluster>,
    /// The containers' embedded DNS servers, made to follow the state at every save.
    pub(crate) dns: DnsServers,
}

/// The cluster as the daemon holds it.
pub(crate) struct Cluster {
    pub(crate) config: ClusterConfig,
    pub(crate) host: HostRecord,
    /// The interface of the advertise address, where VXLAN leaves and arrives.
    pub(crate) underlay: Underlay,
    /// The store and the cluster's settings, once the store answered (and while it does).
    pub(crate) store: Option<(ClusterStore, Settings)>,
    /// The hosts and endpoints of the cluster as this host last read and followed them.
    pub(crate) view: ClusterView,
    /// The encryption worker of encrypted overlays; `None` if it could not start (said in
    /// the log: those networks' traffic between hosts is then dropped, `unencrypted`).
    pub(crate) encryption: Option<EncryptionWorker>,
}

/// The underlay interface.
pub(crate) struct Underlay {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) mtu: u32,
}

/// What a `--network` value names.
pub(crate) enum Target {
    /// A pre-defined network without a record (`host`, `none`): nothing to plumb.
    Recordless {
        name: &'static str,
        /// Its driver's name (`host`, `null`).
        driver: &'static str,
        /// `host`: the container shares the daemon's namespace; `none`: one of its own.
        host_namespace: bool,
    },
    /// A network with addresses and endpoints, and the driver that makes them.
    /// (Boxed: a network record is large beside the other variant.)
    Network(Box<Network>, &'static dyn EndpointDriver),
}

impl Inner {
    pub(crate) fn save(&self) -> anyhow::Result<()> {
        self.store.save(&self.state)?;
        self.dns.sync(&self.state);
        Ok(())
    }

    /// Records, durably, that a request is about to make `objects`: if the daemon dies before
    /// [`Self::settle`] and the request's last save, the next start removes them.
    pub(crate) fn begin(&mut self, objects: &[KernelObject]) -> anyhow::Result<()> {
        self.unsettle(objects);
        self.save()
    }

    /// Puts `objects` back in flight (once each): a request that settled them failed after
    /// all. Durable with the caller's next save.
    pub(crate) fn unsettle(&mut self, objects: &[KernelObject]) {
        for object in objects {
            if !self.state.in_flight.contains(object) {
                self.state.in_flight.push(object.clone());
            }
        }
    }

    /// `objects` are no longer in flight: a record owns them, or they are gone. Durable with
    /// the caller's next save.
    pub(crate) fn settle(&mut self, objects: &[KernelObject]) {
        self.state.in_flight.retain(|o| !objects.contains(o));
    }

    /// Settles the in-flight `objects` of a failed request once they were undone (`undone`
    /// is how that went), and saves; if undoing failed they stay in flight, for the next start
    /// to remove. `what` names the request's object in the log.
    pub(crate) fn settle_undone(
        &mut self,
        undone: anyhow::Result<()>,
        objects: &[KernelObject],
        what: &str,
    ) {
        match undone {
            Ok(()) => {
                self.settle(objects);
                if let Err(e) = self.save() {
                    warn!(
                        object = what,
                        "saving after undoing a failed request: {e:#}"
                    );
                }
            }
            Err(e) => warn!(
                object = what,
                "undoing a failed request: {e:#}; the next start removes what is left"
            ),
        }
    }

    /// The network (or pre-defined network) `name_or_id` names, as Docker resolves names and
    /// id prefixes.
    pub(crate) fn target(&self, name_or_id: &str) -> Result<Target> {
        if let Some(target) = self.recordless(name_or_id) {
            return Ok(target);
        }
        let net = self.state.network(name_or_id)?;
        Ok(Target::Network(Box::new(net.clone()), self.driver(net)?))
    }

    /// The pre-defined network without a record that `name_or_id` denotes, if any.
    pub(crate) fn recordless(&self, name_or_id: &str) -> Option<Target> {
        drivers::predefined().find_map(|(name, driver)| {
            let host_namespace = match driver.attachment() {
                Attachment::HostNamespace => true,
                Attachment::Isolated => false,
                Attachment::Endpoints(_) => return None,
            };
            let id = self.state.predefined_id(name).unwrap_or_default();
            let named =
                name_or_id == name || (!name_or_id.is_empty() && id.starts_with(name_or_id));
            named.then_some(Target::Recordless {
                name,
                driver: driver.name(),
                host_namespace,
            })
        })
    }

    /// The driver that makes `net`'s endpoints.
    pub(crate) fn driver(&self, net: &Network) -> Result<&'static dyn EndpointDriver> {
        drivers::endpoint_driver(&net.driver).ok_or_else(|| {
            XnetError::Internal(format!(
                "network {} has driver {:?}, which makes no endpoints",
                net.name, net.driver
            ))
        })
    }

    /// Rewrites network `name`'s member list (its broadcast fan-out) from the state.
    pub(crate) fn sync_members(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(net) = self.state.networks.get(name) else {
            return Ok(());
        };
        let members: Vec<u32> = self
            .state
            .endpoints_on(name)
            .map(|(_, e)| e.host_ifindex)
            .collect();
        self.kernel.datapath.set_members(net.datapath_id, &members)
    }
}
