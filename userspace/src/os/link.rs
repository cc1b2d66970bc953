//! Links, addresses and routes over rtnetlink, in the daemon's namespace or a container's.

use std::{net::Ipv4Addr, os::fd::AsRawFd, path::Path};

use anyhow::{Context as _, anyhow};
use futures::TryStreamExt as _;
use ipnet::Ipv4Net;
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        address::{AddressAttribute, AddressMessage},
        link::{LinkAttribute, LinkMessage},
        route::{RouteAddress, RouteAttribute, RouteScope},
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
}

/// A route of the main table, reduced to what subnet selection needs.
pub struct RouteInfo {
    pub destination: Ipv4Net,
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

    /// Adds `ip/prefix_len` to link `index`; an address already there is fine.
    pub async fn add_address(
        &self,
        index: u32,
        ip: Ipv4Addr,
        prefix_len: u8,
    ) -> anyhow::Result<()> {
        match self
            .handle
            .address()
            .add(index, ip.into(), prefix_len)
            .execute()
            .await
        {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            other => other.with_context(|| format!("adding address {ip}/{prefix_len}")),
        }
    }

    /// The IPv4 addresses of link `index`, primary first.
    pub async fn ipv4_addresses(&self, index: u32) -> anyhow::Result<Vec<Ipv4Addr>> {
        Ok(self
            .address_messages(index)
            .await?
            .iter()
            .flat_map(|msg| &msg.attributes)
            .filter_map(|a| match a {
                AddressAttribute::Local(std::net::IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            })
            .collect())
    }

    /// Removes `ip` from link `index`; an address already gone is fine.
    pub async fn delete_address(&self, index: u32, ip: Ipv4Addr) -> anyhow::Result<()> {
        for msg in self.address_messages(index).await? {
            let matches = msg
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Local(addr) if *addr == ip));
            if matches {
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

    /// A host route to `ip` through link `index`, with `source` as the preferred source (the
    /// gateway), like `ip route add IP/32 dev LINK src GATEWAY`.
    pub async fn add_host_route(
        &self,
        ip: Ipv4Addr,
        index: u32,
        source: Ipv4Addr,
    ) -> anyhow::Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .output_interface(index)
            .pref_source(source)
            .scope(RouteScope::Link)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .with_context(|| format!("adding route to {ip}"))
    }

    /// `ip route add default via GATEWAY` (inside a container).
    pub async fn add_default_route(&self, gateway: Ipv4Addr) -> anyhow::Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .with_context(|| format!("adding default route via {gateway}"))
    }

    pub async fn has_default_route(&self) -> anyhow::Result<bool> {
        Ok(self
            .routes()
            .await?
            .iter()
            .any(|r| r.destination.prefix_len() == 0))
    }

    /// IPv4 routes of the main table.
    pub async fn routes(&self) -> anyhow::Result<Vec<RouteInfo>> {
        let routes: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .context("listing routes")?;
        Ok(routes
            .into_iter()
            .filter(|r| r.header.table == libc::RT_TABLE_MAIN)
            .filter_map(|r| {
                let mut destination = None;
                let mut oif = None;
                for attr in &r.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                            destination = Some(*ip)
                        }
                        RouteAttribute::Oif(index) => oif = Some(*index),
                        _ => {}
                    }
                }
                let destination = destination.unwrap_or(Ipv4Addr::UNSPECIFIED);
                Ipv4Net::new(destination, r.header.destination_prefix_length)
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

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        mac: [0; 6],
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Address(mac) if mac.len() == 6 => info.mac.copy_from_slice(mac),
            _ => {}
        }
    }
    info
}
