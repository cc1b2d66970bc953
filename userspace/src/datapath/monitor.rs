//! The monitor's maps as the daemon sees them (`xnet monitor`): which events the programs
//! write (`MONITOR`); and, taken out once by the daemon's reader so that it needs no lock,
//! the ring the events arrive in (`MONITOR_EVENTS`) and the count of those the programs
//! could not write (`MONITOR_BUDGET`).

use anyhow::Context as _;
use xnet_common::{MonitorConfig, MonitorEvent};

use super::maps::{Datapath, MonitorReader};

impl Datapath {
    /// Asks the programs for events of `kinds` (`MONITOR_DROPS` | `MONITOR_TRACE`; 0: none),
    /// at most `events_per_second` on each CPU.
    pub fn set_monitor(&mut self, kinds: u32, events_per_second: u32) -> anyhow::Result<()> {
        let config = MonitorConfig {
            kinds,
            events_per_second,
        };
        self.monitor.set(0, config, 0).context("writing MONITOR")
    }

    /// What the one reader of the events needs; `None` once taken.
    pub fn take_monitor_reader(&mut self) -> Option<MonitorReader> {
        self.monitor_reader.take()
    }
}

/// The event in one record of the ring (`None` if it is not one: a ring of another layout).
pub fn decode_event(record: &[u8]) -> Option<MonitorEvent> {
    if record.len() < size_of::<MonitorEvent>() {
        return None;
    }
    // SAFETY: `MonitorEvent` is plain old data (any bytes are a value), the record holds
    // enough of them, and the read does not assume alignment.
    Some(unsafe { std::ptr::read_unaligned(record.as_ptr().cast::<MonitorEvent>()) })
}
