//! The BPF filesystem: where maps and links are pinned so they outlive the daemon.

use std::path::Path;

use anyhow::{Context as _, bail};
use nix::{
    mount::{MsFlags, mount},
    sys::statfs::{BPF_FS_MAGIC, statfs},
};

const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// Makes sure `pin_dir` lies on a bpffs, mounting one at /sys/fs/bpf if none is there (it is
/// not mounted at boot on every machine).
pub fn ensure_mounted(pin_dir: &Path) -> anyhow::Result<()> {
    let root = Path::new(BPFFS_ROOT);
    if !is_bpffs(root) {
        mount(
            Some("bpf"),
            root,
            Some("bpf"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting bpffs at /sys/fs/bpf")?;
    }
    let existing = pin_dir.ancestors().find(|p| p.exists()).unwrap_or(root);
    if !is_bpffs(existing) {
        bail!(
            "--bpffs {} is not on a BPF filesystem (use a directory under {BPFFS_ROOT})",
            pin_dir.display()
        );
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    statfs(path).is_ok_and(|fs| fs.filesystem_type() == BPF_FS_MAGIC)
}
