//! How full the datapath's maps are (for metrics): the entries of every pinned map that grows
//! (hash, LRU hash, LPM trie) against its capacity. Arrays are full by construction and are
//! left out. The kernel keeps no entry count a user can read, so the keys are walked with
//! `BPF_MAP_GET_NEXT_KEY`; aya keeps its key iterator for typed maps, and these are read by
//! pin, whatever their types.

use std::{
    fs, io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
};

use anyhow::Context as _;
use aya::maps::{MapInfo, MapType};

use super::maps::Datapath;

/// One map's fill level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFill {
    /// Its name, as pinned (`NAT_FLOWS`).
    pub name: String,
    pub entries: u32,
    pub capacity: u32,
}

/// The bpf(2) command that returns the key after the one given (the first key without one).
const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

impl Datapath {
    /// The fill level of every growing map, by name.
    pub fn fill(&self) -> anyhow::Result<Vec<MapFill>> {
        let mut fills = Vec::new();
        for entry in fs::read_dir(&self.maps_dir)
            .with_context(|| format!("listing {}", self.maps_dir.display()))?
        {
            let path = entry?.path();
            let info =
                MapInfo::from_pin(&path).with_context(|| format!("reading {}", path.display()))?;
            let grows = matches!(
                info.map_type(),
                Ok(MapType::Hash
                    | MapType::LruHash
                    | MapType::PerCpuHash
                    | MapType::LruPerCpuHash
                    | MapType::LpmTrie)
            );
            if !grows {
                continue;
            }
            let fd = info
                .fd()
                .with_context(|| format!("opening {}", path.display()))?;
            let entries = count_keys(fd.as_fd(), info.key_size(), info.max_entries())
                .with_context(|| format!("counting the entries of {}", path.display()))?;
            fills.push(MapFill {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                entries,
                capacity: info.max_entries(),
            });
        }
        fills.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(fills)
    }
}

/// The `bpf_attr` of the map element commands.
#[repr(C)]
struct ElementAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    next_key: u64,
    flags: u64,
}

/// Walks the keys of the map `fd`, at most `capacity` of them: an LRU map the datapath is
/// changing meanwhile can restart the walk (a deleted key leads back to the first), so the
/// count is a snapshot that never exceeds the capacity.
fn count_keys(fd: BorrowedFd<'_>, key_size: u32, capacity: u32) -> io::Result<u32> {
    let mut key = vec![0u8; key_size as usize];
    let mut next = vec![0u8; key_size as usize];
    let mut count = 0;
    while count < capacity {
        let attr = ElementAttr {
            map_fd: fd.as_raw_fd() as u32,
            _pad: 0,
            // No key asks for the first one.
            key: if count == 0 { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: `attr` is a valid bpf_attr for this command; its pointers point at buffers
        // of the map's key size that outlive the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_KEY,
                &attr as *const ElementAttr,
                std::mem::size_of::<ElementAttr>(),
            )
        };
        if ret < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ENOENT) {
                break;
            }
            return Err(error);
        }
        count += 1;
        std::mem::swap(&mut key, &mut next);
    }
    Ok(count)
}
