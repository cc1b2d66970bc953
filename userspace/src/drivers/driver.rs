//! What a driver is: [`Driver`] for every driver, [`EndpointDriver`] for those whose networks
//! have addresses and endpoints, and the [`Kernel`] they work in.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{
    datapath::{Datapath, EndpointEntry},
    error::Result,
    os::Netlink,
    plumbing::Placement,
    state::{Container, Endpoint, Network, options::NetworkOptions},
};

/// The kernel a driver works in: the daemon namespace's netlink, its loopback (where gateway
/// addresses live) and the datapath's maps and programs.
pub struct Kernel {
    pub netlink: Netlink,
    pub loopback: u32,
    pub datapath: Datapath,
}

/// A network driver as the user names it.
pub trait Driver: Sync {
    /// `network create -d NAME`'s name, shown by inspect (Docker's: `bridge`, `host`, `null`).
    fn name(&self) -> &'static str;
    /// The network of this driver that every engine has, if any.
    fn predefined_network(&self) -> Option<&'static str>;
    /// What a container on one of its networks gets.
    fn attachment(&self) -> Attachment;
    /// Whether its networks are this host's or the cluster's.
    fn scope(&self) -> Scope;
}

/// Where a driver's networks exist (Docker's `Scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On this host only.
    Local,
    /// On every host of the cluster, kept in its store (`--cluster-store`).
    Global,
}

impl Scope {
    /// As `network inspect` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Global => "global",
        }
    }
}

/// What a container on a driver's network gets.
pub enum Attachment {
    /// The daemon's own namespace and nothing else (`host`).
    HostNamespace,
    /// A namespace of its own with loopback only (`null`).
    Isolated,
    /// A namespace of its own and one endpoint per network, made by this driver.
    Endpoints(&'static dyn EndpointDriver),
}

/// Whose subnets a driver's networks have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Subnets of their own, picked from xnet's pools when not given, clear of everything the
    /// host routes (bridge, overlay).
    Private,
    /// The subnet of a LAN the host may already be on (macvlan, ipvlan): `--subnet` is
    /// required and only other xnet networks' subnets are in the way.
    Lan,
}

/// A driver whose networks have addresses and endpoints. Every call tolerates what is already
/// there or already gone, so the daemon can undo a half-made object and redo a whole one
/// after a restart with the same calls.
#[async_trait]
pub trait EndpointDriver: Sync {
    /// Checks a new network's `-o` options (`ipv6`: the network is dual-stack).
    fn check_options(
        &self,
        options: &BTreeMap<String, String>,
        ipv6: bool,
    ) -> Result<NetworkOptions>;

    /// Whose subnets its networks have.
    fn addressing(&self) -> Addressing {
        Addressing::Private
    }

    /// Whether containers whose first network is one of its may publish ports (`-p`).
    fn publishes_ports(&self) -> bool {
        true
    }

    /// Checks a new network against the existing ones (`existing`, by name), before anything
    /// is made.
    fn check_network(&self, _net: &Network, _existing: &BTreeMap<String, Network>) -> Result<()> {
        Ok(())
    }

    /// Makes the network's host-wide objects (gateway addresses, datapath entries). Also
    /// called on every start, for every network, to make the kernel match again.
    async fn add_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()>;

    /// Undoes [`Self::add_network`].
    async fn remove_network(&self, kernel: &mut Kernel, net: &Network) -> anyhow::Result<()>;

    /// Makes an endpoint (its addresses allocated, its names chosen) for a container whose
    /// namespace is at `placement`, filling in what the kernel chose (ifindex, MAC). Returns
    /// the container end's name when it is left for Docker.
    async fn plumb_endpoint(
        &self,
        kernel: &mut Kernel,
        placement: Placement<'_>,
        ep: &mut Endpoint,
        net: &Network,
    ) -> Result<Option<String>>;

    /// Undoes [`Self::plumb_endpoint`] (of `ep`, on `net`) as far as it got.
    async fn unplumb_endpoint(
        &self,
        kernel: &mut Kernel,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<()>;

    /// After a restart: whether the endpoint survived (then its entries are written again and
    /// its pinned programs adopted) or must be forgotten.
    async fn adopt_endpoint(
        &self,
        kernel: &mut Kernel,
        container: &Container,
        ep: &Endpoint,
        net: &Network,
    ) -> anyhow::Result<bool>;

    /// The endpoint's entry in the datapath's maps.
    fn endpoint_entry(&self, ep: &Endpoint, net: &Network) -> EndpointEntry;
}
