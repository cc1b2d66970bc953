//! Links, addresses and routes over rtnetlink, in the daemon's namespace or a container's.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    path::Path,
};

use anyhow::{Context as _, anyhow};
use futures::TryStreamExt as _;
use ipnet::IpNet;
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        AddressFamily,
        address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope},
        link::{LinkAttribute, LinkMessage},
        neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
        route::{RouteAddress, RouteAttribute, RouteMessage, RouteScope},
    },
};

use super::netns;

/// An rtnetlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

/// A link as the daemon needs to know it.
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// An interface named on the command line (`--uplink`, `--cluster-advertise`): its index and
/// its first global address of each family.
pub struct Interface {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// A route of the main table, reduced to what subnet selection needs.
pub struct RouteInfo {
    pub destination: IpNet,
    pub oif: Option<u32>,
}

impl Netlink {
    /// A connection in the calling process's namespace (the daemon's host namespace).
    pub fn current() -> anyhow::Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection().context("opening rtnetlink")?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// A connection inside the namespace pinned at `path`. A netlink socket belongs to the
    /// namespace it was created in, so we create it on a thread that has entered that namespace
    /// (and dies right after); the socket then keeps working from any thread.
    pub fn in_netns(path: &Path) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::current();
        let path = path.to_owned();
        let (connection, handle, _) = std::thread::spawn(move || {
            netns::enter(&path)?;
            // The socket registers with tokio's reactor, which needs a runtime context.
            let _context = runtime.enter();
            rtnetlink::new_connection().context("opening rtnetlink in the container")
        })
        .join()
        .map_err(|_| anyhow!("netlink thread panicked"))??;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    pub async fn link_by_name(&self, name: &str) -> anyhow::Result<Option<LinkInfo>> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(Some(link_info(&msg))),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
        }
    }

    pub async fn links(&self) -> anyhow::Result<Vec<LinkInfo>> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .context("listing links")?;
        Ok(links.iter().map(link_info).collect())
    }

    /// Creates a veth pair with both ends in this namespace.
    pub async fn create_veth(&self, name: &str, peer: &str) -> anyhow::Result<()> {
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .with_context(|| format!("creating veth pair {name}/{peer}"))
    }

    pub async fn delete_link(&self, index: u32) -> anyhow::Result<()> {
        match self.handle.link().del(index).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            other => other.with_context(|| format!("deleting link {index}")),
        }
    }

    /// Moves link `index` into the namespace pinned at `netns_path`.
    pub async fn move_to_netns(&self, index: u32, netns_path: &Path) -> anyhow::Result<()> {
        let ns = std::fs::File::open(netns_path)
            .with_context(|| format!("opening {}", netns_path.display()))?;
        let msg = LinkUnspec::new_with_index(index)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        self.set_link(msg, || {
            format!("moving link {index} into {}", netns_path.display())
        })
        .await
    }

    /// Names link `index` and sets its MAC and, if given, its MTU (the link must be down).
    pub async fn configure(
        &self,
        index: u32,
        name: &str,
        mac: [u8; 6],
        mtu: Option<u32>,
    ) -> anyhow::Result<()> {
        let mut msg = LinkUnspec::new_with_index(index)
            .name(name.to_string())
            .address(mac.to_vec());
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        let msg = msg.build();
        self.set_link(msg, || format!("naming link {index} {name}"))
            .await
    }

    pub async fn set_mtu(&self, index: u32, mtu: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.set_link(msg, || format!("setting the MTU of link {index} to {mtu}"))
            .await
    }

    pub async fn set_up(&self, index: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.set_link(msg, || format!("setting link {index} up"))
            .await
    }

    /// Adds `ip/prefix_len` to link `index`; an address already there is fine. IPv6 addresses
    /// skip duplicate address detection: IPAM already made them unique on their network, and
    /// DAD would keep them unusable for a second.
    pub async fn add_address(&self, index: u32, ip: IpAddr, prefix_len: u8) -> anyhow::Result<()> {
        let mut request = self.handle.address().add(index, ip, prefix_len);
        if ip.is_ipv6() {
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match request.execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            other => other.with_context(|| format!("adding address {ip}/{prefix_len}")),
        }
    }

    /// The interface `name` that command-line flag `flag` names; one line naming both when
    /// there is none.
    pub async fn interface(&self, flag: &str, name: &str) -> anyhow::Result<Interface> {
        let link = self
            .link_by_name(name)
            .await?
            .with_context(|| format!("{flag} {name}: no such interface"))?;
        let messages = self.address_messages(link.index).await?;
        // Global scope, primary first.
        let global = messages
            .iter()
            .filter(|msg| msg.header.scope == AddressScope::Universe)
            .filter_map(local_address);
        let (mut ipv4, mut ipv6) = (None, None);
        for address in global {
            match address {
                IpAddr::V4(ip) => ipv4 = ipv4.or(Some(ip)),
                IpAddr::V6(ip) => ipv6 = ipv6.or(Some(ip)),
            }
        }
        Ok(Interface {
            index: link.index,
            name: link.name,
            mac: link.mac,
            mtu: link.mtu,
            ipv4,
            ipv6,
        })
    }

    /// The name of the interface that has address `ip` (`--cluster-advertise IP`); one line
    /// naming the flag when none has it.
    pub async fn interface_with_address(&self, flag: &str, ip: IpAddr) -> anyhow::Result<String> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .context("listing addresses")?;
        let index = messages
            .iter()
            .find(|msg| local_address(msg) == Some(ip))
            .map(|msg| msg.header.index)
            .with_context(|| format!("{flag} {ip}: no interface of this host has that address"))?;
        let links = self.links().await?;
        links
            .into_iter()
            .find(|link| link.index == index)
            .map(|link| link.name)
            .with_context(|| format!("{flag} {ip}: its interface vanished"))
    }

    /// Removes `ip` from link `index`; an address already gone is fine.
    pub async fn delete_address(&self, index: u32, ip: IpAddr) -> anyhow::Result<()> {
        for msg in self.address_messages(index).await? {
            if local_address(&msg) == Some(ip) {
                self.handle
                    .address()
                    .del(msg)
                    .execute()
                    .await
                    .with_context(|| format!("removing address {ip}"))?;
            }
        }
        Ok(())
    }

    /// A host route (/32 or /128) to `ip` through link `index`, with `source` as the preferred
    /// source (the gateway), like `ip route add IP dev LINK src GATEWAY`.
    pub async fn add_host_route(
        &self,
        ip: IpAddr,
        index: u32,
        source: IpAddr,
    ) -> anyhow::Result<()> {
        let host_prefix = IpNet::from(ip).max_prefix_len();
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, host_prefix)
            .and_then(|r| r.pref_source(source))
            .with_context(|| format!("route to {ip} from {source}"))?
            .output_interface(index)
            // On-link, as `dev` routes are (IPv6 routes have no scope; the kernel ignores it).
            .scope(RouteScope::Link)
            .build();
        self.add_route(route, || format!("adding route to {ip}"))
            .await
    }

    /// Adds `default via GATEWAY` unless the namespace (a container's) already has a default
    /// route of the gateway's family; each family has its own.
    pub async fn ensure_default_route(&self, gateway: IpAddr) -> anyhow::Result<()> {
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(unspecified(gateway), 0)
            .and_then(|r| r.gateway(gateway))
            .with_context(|| format!("default route via {gateway}"))?
            .build();
        self.ensure_default(gateway, route, || {
            format!("adding default route via {gateway}")
        })
        .await
    }

    /// Adds `default dev LINK` (on-link, no gateway: ipvlan l3, whose container routes by
    /// address through its one link) unless the namespace has a default route of `family`'s.
    pub async fn ensure_default_device_route(
        &self,
        family: IpAddr,
        index: u32,
    ) -> anyhow::Result<()> {
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(unspecified(family), 0)
            .context("default route")?
            .output_interface(index)
            .scope(RouteScope::Link)
            .build();
        self.ensure_default(family, route, || {
            format!("adding default route dev {index}")
        })
        .await
    }

    /// Adds `route`, a default route of `family`'s, unless the namespace has one.
    async fn ensure_default(
        &self,
        family: IpAddr,
        route: RouteMessage,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let any = IpNet::new(unspecified(family), 0).expect("0 is a valid prefix");
        if self.routes().await?.iter().any(|r| r.destination == any) {
            return Ok(());
        }
        self.add_route(route, what).await
    }

    /// Turns ARP (and neighbour discovery) off on link `index`: its neighbours are "reached"
    /// at its own MAC, as on ipvlan l3's links.
    pub async fn set_noarp(&self, index: u32) -> anyhow::Result<()> {
        let msg = LinkUnspec::new_with_index(index).arp(false).build();
        self.set_link(msg, || format!("turning ARP off on link {index}"))
            .await
    }

    /// Adds `mac` to link `index`'s unicast filter, as the kernel's macvlan does for its own
    /// MACs (`bridge fdb add MAC dev LINK self permanent`): a device with a filter takes frames
    /// for that MAC from then on; one without goes promiscuous. Already there is fine.
    pub async fn add_unicast_filter(&self, index: u32, mac: [u8; 6]) -> anyhow::Result<()> {
        let request = self
            .handle
            .neighbours()
            .add_bridge(index, &mac)
            .flags(NeighbourFlags::Own);
        match request.execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            other => {
                other.with_context(|| format!("adding {} to link {index}'s filter", mac_text(mac)))
            }
        }
    }

    /// Undoes [`Self::add_unicast_filter`]; already gone is fine.
    pub async fn remove_unicast_filter(&self, index: u32, mac: [u8; 6]) -> anyhow::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        match self.handle.neighbours().del(msg).execute().await {
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::ENOENT || e.raw_code() == -libc::ENODEV =>
            {
                Ok(())
            }
            other => other
                .with_context(|| format!("removing {} from link {index}'s filter", mac_text(mac))),
        }
    }

    /// The MACs added to link `index`'s unicast filter (its own fdb entries, `self permanent`).
    pub async fn unicast_filters(&self, index: u32) -> anyhow::Result<Vec<[u8; 6]>> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .context("listing the forwarding database")?;
        Ok(messages
            .iter()
            .filter(|m| {
                m.header.ifindex == index
                    && m.header.flags.contains(NeighbourFlags::Own)
                    && m.header.state == NeighbourState::Permanent
            })
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::LinkLayerAddress(mac) => mac.as_slice().try_into().ok(),
                    _ => None,
                })
            })
            .collect())
    }

    /// IPv4 and IPv6 routes of the main table.
    pub async fn routes(&self) -> anyhow::Result<Vec<RouteInfo>> {
        // An unspecified family dumps every family's routes.
        let routes: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<IpAddr>::new().build())
            .execute()
            .try_collect()
            .await
            .context("listing routes")?;
        Ok(routes
            .into_iter()
            .filter(|r| r.header.table == libc::RT_TABLE_MAIN)
            .filter_map(|r| {
                // A default route has no destination attribute.
                let mut destination = match r.header.address_family {
                    AddressFamily::Inet => Ipv4Addr::UNSPECIFIED.into(),
                    AddressFamily::Inet6 => Ipv6Addr::UNSPECIFIED.into(),
                    _ => return None,
                };
                let mut oif = None;
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                            destination = (*ip).into()
                        }
                        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
                            destination = (*ip).into()
                        }
                        RouteAttribute::Oif(index) => oif = Some(*index),
                        _ => {}
                    }
                }
                IpNet::new(destination, r.header.destination_prefix_length)
                    .ok()
                    .map(|destination| RouteInfo { destination, oif })
            })
            .collect())
    }
}

impl Netlink {
    /// The address messages of link `index`.
    async fn address_messages(&self, index: u32) -> anyhow::Result<Vec<AddressMessage>> {
        self.handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .context("listing addresses")
    }

    async fn add_route(
        &self,
        route: RouteMessage,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .with_context(what)
    }

    /// `RTM_SETLINK` with `msg`; `what` describes it for the error.
    async fn set_link(
        &self,
        msg: LinkMessage,
        what: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .with_context(what)
    }
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// `0.0.0.0` or `::`, in `ip`'s family.
fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The address an address message is about: `IFA_LOCAL` (IPv4; `IFA_ADDRESS` is the peer's on
/// point-to-point links), else `IFA_ADDRESS` (IPv6 sends only that).
fn local_address(msg: &AddressMessage) -> Option<IpAddr> {
    let find = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if want_local => Some(*ip),
            AddressAttribute::Address(ip) if !want_local => Some(*ip),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Address(mac) if mac.len() == 6 => info.mac.copy_from_slice(mac),
            LinkAttribute::Mtu(mtu) => info.mtu = *mtu,
            _ => {}
        }
    }
    info
}
