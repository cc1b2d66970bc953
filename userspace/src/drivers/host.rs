//! `--network host`: the container runs in the daemon's own namespace (the host's), with the
//! host's interfaces; xnet makes nothing for it.

use super::driver::{Attachment, Driver, Scope};
use crate::state::HOST_NETWORK;

pub struct Host;

impl Driver for Host {
    fn name(&self) -> &'static str {
        "host"
    }

    fn predefined_network(&self) -> Option<&'static str> {
        Some(HOST_NETWORK)
    }

    fn scope(&self) -> Scope {
        Scope::Local
    }

    fn attachment(&self) -> Attachment {
        Attachment::HostNamespace
    }
}
