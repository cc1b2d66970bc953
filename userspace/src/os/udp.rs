//! UDP with the kernel's segmentation offloads, for the encryption worker: a send of many
//! equal-sized datagrams to one address as one buffer (`UDP_SEGMENT`: the stack carries one
//! skb, segmented as late as the device allows), and a receive that returns the datagrams GRO
//! coalesced as one buffer with their size (`UDP_GRO`). Each costs one system call and one
//! trip through the stack for up to 64 KiB of datagrams rather than one per datagram. No crate
//! wraps these control messages; `socket2` makes the socket.

use std::{
    io, mem,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, OwnedFd},
};

use socket2::{Domain, Protocol, Socket, Type};

/// From linux/udp.h.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// Socket buffers deep enough for a burst of a fast flow (the kernel caps them at
/// net.core.{r,w}mem_max).
const SOCKET_BUFFER: usize = 4 << 20;
/// Room for one control message of one `int` (the GRO segment size).
const CONTROL_LEN: usize = 64;

/// A UDP socket bound to an address and port it shares with others (`SO_REUSEPORT`: the kernel
/// spreads flows over them), with GRO on.
pub struct SegmentingSocket(OwnedFd);

impl SegmentingSocket {
    pub fn bind_shared(local: SocketAddrV4) -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_port(true)?;
        // Best effort, as above.
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.bind(&SocketAddr::V4(local).into())?;
        let fd = OwnedFd::from(socket);
        set_int(&fd, UDP_GRO, 1)?;
        Ok(Self(fd))
    }

    /// Sends `datagrams`, consecutive datagrams of `size` bytes (the last may be shorter), to
    /// `to`: one datagram each on the wire.
    pub fn send_segments(&self, datagrams: &[u8], size: usize, to: SocketAddrV4) -> io::Result<()> {
        let address = sockaddr(to);
        let mut iov = libc::iovec {
            iov_base: datagrams.as_ptr().cast_mut().cast(),
            iov_len: datagrams.len(),
        };
        let mut control = [0u64; CONTROL_LEN / 8];
        // SAFETY: a zeroed msghdr is valid; every pointer set below outlives the call.
        let mut message: libc::msghdr = unsafe { mem::zeroed() };
        message.msg_name = (&raw const address).cast_mut().cast();
        message.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        message.msg_iov = &raw mut iov;
        message.msg_iovlen = 1;
        if datagrams.len() > size {
            let segment = u16::try_from(size)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment too big"))?;
            message.msg_control = control.as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE is arithmetic.
            message.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as _;
            // SAFETY: the control buffer holds one header and its u16 (CMSG_SPACE above fits in
            // CONTROL_LEN), aligned for cmsghdr (u64 storage).
            unsafe {
                let header = libc::CMSG_FIRSTHDR(&message);
                (*header).cmsg_level = SOL_UDP;
                (*header).cmsg_type = UDP_SEGMENT;
                (*header).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                libc::CMSG_DATA(header)
                    .cast::<u16>()
                    .write_unaligned(segment);
            }
        }
        // SAFETY: a complete msghdr whose buffers are alive.
        if unsafe { libc::sendmsg(self.0.as_raw_fd(), &message, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives into `buf` what arrived next: its length, the size of each datagram in it
    /// (GRO may have coalesced several of one sender's; the last may be shorter), and the
    /// sender. Waits for one.
    pub fn recv_segments(&self, buf: &mut [u8]) -> io::Result<(usize, usize, SocketAddrV4)> {
        // SAFETY: a zeroed sockaddr_in is valid; the kernel fills it in.
        let mut address: libc::sockaddr_in = unsafe { mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; CONTROL_LEN / 8];
        // SAFETY: as in `send_segments`.
        let mut message: libc::msghdr = unsafe { mem::zeroed() };
        message.msg_name = (&raw mut address).cast();
        message.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        message.msg_iov = &raw mut iov;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = CONTROL_LEN as _;
        let len = loop {
            // SAFETY: a complete msghdr whose buffers are alive.
            let n = unsafe { libc::recvmsg(self.0.as_raw_fd(), &mut message, 0) };
            if n >= 0 {
                break n as usize;
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        };
        let mut size = len;
        // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
        unsafe {
            let mut header = libc::CMSG_FIRSTHDR(&message);
            while !header.is_null() {
                if (*header).cmsg_level == SOL_UDP && (*header).cmsg_type == UDP_GRO {
                    let gso = libc::CMSG_DATA(header)
                        .cast::<libc::c_int>()
                        .read_unaligned();
                    size = usize::try_from(gso).unwrap_or(len).max(1);
                }
                header = libc::CMSG_NXTHDR(&message, header);
            }
        }
        let from = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)),
            u16::from_be(address.sin_port),
        );
        Ok((len, size, from))
    }
}

fn sockaddr(address: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: address.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*address.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn set_int(fd: &OwnedFd, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt with a pointer to an int of the size given.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_UDP,
            option,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
