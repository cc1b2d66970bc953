//! `xnetd`: owns the eBPF datapath and serves the xnet API on a Unix socket.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::bail;
use clap::Parser;
use futures::FutureExt as _;
use tracing::{error, info};
use xnet::{
    api::{DEFAULT_SOCKET, metrics, server},
    cluster::config::{Advertise, ClusterConfig, parse_store_urls},
    daemon::{Config, Daemon, DockerConfig},
    docker,
    logging::{self, LogFormat},
};

#[derive(Debug, Parser)]
#[command(
    name = "xnetd",
    version,
    about = "The xnet daemon: container networking on an eBPF datapath"
)]
struct Args {
    /// Unix socket to serve the API on (root-only).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where the state file lives.
    #[arg(long, default_value = "/var/lib/xnet")]
    state_dir: PathBuf,
    /// bpffs directory for this daemon's pinned maps and links.
    #[arg(long, default_value = "/sys/fs/bpf/xnet")]
    bpffs: PathBuf,
    /// The host's uplink: containers' traffic to the outside leaves through it, source-NATed to
    /// its IPv4 address. Without it containers reach only their networks and the host.
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// Also be a Docker network plugin with this driver name (`docker network create -d
    /// NAME`), on the socket `<docker-plugin-dir>/NAME.sock`, where dockerd finds it.
    #[arg(long, value_name = "NAME")]
    docker_plugin: Option<String>,
    /// Where dockerd looks for legacy plugins' sockets.
    #[arg(long, default_value = "/run/docker/plugins")]
    docker_plugin_dir: PathBuf,
    /// Docker's API, asked for the names of the networks and containers it makes.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker_host: String,
    /// Share networks of global scope (overlay) with the other hosts of a cluster through
    /// its etcd: `etcd://HOST:PORT[,HOST:PORT…]` (Docker's classic multi-host flag).
    #[arg(
        long,
        value_name = "etcd://HOST:PORT[,…]",
        requires = "cluster_advertise"
    )]
    cluster_store: Option<String>,
    /// This host's underlay address (its VXLAN endpoint), or the interface that has it.
    #[arg(long, value_name = "IP|IFACE", requires = "cluster_store")]
    cluster_advertise: Option<String>,
    /// This host's name in the cluster (`network inspect`'s Peers); the machine's hostname
    /// by default.
    #[arg(long, value_name = "NAME", requires = "cluster_store")]
    cluster_host_name: Option<String>,
    /// The UDP port of the overlay's VXLAN (Docker's `--data-path-port`): set by the
    /// cluster's first host, 4789 by default; a host given another is refused.
    #[arg(long, value_name = "PORT", requires = "cluster_store")]
    data_path_port: Option<u16>,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (Docker's flag; 127.0.0.1:9323 is
    /// Docker's address). Off unless given.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// The most `xnet monitor` events the datapath writes per second on each CPU; the rest
    /// are counted as lost, so a flood of drops never floods the monitor.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    monitor_rate: u32,
    /// The resolv.conf whose nameservers the containers' embedded DNS forwards other names
    /// to, asked from the daemon's namespace (the host's).
    #[arg(long, value_name = "PATH", default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// What to log: a level (error, warn, info, debug, trace) or `tracing` directives
    /// (`xnet::daemon=debug,info`).
    #[arg(long, env = "XNET_LOG", default_value = "info")]
    log_level: String,
    /// How to write log lines (to stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(err) = logging::init(&args.log_level, args.log_format) {
        eprintln!("xnetd: {err:#}");
        std::process::exit(1);
    }
    if let Err(err) = serve(args).await {
        error!("{err:#}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("xnetd must run as root (it creates namespaces and loads eBPF programs)");
    }
    let metrics_listener = match args.metrics_addr {
        Some(address) => Some(metrics::bind(address).await?),
        None => None,
    };
    let docker = match args.docker_plugin {
        Some(plugin) => {
            let valid = !plugin.is_empty()
                && plugin
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                bail!("--docker-plugin {plugin:?}: only [a-zA-Z0-9_.-] are allowed");
            }
            Some(DockerConfig {
                socket: args.docker_plugin_dir.join(format!("{plugin}.sock")),
                plugin,
                api: args.docker_host,
            })
        }
        None => None,
    };
    let cluster = match args.cluster_store {
        Some(store) => Some(ClusterConfig {
            endpoints: parse_store_urls(&store).map_err(anyhow::Error::msg)?,
            advertise: Advertise::parse(&args.cluster_advertise.unwrap_or_default()),
            host_name: match args.cluster_host_name {
                Some(name) => name,
                None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
            },
            vxlan_port: args.data_path_port,
        }),
        None => None,
    };
    let config = Config {
        socket: args.socket,
        state_dir: args.state_dir,
        bpffs: args.bpffs,
        uplink: args.uplink,
        docker,
        cluster,
        monitor_rate: args.monitor_rate,
        resolv_conf: args.resolv_conf,
    };
    xnet::os::bpffs::ensure_mounted(&config.bpffs)?;
    let daemon = Arc::new(Daemon::start(&config).await?);
    // Before serving, so the first requests find the cluster's store if it answers.
    let joined = daemon.join_cluster_now().await;
    tokio::spawn(daemon.clone().keep_in_cluster(joined));
    tokio::spawn(daemon.clone().read_monitor_events());
    info!(socket = %config.socket.display(), "serving xnet's API");
    if let Some(docker) = &config.docker {
        info!(plugin = %docker.plugin, socket = %docker.socket.display(), "serving Docker's network plugin");
        tokio::spawn(daemon.clone().name_docker_objects(docker.api.clone()));
    }

    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // Nothing is torn down: the datapath keeps forwarding from its pins until the next start.
        info!("stopping; the datapath keeps forwarding");
    }
    .shared();
    if let Some(listener) = metrics_listener {
        info!(address = %listener.local_addr()?, "serving metrics");
        let (daemon, shutdown) = (daemon.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(listener, daemon, shutdown).await {
                error!("{e:#}");
            }
        });
    }
    let api = server::serve(
        &config.socket,
        server::router(daemon.clone()),
        shutdown.clone(),
    );
    let served = match &config.docker {
        None => api.await,
        Some(plugin) => {
            let routes = docker::routes::router(daemon);
            let plugin = server::serve(&plugin.socket, routes, shutdown);
            let (api, plugin) = tokio::join!(api, plugin);
            api.and(plugin)
        }
    };
    let _ = std::fs::remove_file(&config.socket);
    if let Some(docker) = &config.docker {
        let _ = std::fs::remove_file(&docker.socket);
    }
    served
}
