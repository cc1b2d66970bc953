//! `--network none`: the container gets a network namespace with loopback only. Docker calls
//! the driver `null`.

use super::driver::{Attachment, Driver, Scope};
use crate::state::NONE_NETWORK;

pub struct Null;

impl Driver for Null {
    fn name(&self) -> &'static str {
        "null"
    }

    fn predefined_network(&self) -> Option<&'static str> {
        Some(NONE_NETWORK)
    }

    fn scope(&self) -> Scope {
        Scope::Local
    }

    fn attachment(&self) -> Attachment {
        Attachment::Isolated
    }
}
