//! The kernel side as the daemon sees it: load the programs, pin and adopt the maps and links,
//! and write typed map entries. Maps are pinned by name under `<bpffs>/maps` and every attach
//! is a bpf link (tcx, XDP, cgroup) pinned under `<bpffs>/links`, so the datapath keeps forwarding while xnetd is
//! stopped, and a restarted xnetd adopts what is pinned instead of tearing it down.

mod encryption;
mod fill;
mod host;
mod lan;
mod load;
mod maps;
mod monitor;
mod object;
mod overlay;
mod publish;
mod uplink;

pub use fill::MapFill;
pub use maps::{Datapath, EndpointEntry, MonitorLosses, MonitorReader};
pub use monitor::decode_event;
pub use object::EBPF_OBJECT;
pub use overlay::{FloodSet, RemoteEndpoint};
pub use publish::PublishEntry;
