//! Network namespaces as bind-mounted nsfs files, the way `ip netns` and Docker keep them, but
//! under a directory of our own so several daemons never collide.

use std::{
    fs,
    io::ErrorKind,
    os::fd::AsFd,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow};
use nix::{
    errno::Errno,
    mount::{MntFlags, MsFlags, mount, umount2},
    sched::{CloneFlags, setns, unshare},
};

/// Creates a fresh network namespace, sets `sysctls` (paths under /proc/sys/net, values) in
/// it, and pins it at `path` (which must not exist yet).
pub fn create(path: &Path, sysctls: &'static [(&'static str, &'static str)]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
    let target = path.to_owned();
    // unshare() moves the calling *thread* into the new namespace, so do it on a thread of our
    // own that ends right after; the bind mount keeps the namespace alive without it.
    let result = std::thread::spawn(move || -> anyhow::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        // /proc/sys/net shows the namespace of the thread that opens it: this one, now.
        for (key, value) in sysctls {
            fs::write(Path::new("/proc/sys/net").join(key), value)
                .with_context(|| format!("setting net.{key}"))?;
        }
        bind(Path::new("/proc/thread-self/ns/net"), &target)
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))
    .and_then(|r| r);
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Pins the existing namespace `source` (e.g. `/proc/PID/ns/net`) at `path`.
pub fn pin(source: &Path, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::File::create_new(path).with_context(|| format!("creating {}", path.display()))?;
    let result = bind(source, path);
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

fn bind(source: &Path, target: &Path) -> anyhow::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| {
        format!(
            "bind-mounting namespace {} at {}",
            source.display(),
            target.display()
        )
    })
}

/// Unpins the namespace at `path`; it dies with the last process inside it. Missing is fine.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("unmounting {}", path.display())),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Moves the calling thread into the namespace pinned at `path`.
pub fn enter(path: &Path) -> anyhow::Result<()> {
    let file = fs::File::open(path)
        .with_context(|| format!("opening network namespace {}", path.display()))?;
    setns(file.as_fd(), CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {}", path.display()))
}

/// Whether `path` is a pinned namespace (an nsfs mount), not just a leftover file.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Where a daemon keeps the namespaces it pins: beside its socket, so a daemon with private
/// paths never sees another's.
pub fn dir_for_socket(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/run/xnet"))
        .join("netns")
}
