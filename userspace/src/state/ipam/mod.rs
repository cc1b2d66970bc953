//! Address management: choosing subnets that collide with nothing, and handing out addresses.
//! Pure functions over what is taken, so every rule is unit-tested without a host. The rules
//! are written once for both address families, over [`Subnet`].
//!
//! - `subnet`: [`Subnet`], a network's [`IpConfig`] in one family, [`Taken`] subnets;
//! - `pools`: the subnets chosen from when none is asked for;
//! - `configure`: a network's requested addressing, sorted by family and checked;
//! - `allocate`: addresses for endpoints.

mod allocate;
mod configure;
mod pools;
mod subnet;
#[cfg(test)]
mod testing;

pub use allocate::allocate;
pub use configure::{Requested, aux_addresses, aux_in, by_family, configure, gateway};
pub use pools::{default_pool, overlay_pool, pool_beside_docker, ula_pool, ula_prefix};
pub use subnet::{IpConfig, Subnet, Taken};
