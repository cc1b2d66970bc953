//! The socket hooks for the host's own connections to published ports (`connect4`, `sendmsg4`,
//! `recvmsg4`, `getpeername4`, and their IPv6 twins, on the root of the cgroup v2 hierarchy, so every process is below them). They see
//! the whole machine's sockets and act on those of this daemon's network namespace only, whose
//! cookie they find in `HOST_NETNS`.

use std::{
    fs,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSockAddr, links::FdLink},
};
use xnet_common::{
    PROG_HOST_CONNECT4, PROG_HOST_CONNECT6, PROG_HOST_GETPEERNAME4, PROG_HOST_GETPEERNAME6,
    PROG_HOST_RECVMSG4, PROG_HOST_RECVMSG6, PROG_HOST_SENDMSG4, PROG_HOST_SENDMSG6,
};

use super::{
    maps::Datapath,
    object::{one_line_load_error, program, repin},
};

/// The hooks and the names of their link pins.
const HOOKS: [(&str, &str); 8] = [
    (PROG_HOST_CONNECT4, "host-connect4"),
    (PROG_HOST_SENDMSG4, "host-sendmsg4"),
    (PROG_HOST_RECVMSG4, "host-recvmsg4"),
    (PROG_HOST_GETPEERNAME4, "host-getpeername4"),
    (PROG_HOST_CONNECT6, "host-connect6"),
    (PROG_HOST_SENDMSG6, "host-sendmsg6"),
    (PROG_HOST_RECVMSG6, "host-recvmsg6"),
    (PROG_HOST_GETPEERNAME6, "host-getpeername6"),
];

pub(super) fn load_hooks(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    for (name, _) in HOOKS {
        hook(ebpf, name)?
            .load()
            .map_err(|e| one_line_load_error(name, e))?;
    }
    Ok(())
}

fn hook<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut CgroupSockAddr> {
    program(ebpf, name, "a cgroup socket hook")
}

impl Datapath {
    /// Attaches the socket hooks for the calling thread's network namespace (the daemon's) and
    /// pins their links. A previous run's links are replaced only after the new ones are in, so
    /// the host's connections are translated throughout. Returns false, attaching nothing, when
    /// the machine has no cgroup v2 hierarchy.
    pub fn attach_host_hooks(&mut self) -> anyhow::Result<bool> {
        let Some(root) = cgroup2_root()? else {
            return Ok(false);
        };
        self.host_netns
            .set(0, netns_cookie()?, 0)
            .context("writing HOST_NETNS")?;
        let cgroup =
            fs::File::open(&root).with_context(|| format!("opening {}", root.display()))?;
        for (name, pin_name) in HOOKS {
            let prog = hook(&mut self.ebpf, name)?;
            // A bpf link on a cgroup coexists with others whatever the mode; the kernel refuses
            // the multi flag on link creation.
            let id = prog
                .attach(&cgroup, CgroupAttachMode::Single)
                .with_context(|| format!("attaching {name} to {}", root.display()))?;
            let link = FdLink::try_from(prog.take_link(id)?).context("bpf link expected")?;
            repin(link, &self.links_dir.join(pin_name))?;
        }
        Ok(true)
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on
/// hybrid hosts), if anywhere.
fn cgroup2_root() -> anyhow::Result<Option<PathBuf>> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    Ok(mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, path, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(path))
    }))
}

/// The cookie of the calling thread's network namespace, as the hooks'
/// `bpf_get_netns_cookie` sees it: asked of a throwaway socket.
fn netns_cookie() -> anyhow::Result<u64> {
    // SAFETY: plain socket(2); the descriptor is owned (and closed) by `socket` below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket()");
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("getsockopt(SO_NETNS_COOKIE)");
    }
    Ok(cookie)
}
