//! The traffic generator: run with `BPF_PROG_TEST_RUN` and `BPF_F_TEST_XDP_LIVE_FRAMES`, every
//! run of this program turns one page of the kernel's pool into a frame and `XDP_TX` sends it
//! out of the device named in the run's context.

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_TX},
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};
use xnet_perf_ebpf::{FlowHeaders, HEADERS_LEN, MAX_FLOWS};

/// Headers of each flow, written by user space before the run.
#[map]
static FLOWS: Array<FlowHeaders> = Array::with_max_entries(MAX_FLOWS, 0);

/// The flow the next frame on this CPU belongs to.
#[map]
static NEXT_FLOW: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// How many entries of `FLOWS` are in use (set at load time).
#[unsafe(no_mangle)]
static FLOW_COUNT: u32 = 1;

#[xdp]
pub fn generator(ctx: XdpContext) -> u32 {
    match write_headers(&ctx) {
        Some(()) => XDP_TX,
        None => XDP_ABORTED,
    }
}

/// Writes the next flow's headers over the frame. This must happen on every run: the kernel
/// recycles the pages of live frames without restoring them, and a page comes back with
/// whatever the receiving path wrote into it (rewritten MACs, NATed addresses).
#[inline(always)]
fn write_headers(ctx: &XdpContext) -> Option<()> {
    // SAFETY: a read of a constant the loader may have patched; volatile so the compiler does
    // not fold in the default.
    let count = unsafe { core::ptr::read_volatile(&FLOW_COUNT) };
    let next = NEXT_FLOW.get_ptr_mut(0)?;
    // SAFETY: per-CPU value, only this CPU touches it while we run.
    let flow = unsafe { *next };
    let flow = if flow < count { flow } else { 0 };
    // SAFETY: as above.
    unsafe { *next = if flow + 1 < count { flow + 1 } else { 0 } };
    let headers = FLOWS.get(flow)?;
    let start = ctx.data();
    if start + HEADERS_LEN > ctx.data_end() {
        return None;
    }
    let from = (headers as *const FlowHeaders).cast::<u64>();
    let to = start as *mut u64;
    // SAFETY: the check above keeps the 42 bytes written inside the frame; the map value is
    // 8-aligned (FlowHeaders is align(8)) and so is a live frame (it starts XDP_PACKET_HEADROOM
    // into a page), so whole-word accesses are aligned: 5 words and the last 2 bytes.
    unsafe {
        for word in 0..HEADERS_LEN / 8 {
            *to.add(word) = *from.add(word);
        }
        let tail = (HEADERS_LEN / 8) * 8;
        *(start as *mut u16).add(tail / 2) = *(from as *const u16).add(tail / 2);
    }
    Some(())
}
