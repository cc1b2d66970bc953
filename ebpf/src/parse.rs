//! Bounds-checked access to packet headers, the one place that does pointer arithmetic.

use core::mem;

use aya_ebpf::programs::{TcContext, XdpContext};

/// A pointer to a `T` starting `offset` bytes into the frame, or `None` when the frame is too
/// short to hold it. Headers that sit in the skb's paged part (possible for GSO packets) are
/// first pulled into the linear area, because the verifier only lets us touch that.
///
/// Any earlier pointer into the frame is invalid after this call (a pull may move the data).
#[inline(always)]
pub fn header<T>(ctx: &TcContext, offset: usize) -> Option<*mut T> {
    let needed = offset + mem::size_of::<T>();
    if ctx.data() + needed > ctx.data_end()
        && ((ctx.len() as usize) < needed || ctx.pull_data(needed as u32).is_err())
    {
        return None;
    }
    let start = ctx.data();
    if start + needed > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// The same for XDP, where the frame is one linear buffer (for a multi-buffer frame, its first
/// part, which holds the headers): nothing to pull.
#[inline(always)]
pub fn frame_header<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data() + offset;
    if start + mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some(start as *mut T)
}
