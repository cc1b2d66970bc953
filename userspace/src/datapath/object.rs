//! The compiled object and the small operations every part of the datapath does on it:
//! finding a program or map by name (typed), pinning a link in place of an older one,
//! removals that tolerate what is gone, and a refused program's error in one line.

use std::{fs, io::ErrorKind, path::Path};

use anyhow::{Context as _, anyhow};
use aya::{
    Ebpf,
    maps::MapError,
    programs::{
        Program, ProgramError, SchedClassifier,
        links::{FdLink, PinnedLink},
    },
};
use tracing::{error, warn};

/// The compiled kernel programs (built by build.rs from the `xnet-ebpf` crate).
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xnet"));

/// A program the kernel refused, in one line: the verifier's log (hundreds of lines) goes to
/// stderr first, for whoever debugs it.
pub(super) fn one_line_load_error(name: &str, err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            error!(program = name, "verifier log:\n{verifier_log}");
            anyhow!(
                "the kernel refused program {name} ({io_error}); `cargo xtask doctor` checks the kernel's features"
            )
        }
        other => anyhow::Error::new(other).context(format!("loading program {name}")),
    }
}

/// Program `name` of the object as the type `P` it must have (`kind` names it in the error).
pub(super) fn program<'a, P>(
    ebpf: &'a mut Ebpf,
    name: &str,
    kind: &str,
) -> anyhow::Result<&'a mut P>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))?
        .try_into()
        .with_context(|| format!("program {name} is not {kind}"))
}

pub(super) fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> anyhow::Result<&'a mut SchedClassifier> {
    program(ebpf, name, "a TC classifier")
}

pub(super) fn take_map<T>(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<T>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}

/// Pins `link` at `pin`, in place of whatever was pinned there (the link it replaces, or
/// adopted).
pub(super) fn repin(link: FdLink, pin: &Path) -> anyhow::Result<()> {
    remove_file_if_exists(pin)?;
    link.pin(pin)
        .with_context(|| format!("pinning {}", pin.display()))?;
    Ok(())
}

/// Adopts the link an earlier run pinned at `pin` by replacing its program in place
/// (`replace`: the program's `attach_to_link`), so the hook never goes without one. None when
/// there is no pin, or when the pinned link no longer works (detached behind the daemon's
/// back, `BPF_LINK_DETACH`: "Link has been severed"; or its device gone): the pin is then
/// removed and the caller attaches a new link instead of refusing to start.
pub(super) fn adopt_pinned<L, Id>(
    pin: &Path,
    replace: impl FnOnce(L) -> Result<Id, ProgramError>,
) -> anyhow::Result<Option<Id>>
where
    L: TryFrom<FdLink>,
    L::Error: std::error::Error + Send + Sync + 'static,
{
    let Ok(pinned) = PinnedLink::from_pin(pin) else {
        return Ok(None);
    };
    let link =
        L::try_from(FdLink::from(pinned)).with_context(|| format!("adopting {}", pin.display()))?;
    match replace(link) {
        Ok(link_id) => Ok(Some(link_id)),
        Err(e) => {
            warn!(
                "the link pinned at {} no longer works ({e}); attaching anew",
                pin.display()
            );
            remove_file_if_exists(pin)?;
            Ok(None)
        }
    }
}

pub(super) fn remove_file_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A removal of a key that is already gone succeeded as far as we are concerned.
pub(super) fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
