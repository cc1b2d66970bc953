//! Per-endpoint and per-reason counters, in per-CPU maps so the hot path never contends.

use xnet_common::DropReason;

use crate::maps::{DROP_STATS, ENDPOINT_STATS};

/// A frame the container behind `ifindex` sent was accepted.
#[inline(always)]
pub fn count_tx(ifindex: u32, bytes: u32) {
    if let Some(counters) = ENDPOINT_STATS.get_ptr_mut(ifindex) {
        // SAFETY: per-CPU value, only this CPU writes it while we run.
        unsafe {
            (*counters).tx_packets += 1;
            (*counters).tx_bytes += u64::from(bytes);
        }
    }
}

/// A frame was delivered to the container behind `ifindex`.
#[inline(always)]
pub fn count_rx(ifindex: u32, bytes: u32) {
    if let Some(counters) = ENDPOINT_STATS.get_ptr_mut(ifindex) {
        // SAFETY: as in `count_tx`.
        unsafe {
            (*counters).rx_packets += 1;
            (*counters).rx_bytes += u64::from(bytes);
        }
    }
}

/// A frame from the container behind `ifindex` was dropped for `reason`.
#[inline(always)]
pub fn count_drop(ifindex: u32, reason: DropReason) {
    if let Some(counters) = ENDPOINT_STATS.get_ptr_mut(ifindex) {
        // SAFETY: as in `count_tx`.
        unsafe { (*counters).drops += 1 };
    }
    if let Some(count) = DROP_STATS.get_ptr_mut(reason as u32) {
        // SAFETY: as in `count_tx`.
        unsafe { *count += 1 };
    }
}
