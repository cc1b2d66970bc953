//! What one daemon is started with; several daemons with different paths coexist.

use std::path::PathBuf;

use crate::cluster::config::ClusterConfig;

/// Where one daemon keeps everything, and what it serves besides its own API.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
    /// The interface egress leaves through (source-NATed to its address); none: no egress.
    pub uplink: Option<String>,
    /// Serve Docker's network plugin protocol (`--docker-plugin`).
    pub docker: Option<DockerConfig>,
    /// Share networks of global scope with other hosts (`--cluster-store`).
    pub cluster: Option<ClusterConfig>,
    /// The most monitor events the datapath writes per second on each CPU (`--monitor-rate`).
    pub monitor_rate: u32,
    /// The host's resolv.conf: the embedded DNS forwards to its nameservers.
    pub resolv_conf: PathBuf,
}

/// xnetd as a Docker network plugin.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The driver name (`docker network create -d NAME`): the socket is
    /// `<plugin dir>/NAME.sock`.
    pub plugin: String,
    pub socket: PathBuf,
    /// Docker's API (`unix:///var/run/docker.sock`), asked for the names of what it made.
    pub api: String,
}
