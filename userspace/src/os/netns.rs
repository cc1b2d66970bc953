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

/// Creates a fresh network namespace, sets `sysctls` (see [`write_sysctls`]) in it, and pins
/// it at `path` (which must not exist yet).
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
        write_sysctls(sysctls)?;
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

/// Writes `sysctls` (paths under /proc/sys/net, values), in order, in the calling thread's
/// namespace: /proc/sys/net shows the namespace of the thread that opens it.
pub fn write_sysctls<K: AsRef<str>>(sysctls: &[(K, &str)]) -> anyhow::Result<()> {
    for (key, value) in sysctls {
        let key = key.as_ref();
        fs::write(Path::new("/proc/sys/net").join(key), value)
            .with_context(|| format!("setting net.{key}={value}"))?;
    }
    Ok(())
}

/// [`write_sysctls`] inside the namespace pinned at `path`.
pub fn write_sysctls_in(path: &Path, sysctls: Vec<(String, &'static str)>) -> anyhow::Result<()> {
    run_in(path, move || write_sysctls(&sysctls))
}

/// Runs `work` inside the namespace pinned at `path`, on a thread of our own that enters it and
/// ends right after (the daemon's other threads stay in the host's namespace).
pub fn run_in<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        enter(&path)?;
        work()
    })
    .join()
    .map_err(|_| anyhow!("namespace thread panicked"))?
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

/// Whether two paths name the same namespace (or file): same device and inode.
pub fn same_namespace(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let id = |p: &Path| fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}

/// Where a daemon keeps the namespaces it pins: beside its socket, so a daemon with private
/// paths never sees another's.
pub fn dir_for_socket(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/run/xnet"))
        .join("netns")
}

/// Writes `value` to `/sys/class/net/<device>/<attribute>` of the calling thread's network
/// namespace. /sys shows the namespace of whoever mounted it (for a daemon started with
/// `nsenter --net`, the machine's), so this mounts a sysfs of its own: on a thread of its own,
/// in a mount namespace of its own (slave to the machine's, so nothing propagates back), gone
/// with the thread.
pub fn write_device_attribute(device: &str, attribute: &str, value: &str) -> anyhow::Result<()> {
    let netns = fs::File::open("/proc/thread-self/ns/net").context("opening this namespace")?;
    let (device, attribute, value) = (device.to_string(), attribute.to_string(), value.to_string());
    std::thread::spawn(move || -> anyhow::Result<()> {
        setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).context("entering the namespace")?;
        unshare(CloneFlags::CLONE_NEWNS).context("unsharing the mount namespace")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .context("making the mounts private")?;
        let dir = std::env::temp_dir().join(format!("xnet-sysfs-{}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let written = mount(
            Some("sysfs"),
            &dir,
            Some("sysfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting sysfs")
        .and_then(|()| {
            let path = dir.join("class/net").join(&device).join(&attribute);
            let result = fs::write(&path, &value)
                .with_context(|| format!("writing {value} to {attribute} of {device}"));
            let _ = umount2(&dir, MntFlags::MNT_DETACH);
            result
        });
        let _ = fs::remove_dir(&dir);
        written
    })
    .join()
    .map_err(|_| anyhow!("sysfs thread panicked"))?
}
