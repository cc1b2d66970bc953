//! The one ethtool setting xnet changes, on containers' veths and on the uplink, through the
//! `SIOCETHTOOL` ioctl (no well-kept crate sets device features over ethtool's netlink
//! interface): generic receive offload.

use std::{
    io, mem,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, bail};

/// `ETHTOOL_SGRO` from linux/ethtool.h: set GRO from `EthtoolValue::data`.
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// Turns GRO on for `ifname` in the calling thread's network namespace. On a veth this also
/// gives the device NAPI, which is what lets it receive frames XDP redirects into its peer (the
/// uplink's `uplink_xdp` does); without it the kernel drops them.
pub fn enable_gro(ifname: &str) -> anyhow::Result<()> {
    // SAFETY: `ifreq` is plain data; all zeroes is a valid (empty) request.
    let mut request: libc::ifreq = unsafe { mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= request.ifr_name.len() {
        bail!("interface name {ifname} is too long");
    }
    for (dst, src) in request.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_SGRO,
        data: 1,
    };
    request.ifr_ifru.ifru_data = (&raw mut value).cast();
    // Any socket of the namespace will do as the ioctl's handle (unbound: the namespace may not
    // even have its loopback up yet).
    // SAFETY: plain socket(2); the descriptor is owned (and closed) by `socket` below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).context("socket() for SIOCETHTOOL");
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `request` names the device and points at `value`, both alive for the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL as _, &mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("turning GRO on for {ifname}"));
    }
    Ok(())
}
