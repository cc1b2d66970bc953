//! Loading: the programs into the kernel, the maps reused from their pins (or pinned anew),
//! and pins of an older layout replaced.

use std::{fs, path::Path};

use anyhow::Context as _;
use aya::{EbpfLoader, maps::MapInfo};
use tracing::warn;
use xnet_common::{
    MAP_DROP_STATS, MAP_ENCRYPTED_VNIS, MAP_ENCRYPTION_PEERS, MAP_ENDPOINT_STATS, MAP_ENDPOINTS,
    MAP_FLOOD_VTEPS, MAP_HOST_NETNS, MAP_LAN_MACS, MAP_LAN_NETWORKS, MAP_LAN_PARENTS,
    MAP_LAN_SUBNETS, MAP_LAN_SUBNETS6, MAP_MEMBER_COUNT, MAP_MEMBERS, MAP_MONITOR,
    MAP_MONITOR_BUDGET, MAP_MONITOR_EVENTS, MAP_NEIGHBORS, MAP_NEIGHBORS6, MAP_PUBLISHED,
    MAP_PUBLISHED6, MAP_SUBNETS, MAP_SUBNETS6, MAP_TUNNEL, MAP_UPLINK, MAP_VNIS, MAP_VTEPS,
    PROG_DECRYPTED_INGRESS, PROG_ENDPOINT_EGRESS, PROG_ENDPOINT_INGRESS, PROG_LAN_ENDPOINT_INGRESS,
    PROG_PARENT_INGRESS, PROG_UPLINK_INGRESS,
};

use super::{
    encryption, host,
    maps::{Datapath, MonitorLosses, MonitorReader},
    object::{EBPF_OBJECT, classifier, one_line_load_error, remove_file_if_exists, take_map},
    uplink,
};

impl Datapath {
    /// Loads the programs, reusing the maps pinned under `bpffs` (or pinning new ones there).
    pub fn load(bpffs: &Path) -> anyhow::Result<Self> {
        let maps_dir = bpffs.join("maps");
        let links_dir = bpffs.join("links");
        for dir in [&maps_dir, &links_dir] {
            fs::create_dir_all(dir).with_context(|| {
                format!(
                    "creating {} (is bpffs mounted at /sys/fs/bpf?)",
                    dir.display()
                )
            })?;
        }
        drop_incompatible_pins(&maps_dir)?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .load(EBPF_OBJECT)
            .context("loading the eBPF programs (kernel too old, or not root?)")?;
        for name in [
            PROG_ENDPOINT_INGRESS,
            PROG_ENDPOINT_EGRESS,
            PROG_UPLINK_INGRESS,
            PROG_DECRYPTED_INGRESS,
            PROG_LAN_ENDPOINT_INGRESS,
            PROG_PARENT_INGRESS,
        ] {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|e| one_line_load_error(name, e))?;
        }
        uplink::load_xdp(&mut ebpf)?;
        encryption::load_xdp(&mut ebpf)?;
        host::load_hooks(&mut ebpf)?;
        Ok(Self {
            endpoints: take_map(&mut ebpf, MAP_ENDPOINTS)?,
            neighbors: take_map(&mut ebpf, MAP_NEIGHBORS)?,
            neighbors6: take_map(&mut ebpf, MAP_NEIGHBORS6)?,
            endpoint_stats: take_map(&mut ebpf, MAP_ENDPOINT_STATS)?,
            drop_stats: take_map(&mut ebpf, MAP_DROP_STATS)?,
            uplink: take_map(&mut ebpf, MAP_UPLINK)?,
            subnets: take_map(&mut ebpf, MAP_SUBNETS)?,
            published: take_map(&mut ebpf, MAP_PUBLISHED)?,
            published6: take_map(&mut ebpf, MAP_PUBLISHED6)?,
            host_netns: take_map(&mut ebpf, MAP_HOST_NETNS)?,
            subnets6: take_map(&mut ebpf, MAP_SUBNETS6)?,
            members: take_map(&mut ebpf, MAP_MEMBERS)?,
            member_count: take_map(&mut ebpf, MAP_MEMBER_COUNT)?,
            tunnel: take_map(&mut ebpf, MAP_TUNNEL)?,
            vnis: take_map(&mut ebpf, MAP_VNIS)?,
            encrypted_vnis: take_map(&mut ebpf, MAP_ENCRYPTED_VNIS)?,
            encryption_peers: take_map(&mut ebpf, MAP_ENCRYPTION_PEERS)?,
            vteps: take_map(&mut ebpf, MAP_VTEPS)?,
            flood_vteps: take_map(&mut ebpf, MAP_FLOOD_VTEPS)?,
            lan_networks: take_map(&mut ebpf, MAP_LAN_NETWORKS)?,
            lan_parents: take_map(&mut ebpf, MAP_LAN_PARENTS)?,
            lan_macs: take_map(&mut ebpf, MAP_LAN_MACS)?,
            lan_subnets: take_map(&mut ebpf, MAP_LAN_SUBNETS)?,
            lan_subnets6: take_map(&mut ebpf, MAP_LAN_SUBNETS6)?,
            monitor: take_map(&mut ebpf, MAP_MONITOR)?,
            monitor_reader: Some(MonitorReader {
                events: take_map(&mut ebpf, MAP_MONITOR_EVENTS)?,
                losses: MonitorLosses(take_map(&mut ebpf, MAP_MONITOR_BUDGET)?),
            }),
            ebpf,
            links_dir,
            maps_dir,
        })
    }
}

/// Removes pinned maps whose shape differs from the one the programs define (an xnetd upgrade
/// that changed a key or value in `xnet-common`, a capacity, the map's type or its flags, such
/// as the neighbor maps becoming allocated per entry). The loader would otherwise reuse them
/// (it never compares) and the kernel refuse the programs, or keep a map of the old kind. The
/// running programs keep their (now unpinned) maps until their links are switched to the new
/// programs; the new maps are filled from the state by `reconcile` (remote neighbors by the
/// cluster's sync), only NAT flows and counters start over.
fn drop_incompatible_pins(maps_dir: &Path) -> anyhow::Result<()> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).context("parsing the eBPF object")?;
    for (name, def) in &object.maps {
        let pin = maps_dir.join(name);
        let Ok(pinned) = MapInfo::from_pin(&pin) else {
            continue;
        };
        let pinned_shape = (
            pinned.map_type().ok().map(|t| t as u32),
            pinned.key_size(),
            pinned.value_size(),
            pinned.max_entries(),
            pinned.map_flags(),
        );
        let shape = (
            Some(def.map_type()),
            def.key_size(),
            def.value_size(),
            def.max_entries(),
            def.map_flags(),
        );
        if pinned_shape != shape {
            warn!(
                "map {name} was pinned by a version with another layout; recreating it (its NAT flows and counters start over)"
            );
            remove_file_if_exists(&pin)?;
        }
    }
    Ok(())
}
