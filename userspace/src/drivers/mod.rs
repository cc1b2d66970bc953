//! Network drivers: what `network create -d NAME` chooses, each one module behind [`Driver`].
//! The daemon sequences requests (validate, record, plumb, persist, undo on failure); a driver
//! says what its networks and endpoints are in the kernel:
//!
//! - `bridge`: a network of veth endpoints on the eBPF datapath (no bridge device); the
//!   default `bridge` network and user-defined ones, Docker's networks through the plugin;
//! - `host`: `--network host`, the daemon's own namespace;
//! - `null`: `--network none`, a namespace with loopback only;
//! - `overlay`: networks of global scope, shared by the hosts of a cluster (`--cluster-store`);
//! - `macvlan` and `ipvlan` (`lan`): containers directly on a parent device's LAN;
//!
//! and `veth_network`, what bridge and overlay share (veth endpoints, gateways on loopback).
//!
//! Adding a driver: a module here implementing [`Driver`] (and [`EndpointDriver`] if its
//! containers get endpoints), and its line in `DRIVERS`.

mod bridge;
mod driver;
mod host;
mod lan;
mod null;
mod overlay;
mod veth_network;

pub use bridge::BRIDGE;
pub use driver::{Addressing, Attachment, Driver, EndpointDriver, Kernel, Scope};
pub use lan::{macvlan_parent, prune_unicast_filters};

/// Every driver, in the order `network ls` shows their pre-defined networks.
static DRIVERS: &[&dyn Driver] = &[
    &bridge::Bridge,
    &host::Host,
    &null::Null,
    &overlay::Overlay,
    &lan::MACVLAN_DRIVER,
    &lan::IPVLAN_DRIVER,
];

/// The driver called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Driver> {
    DRIVERS.iter().copied().find(|d| d.name() == name)
}

/// The driver called `name`, if its networks have endpoints.
pub fn endpoint_driver(name: &str) -> Option<&'static dyn EndpointDriver> {
    match by_name(name)?.attachment() {
        Attachment::Endpoints(driver) => Some(driver),
        Attachment::HostNamespace | Attachment::Isolated => None,
    }
}

/// The drivers `network create -d` takes, for messages.
pub fn creatable() -> Vec<&'static str> {
    DRIVERS
        .iter()
        .filter(|d| matches!(d.attachment(), Attachment::Endpoints(_)))
        .map(|d| d.name())
        .collect()
}

/// The pre-defined networks (Docker's `bridge`, `host`, `none`) with their drivers.
pub fn predefined() -> impl Iterator<Item = (&'static str, &'static dyn Driver)> {
    DRIVERS
        .iter()
        .filter_map(|d| Some((d.predefined_network()?, *d)))
}
