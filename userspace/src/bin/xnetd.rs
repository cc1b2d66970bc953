//! `xnetd`: owns the eBPF datapath and serves the xnet API on a Unix socket.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context as _, bail};
use clap::Parser;
use xnet::{
    api::server,
    daemon::{Config, Daemon, DockerConfig},
};

#[derive(Debug, Parser)]
#[command(
    name = "xnetd",
    version,
    about = "The xnet daemon: container networking on an eBPF datapath"
)]
struct Args {
    /// Unix socket to serve the API on (root-only).
    #[arg(long, default_value = "/run/xnet/xnet.sock")]
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
}

#[tokio::main]
async fn main() {
    if let Err(err) = serve(Args::parse()).await {
        eprintln!("xnetd: {err:#}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("xnetd must run as root (it creates namespaces and loads eBPF programs)");
    }
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
    let config = Config {
        socket: args.socket,
        state_dir: args.state_dir,
        bpffs: args.bpffs,
        uplink: args.uplink,
        docker,
    };
    xnet::os::bpffs::ensure_mounted(&config.bpffs)?;
    let daemon = Arc::new(Daemon::start(&config).await?);
    println!("xnetd: serving on unix://{}", config.socket.display());
    if let Some(docker) = &config.docker {
        println!(
            "xnetd: Docker network plugin {:?} on unix://{}",
            docker.plugin,
            docker.socket.display()
        );
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
        println!("xnetd: stopping; the datapath keeps forwarding");
    };
    let plugin_socket = config.docker.as_ref().map(|d| d.socket.as_path());
    server::serve(daemon, &config.socket, plugin_socket, shutdown)
        .await
        .context("API server")?;
    let _ = std::fs::remove_file(&config.socket);
    if let Some(plugin_socket) = plugin_socket {
        let _ = std::fs::remove_file(plugin_socket);
    }
    Ok(())
}
