//! A multi-queue TAP device opened the way the encryption worker needs it (no crate offers
//! these flags): with NAPI (`IFF_NAPI`), so frames written into it go through GRO, and every
//! queue non-blocking, which is what makes the kernel run the device's XDP program on a
//! written frame (it builds the skb around the frame only for non-blocking writes). Reads wait
//! with `poll`. The device lives as long as its queues' descriptors.

use std::{
    io, mem,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

/// `TUNSETIFF` from linux/if_tun.h: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// One queue of the device: its frames to read (what the kernel sends out of the device) and
/// the way in (what the worker writes is received by the device).
pub struct TapQueue(OwnedFd);

impl TapQueue {
    /// The next frame the kernel sent out of the device, into `buf`; waits for one.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(len) = self.try_read(buf)? {
                return Ok(len);
            }
            self.wait_readable()?;
        }
    }

    /// The next frame, if one is there.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: reading into a buffer we own, of its length.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Some(n as usize));
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => {}
                _ => return Err(error),
            }
        }
    }

    /// Hands `frame` to the device, as if it had arrived on it.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        // SAFETY: writing from a buffer we own, of its length.
        let n = unsafe { libc::write(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn wait_readable(&self) -> io::Result<()> {
        let mut poll = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd of ours; no timeout.
        if unsafe { libc::poll(&mut poll, 1, -1) } < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Opens `queues` queues (at least one) of TAP device `name`, creating it with the first (in
/// the calling thread's namespace). Frames carry no packet-information header.
pub fn open(name: &str, queues: usize) -> io::Result<Vec<TapQueue>> {
    (0..queues.max(1)).map(|_| open_queue(name)).collect()
}

fn open_queue(name: &str) -> io::Result<TapQueue> {
    // SAFETY: `ifreq` is plain data; all zeroes is a valid (empty) request.
    let mut request: libc::ifreq = unsafe { mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= request.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name} is too long"),
        ));
    }
    for (dst, src) in request.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    request.ifr_ifru.ifru_flags =
        (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE | libc::IFF_NAPI) as libc::c_short;
    // SAFETY: opening a device file; the descriptor is owned below.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: TUNSETIFF takes a pointer to a whole `ifreq`.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &raw mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TapQueue(fd))
}
