//! Per-endpoint and per-reason counters, in per-CPU maps so the hot path never contends.

use xnet_common::DropReason;

use crate::maps::{DROP_STATS, ENDPOINT_STATS};

/// A frame the container of the endpoint in `slot` sent was accepted.
#[inline(always)]
pub fn count_tx(slot: u32, bytes: u32) {
    if let Some(counters) = ENDPOINT_STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe {
            (*counters).tx_packets += 1;
            (*counters).tx_bytes += u64::from(bytes);
        }
    }
}

/// A frame was delivered to the container of the endpoint in `slot`.
#[inline(always)]
pub fn count_rx(slot: u32, bytes: u32) {
    if let Some(counters) = ENDPOINT_STATS.get_ptr_mut(slot) {
        // SAFETY: as in `count_tx`.
        unsafe {
            (*counters).rx_packets += 1;
            (*counters).rx_bytes += u64::from(bytes);
        }
    }
}

/// A frame was dropped for `reason`; `slot` is the sending endpoint's, if it is known.
#[inline(always)]
pub fn count_drop(slot: Option<u32>, reason: DropReason) {
    if let Some(counters) = slot.and_then(|slot| ENDPOINT_STATS.get_ptr_mut(slot)) {
        // SAFETY: as in `count_tx`.
        unsafe { (*counters).drops += 1 };
    }
    if let Some(count) = DROP_STATS.get_ptr_mut(reason as u32) {
        // SAFETY: as in `count_tx`.
        unsafe { *count += 1 };
    }
}
