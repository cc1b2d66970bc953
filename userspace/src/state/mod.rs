//! The desired world: networks, containers and their addresses. This is the single place where
//! rules such as "no overlapping subnets" or "names are unique" live; the daemon asks it first,
//! then plumbs the OS and the datapath to match.

pub mod ipam;
mod model;
pub mod ports;
mod store;

pub use model::{
    Container, DockerEndpoint, DockerOwned, DockerPool, Endpoint, IpConfig, Mac, Network, Sandbox,
    State,
};
pub use store::Store;
