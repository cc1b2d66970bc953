//! Published ports: Docker's `-p` specs, and the host ports they are given against what is
//! taken.
//!
//! - `spec`: [`PortSpec`] and [`Protocol`], parsed from `-p`'s syntax;
//! - `mapping`: a resolved [`PortMapping`] and the [`Holding`]s of host ports it conflicts with;
//! - `resolve`: host ports for specs ([`resolve()`], [`resolve_all`]), or the [`PortError`] why not.

mod mapping;
mod resolve;
mod spec;

pub use mapping::{Holder, Holding, PortMapping, Requested, host_binding};
pub use resolve::{PortError, resolve, resolve_all};
pub use spec::{PortSpec, Protocol, range_text};
