//! `xnet-vxlan`: the kernel programs of one VXLAN mechanism for one simulated host of the
//! `vxlan-mech-*` scenarios (issue #13), run in that host's namespace. It fills the tables (the
//! local container, the remote one and its VTEP), attaches the programs, prints `ready` and
//! detaches when its stdin closes.
//!
//! - `tunnel-key` (B): `vxlan_key_encap` at tcx ingress of the container's host-side veth,
//!   `vxlan_key_deliver` at tcx ingress of the collect_md vxlan device (`--vxlan-dev`);
//! - `adjust-room` (C): `vxlan_room_encap` on the veth, `vxlan_room_decap` at tcx ingress of
//!   the underlay;
//! - `adjust-room-xdp` (C, decapsulated at XDP): `vxlan_room_encap` on the veth,
//!   `vxlan_xdp_decap` at native XDP of the underlay and `vxlan_meta_deliver` at its tcx
//!   ingress.

use std::net::Ipv4Addr;

use anyhow::{Context as _, anyhow, bail};
use aya::{Ebpf, maps::HashMap};
use clap::{Args, ValueEnum};
use xnet_perf_ebpf::{
    GLOBAL_LOCAL_IP, GLOBAL_TUNNEL, GLOBAL_VNI, MAP_OVERLAY_LOCALS, MAP_OVERLAY_REMOTES,
    OverlayKey, OverlayRemote, PROG_KEY_DELIVER, PROG_KEY_ENCAP, PROG_META_DELIVER,
    PROG_ROOM_DECAP, PROG_ROOM_ENCAP, PROG_XDP_DECAP,
};

use crate::{
    ebpf::{self, Hook},
    frame::Mac,
};

/// Which datapath the programs make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mechanism {
    /// B: `bpf_skb_set_tunnel_key` and a collect_md vxlan device.
    TunnelKey,
    /// C: outer headers written with `bpf_skb_adjust_room`, decapsulated at tcx.
    AdjustRoom,
    /// C, decapsulated at the underlay's XDP hook.
    AdjustRoomXdp,
}

#[derive(Debug, Args)]
pub struct VxlanArgs {
    #[arg(long, value_enum)]
    pub mechanism: Mechanism,
    /// The overlay network's VXLAN network identifier.
    #[arg(long)]
    pub vni: u32,
    /// The host-side veth of this host's container.
    #[arg(long)]
    pub veth: String,
    /// That container's MAC.
    #[arg(long)]
    pub mac: Mac,
    /// The underlay device (C sends and receives the encapsulated frames there).
    #[arg(long)]
    pub underlay: String,
    /// This host's underlay address.
    #[arg(long)]
    pub local_ip: Ipv4Addr,
    /// The collect_md vxlan device (B).
    #[arg(long, required_if_eq("mechanism", "tunnel-key"))]
    pub vxlan_dev: Option<String>,
    /// The container on the other host: its MAC.
    #[arg(long)]
    pub remote_mac: Mac,
    /// The other host's underlay address (the remote VTEP).
    #[arg(long)]
    pub remote_ip: Ipv4Addr,
    /// The other host's underlay MAC (C's outer destination MAC: the next hop).
    #[arg(long)]
    pub remote_underlay_mac: Mac,
}

pub fn main(args: &VxlanArgs) -> anyhow::Result<()> {
    let tunnel = match (&args.vxlan_dev, args.mechanism) {
        (Some(dev), Mechanism::TunnelKey) => ebpf::ifindex(dev)?,
        (None, Mechanism::TunnelKey) => bail!("--vxlan-dev is needed for tunnel-key"),
        _ => 0,
    };
    let mut ebpf = ebpf::load(&[
        (GLOBAL_VNI, args.vni),
        (GLOBAL_LOCAL_IP, u32::from_ne_bytes(args.local_ip.octets())),
        (GLOBAL_TUNNEL, tunnel),
    ])?;
    fill_tables(&mut ebpf, args)?;
    // Delivery first, then encapsulation: each host is ready to receive before it sends.
    match args.mechanism {
        Mechanism::TunnelKey => {
            let dev = args.vxlan_dev.as_deref().unwrap_or_default();
            ebpf::attach(&mut ebpf, PROG_KEY_DELIVER, Hook::Tc, dev)?;
            ebpf::attach(&mut ebpf, PROG_KEY_ENCAP, Hook::Tc, &args.veth)?;
        }
        Mechanism::AdjustRoom => {
            ebpf::attach(&mut ebpf, PROG_ROOM_DECAP, Hook::Tc, &args.underlay)?;
            ebpf::attach(&mut ebpf, PROG_ROOM_ENCAP, Hook::Tc, &args.veth)?;
        }
        Mechanism::AdjustRoomXdp => {
            ebpf::attach(&mut ebpf, PROG_META_DELIVER, Hook::Tc, &args.underlay)?;
            ebpf::attach(&mut ebpf, PROG_XDP_DECAP, Hook::Xdp, &args.underlay)?;
            ebpf::attach(&mut ebpf, PROG_ROOM_ENCAP, Hook::Tc, &args.veth)?;
        }
    }
    crate::announce_ready_and_hold()
}

/// The local container (MAC -> its host-side veth) and the remote one (MAC -> VTEP and hop).
fn fill_tables(ebpf: &mut Ebpf, args: &VxlanArgs) -> anyhow::Result<()> {
    let key = |mac: Mac| OverlayKey {
        vni: args.vni,
        mac: mac.0,
        _pad: [0; 2],
    };
    let remote = OverlayRemote {
        host_ip: args.remote_ip.octets(),
        local_ip: args.local_ip.octets(),
        outer_src_mac: hardware_address(&args.underlay)?.0,
        outer_dst_mac: args.remote_underlay_mac.0,
        underlay_ifindex: ebpf::ifindex(&args.underlay)?,
    };
    let map = |name: &str| anyhow!("map {name} missing from the object");
    let mut remotes: HashMap<_, OverlayKey, OverlayRemote> = HashMap::try_from(
        ebpf.map_mut(MAP_OVERLAY_REMOTES)
            .ok_or_else(|| map(MAP_OVERLAY_REMOTES))?,
    )?;
    remotes.insert(key(args.remote_mac), remote, 0)?;
    let mut locals: HashMap<_, OverlayKey, u32> = HashMap::try_from(
        ebpf.map_mut(MAP_OVERLAY_LOCALS)
            .ok_or_else(|| map(MAP_OVERLAY_LOCALS))?,
    )?;
    locals.insert(key(args.mac), ebpf::ifindex(&args.veth)?, 0)?;
    Ok(())
}

/// The MAC of device `ifname` of the current network namespace (SIOCGIFHWADDR: sysfs would
/// show the namespace it was mounted for, not ours).
fn hardware_address(ifname: &str) -> anyhow::Result<Mac> {
    // SAFETY: plain syscall; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket for SIOCGIFHWADDR");
    }
    // SAFETY: an all-zero ifreq is valid; the name is copied in below, NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.len() >= req.ifr_name.len() {
        bail!("device name {ifname} is too long");
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq for this request and outlives the call.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    let err = std::io::Error::last_os_error();
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(err).with_context(|| format!("reading the MAC of {ifname}"));
    }
    // SAFETY: SIOCGIFHWADDR filled the hardware address member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data) {
        *dst = src as u8;
    }
    Ok(Mac(mac))
}
