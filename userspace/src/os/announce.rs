//! Announcing an interface's addresses on its link (a gratuitous ARP request, an unsolicited
//! neighbour advertisement to all nodes), as Docker 28 does when a macvlan or ipvlan container
//! joins: the LAN's switches and neighbours learn its MAC at once, not at their next ARP
//! timeout. Runs in the calling thread's namespace (`netns::run_in` for a container's).
//!
//! An interface just set up drops what it sends until the kernel has activated its transmit
//! queue (the link watcher does that a moment after the carrier comes on), so an announcement
//! first waits for the interface to be running.

use std::{
    io, mem,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::Context as _;

const ETH_P_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The advertisement's Override flag: receivers replace what they cached.
const OVERRIDE: u8 = 0x20;
/// The target link-layer address option.
const TARGET_LINK_LAYER_ADDRESS: u8 = 2;

/// Announces `ipv4` (and `ipv6`) with `mac` on interface `ifname`.
pub fn announce(
    ifname: &str,
    mac: [u8; 6],
    ipv4: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
) -> anyhow::Result<()> {
    let name = std::ffi::CString::new(ifname).context("an interface name with a NUL")?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("looking up {ifname}"));
    }
    let request = InterfaceRequest::new(&name)?;
    // Announcing again later must not speak for an interface that has since changed hands.
    if request.mac()? != mac {
        anyhow::bail!("{ifname} no longer has the MAC announced");
    }
    request.wait_until_running()?;
    gratuitous_arp(ifindex, mac, ipv4).context("sending a gratuitous ARP")?;
    if let Some(ipv6) = ipv6 {
        unsolicited_advertisement(ifindex, mac, ipv6)
            .context("sending an unsolicited neighbour advertisement")?;
    }
    Ok(())
}

/// How long an interface may take to start running before its announcement is given up.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(2);

/// An `ifreq` for one interface and a socket to ask the kernel with.
struct InterfaceRequest {
    socket: OwnedFd,
    name: [libc::c_char; libc::IFNAMSIZ],
}

impl InterfaceRequest {
    fn new(name: &std::ffi::CStr) -> anyhow::Result<Self> {
        let bytes = name.to_bytes_with_nul();
        let mut padded = [0; libc::IFNAMSIZ];
        if bytes.len() > padded.len() {
            anyhow::bail!("interface name {name:?} is too long");
        }
        for (slot, byte) in padded.iter_mut().zip(bytes) {
            *slot = *byte as libc::c_char;
        }
        let socket = checked_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
        Ok(Self {
            socket,
            name: padded,
        })
    }

    /// The ifreq after `request` (SIOCGIF…) filled it.
    fn ask(&self, request: libc::Ioctl) -> io::Result<libc::ifreq> {
        // SAFETY: all zero is a valid ifreq.
        let mut ifreq: libc::ifreq = unsafe { mem::zeroed() };
        ifreq.ifr_name = self.name;
        // SAFETY: the SIOCGIF requests read the name and write the union of the ifreq passed.
        if unsafe { libc::ioctl(self.socket.as_raw_fd(), request, &mut ifreq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ifreq)
    }

    fn mac(&self) -> anyhow::Result<[u8; 6]> {
        let ifreq = self
            .ask(libc::SIOCGIFHWADDR)
            .context("reading the interface's MAC")?;
        // SAFETY: SIOCGIFHWADDR filled the hardware address member of the union.
        let data = unsafe { ifreq.ifr_ifru.ifru_hwaddr.sa_data };
        Ok(std::array::from_fn(|i| data[i] as u8))
    }

    /// Waits for the interface to be running (`IFF_RUNNING`: up, carrier on, operational).
    fn wait_until_running(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + RUNNING_TIMEOUT;
        loop {
            let ifreq = self
                .ask(libc::SIOCGIFFLAGS)
                .context("reading the interface's flags")?;
            // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
            let flags = unsafe { ifreq.ifr_ifru.ifru_flags };
            if flags & libc::IFF_RUNNING as libc::c_short != 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the interface did not start running within {RUNNING_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// An ARP request for its own address (sender and target both `ip`), to the broadcast MAC:
/// the form Linux itself sends (`arp_notify`).
fn gratuitous_arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    // A datagram packet socket: the kernel writes the Ethernet header for the address below.
    let socket = checked_socket(
        libc::AF_PACKET,
        libc::SOCK_DGRAM,
        i32::from(ETH_P_ARP.to_be()),
    )?;
    let mut arp = Vec::with_capacity(28);
    arp.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    arp.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    arp.extend_from_slice(&[6, 4]);
    arp.extend_from_slice(&ARP_REQUEST.to_be_bytes());
    arp.extend_from_slice(&mac);
    arp.extend_from_slice(&ip.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&ip.octets());
    // SAFETY: all zero is a valid sockaddr_ll; the fields that matter are set below.
    let mut to: libc::sockaddr_ll = unsafe { mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    send_to(&socket, &arp, &to)
}

/// A neighbour advertisement for `ip` (Override set, with its MAC as the target's link-layer
/// address) to all nodes (ff02::1), hop limit 255 as neighbour discovery requires; the kernel
/// computes an ICMPv6 raw socket's checksum.
fn unsolicited_advertisement(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    let socket = checked_socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    let hops: libc::c_int = 255;
    set_option(&socket, libc::IPV6_MULTICAST_HOPS, &hops)?;
    set_option(&socket, libc::IPV6_MULTICAST_IF, &(ifindex as libc::c_int))?;
    let mut message = vec![NEIGHBOR_ADVERTISEMENT, 0, 0, 0, OVERRIDE, 0, 0, 0];
    message.extend_from_slice(&ip.octets());
    message.extend_from_slice(&[TARGET_LINK_LAYER_ADDRESS, 1]);
    message.extend_from_slice(&mac);
    // SAFETY: all zero is a valid sockaddr_in6; the fields that matter are set below.
    let mut to: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    to.sin6_family = libc::AF_INET6 as u16;
    to.sin6_addr.s6_addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets();
    to.sin6_scope_id = ifindex;
    send_to(&socket, &message, &to)
}

fn checked_socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_option(socket: &OwnedFd, option: i32, value: &libc::c_int) -> io::Result<()> {
    // SAFETY: `value` points at a c_int for the length given.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            option,
            (value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn send_to<A>(socket: &OwnedFd, payload: &[u8], to: &A) -> io::Result<()> {
    // SAFETY: `payload` and `to` are valid for the lengths given; `A` is a sockaddr type.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (to as *const A).cast(),
            mem::size_of::<A>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
