//! The uplink (`xnetd --uplink IFACE`): its address in `UPLINK`, and its two programs, each a
//! pinned bpf link: `uplink_xdp` (published ports, translated before the kernel builds an skb)
//! and `uplink_ingress` at tcx (replies of containers' NATed connections).

use std::{net::Ipv6Addr, path::Path};

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{TcAttachType, Xdp, XdpMode, links::FdLink, xdp::XdpLink},
};
use xnet_common::{PROG_UPLINK_INGRESS, PROG_UPLINK_XDP, Uplink};

use super::{
    maps::Datapath,
    object::{adopt_pinned, one_line_load_error, program, remove_file_if_exists, repin},
};

/// The pins of the uplink's links (endpoint links are named by ifindex).
const INGRESS_PIN: &str = "uplink-ingress";
const XDP_PIN: &str = "uplink-xdp";

pub(super) fn load_xdp(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    xdp(ebpf)?
        .load()
        .map_err(|e| one_line_load_error(PROG_UPLINK_XDP, e))
}

fn xdp(ebpf: &mut Ebpf) -> anyhow::Result<&mut Xdp> {
    program(ebpf, PROG_UPLINK_XDP, "an XDP program")
}

impl Datapath {
    /// Makes `ifname` the uplink: egress is source-NATed to `ipv4` (and IPv6 egress to
    /// `ipv6`; without one it is dropped as `no-uplink`) and leaves through it; replies are
    /// picked up at its tcx ingress, and connections to published ports by its XDP program.
    /// Links pinned by an earlier run are adopted (their programs replaced in place) if they
    /// are on this same interface, and replaced if the uplink moved.
    pub fn set_uplink(
        &mut self,
        ifname: &str,
        ifindex: u32,
        ipv4: [u8; 4],
        ipv6: Option<Ipv6Addr>,
    ) -> anyhow::Result<()> {
        let previous = self.uplink.get(&0, 0).context("reading UPLINK")?;
        if previous.ifindex != 0 && previous.ifindex != ifindex {
            self.remove_uplink_links()?;
        }
        let uplink = Uplink {
            ifindex,
            ipv4,
            ipv6: ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        };
        self.uplink.set(0, uplink, 0).context("writing UPLINK")?;
        let ingress_pin = self.links_dir.join(INGRESS_PIN);
        self.attach(
            PROG_UPLINK_INGRESS,
            TcAttachType::Ingress,
            ifname,
            &ingress_pin,
        )?;
        let xdp_pin = self.links_dir.join(XDP_PIN);
        self.attach_xdp(ifname, &xdp_pin)
    }

    /// No uplink: egress is refused (`no-uplink`), and a previous run's uplink hooks go.
    pub fn clear_uplink(&mut self) -> anyhow::Result<()> {
        self.uplink
            .set(0, Uplink::default(), 0)
            .context("writing UPLINK")?;
        self.remove_uplink_links()
    }

    fn remove_uplink_links(&self) -> anyhow::Result<()> {
        // The pins are the links' only holders: removing them detaches the programs.
        for pin in [INGRESS_PIN, XDP_PIN] {
            remove_file_if_exists(&self.links_dir.join(pin))?;
        }
        Ok(())
    }

    /// Attaches `uplink_xdp` to `ifname` in whatever mode the kernel picks (the driver's own
    /// where it has XDP, as veth does; generic XDP otherwise), or adopts the link pinned at
    /// `pin`, and pins it there.
    fn attach_xdp(&mut self, ifname: &str, pin: &Path) -> anyhow::Result<()> {
        let prog = xdp(&mut self.ebpf)?;
        let adopted = adopt_pinned(pin, |link: XdpLink| prog.attach_to_link(link))?;
        let link_id = match adopted {
            Some(link_id) => link_id,
            None => prog
                .attach(ifname, XdpMode::Default)
                .with_context(|| format!("attaching {PROG_UPLINK_XDP} to {ifname}"))?,
        };
        let link = FdLink::try_from(prog.take_link(link_id)?).context("XDP bpf link expected")?;
        repin(link, pin)
    }
}
