//! The encryption worker's TAP device: where the datapath hands it the packets to seal (the
//! device's egress: `bpf_redirect` from the container's hook), and where it writes those it
//! opened (the device's ingress: `decrypted_ingress` at tcx). A TAP rather than a TUN so
//! both directions carry the Ethernet frame the datapath's VXLAN code reads and writes.
//!
//! The device lives as long as the worker's file descriptors: when xnetd dies, the kernel
//! removes it, and frames the datapath still redirects to it are dropped (fail closed).

use std::fs;

use anyhow::Context as _;
use tun_rs::{DeviceBuilder, Layer, SyncDevice};

/// The device's name.
pub const DEVICE_NAME: &str = "xnet-crypt";

/// The open device: one queue per worker thread.
pub struct Device {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub queues: Vec<SyncDevice>,
}

/// Creates the device with `queues` queues and MTU `mtu` (the underlay's: it carries outer
/// packets), up, with IPv6 off (the kernel sends nothing of its own through it).
pub fn create(queues: usize, mtu: u16) -> anyhow::Result<Device> {
    let context = || format!("creating the TAP device {DEVICE_NAME}");
    let first = DeviceBuilder::new()
        .name(DEVICE_NAME)
        .layer(Layer::L2)
        .mtu(mtu)
        .multi_queue(true)
        .packet_information(false)
        .enable(false)
        .build_sync()
        .with_context(context)?;
    let sysctl = format!("/proc/sys/net/ipv6/conf/{DEVICE_NAME}/disable_ipv6");
    // Absent when the kernel has no IPv6: then there is nothing to turn off.
    if fs::exists(&sysctl).unwrap_or(false) {
        fs::write(&sysctl, "1").with_context(|| format!("writing {sysctl}"))?;
    }
    first.enabled(true).with_context(context)?;
    let ifindex = first.if_index().with_context(context)?;
    let mac = first.mac_address().with_context(context)?;
    let mut all = Vec::with_capacity(queues.max(1));
    for _ in 1..queues.max(1) {
        all.push(first.try_clone().with_context(context)?);
    }
    all.insert(0, first);
    Ok(Device {
        ifindex,
        mac,
        queues: all,
    })
}
