//! The monitors attached to this daemon (`xnet monitor`) and the channel their events go out
//! on; `monitor` reads the datapath's events into it.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use tokio::sync::broadcast;

use crate::api::types::MonitorLine;

/// Batches of events kept for a monitor that reads slowly; beyond, it misses batches.
const BACKLOG: usize = 1024;

/// One event, resolved, with what monitors filter on.
#[derive(Debug, Clone)]
pub(crate) struct Tagged {
    /// `MONITOR_DROPS` or `MONITOR_TRACE`; 0 for a `lost` line, which every monitor gets.
    pub(super) kind: u32,
    pub(super) container: Option<String>,
    pub(super) network: Option<String>,
    pub(super) line: MonitorLine,
}

/// The monitors attached and the channel their events go out on.
pub(crate) struct MonitorHub {
    pub(super) lines: broadcast::Sender<Arc<Vec<Tagged>>>,
    /// The kinds each attached monitor wants, by its number.
    pub(super) attached: Mutex<BTreeMap<u64, u32>>,
    pub(super) next_id: AtomicU64,
    /// The programs' rate limit: events per second on each CPU (`xnetd --monitor-rate`).
    pub(super) events_per_second: u32,
}

impl MonitorHub {
    pub(crate) fn new(events_per_second: u32) -> Self {
        Self {
            lines: broadcast::channel(BACKLOG).0,
            attached: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            events_per_second,
        }
    }

    pub(super) fn wanted_kinds(&self) -> u32 {
        let attached = self.attached.lock().expect("monitor registry poisoned");
        attached.values().fold(0, |all, kinds| all | kinds)
    }
}
