//! The desired world: networks, containers and their addresses. This is the single place where
//! rules such as "no overlapping subnets" or "names are unique" live; the daemon asks it first,
//! then plumbs the OS and the datapath to match.
//!
//! - [`model`]: the records and the state document;
//! - [`ipam`]: subnets and addresses; [`ports`]: published ports; [`options`]: network
//!   options; [`rules`]: names, Docker's objects, what may be published;
//! - [`ids`]: ids and timestamps of new records; [`host_key`]: this host's key pair for
//!   encrypted overlays;
//! - `store`: atomic persistence.

pub mod host_key;
pub mod ids;
pub mod ipam;
pub mod model;
pub mod options;
pub mod ports;
pub mod rules;
mod store;

pub use ipam::IpConfig;
pub use model::{
    Container, DEFAULT_NETWORK, DockerEndpoint, DockerOwned, DockerPool, Endpoint, HOST_NETWORK,
    KernelObject, Mac, Membership, NONE_NETWORK, Network, Sandbox, State,
};
pub use store::Store;
