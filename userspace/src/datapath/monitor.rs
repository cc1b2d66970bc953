//! The monitor's maps as the daemon sees them (`xnet monitor`): which events the programs
//! write (`MONITOR`), the events they could not (`MONITOR_BUDGET`), and the ring the events
//! arrive in (`MONITOR_EVENTS`), which the daemon's reader takes out once.

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use xnet_common::{MonitorConfig, MonitorEvent};

use super::maps::Datapath;

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

    /// Events the programs could not write, ever (over the rate limit, or the ring full),
    /// summed over CPUs.
    pub fn monitor_lost(&self) -> u64 {
        self.monitor_budget
            .get(&0, 0)
            .map(|per_cpu| per_cpu.iter().map(|b| b.lost).sum())
            .unwrap_or(0)
    }

    /// The ring of events, for the one reader; `None` once taken.
    pub fn take_monitor_events(&mut self) -> Option<RingBuf<MapData>> {
        self.monitor_events.take()
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
