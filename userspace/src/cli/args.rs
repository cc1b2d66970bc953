//! The command line as clap parses it: Docker's command names, flags and spellings.

use clap::{Arg, ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::api::DEFAULT_SOCKET;

#[derive(Debug, Parser)]
#[command(
    name = "xnet",
    version,
    about = "Docker-style container networking on an eBPF datapath"
)]
pub struct Cli {
    /// Daemon socket to connect to.
    #[arg(short = 'H', long, env = "XNET_HOST", default_value_t = format!("unix://{DEFAULT_SOCKET}"), global = true)]
    pub host: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Create a container (a network namespace attached to a network) and run a command in it.
    Run(RunArgs),
    /// Run a command in a running container's network namespace.
    Exec(ExecArgs),
    /// List containers.
    #[command(arg(docker_all()))]
    Ps(FormatArgs),
    /// Show containers in Docker's JSON shape.
    Inspect(NamesArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Show per-container packet and byte counters, and datapath drops by reason.
    #[command(arg(docker_all()), arg(docker_no_stream()))]
    Stats(FormatArgs),
    /// Give a network namespace that something else created (a Docker, containerd or podman
    /// container) an endpoint on an xnet network.
    Attach(AttachArgs),
    /// Remove what `attach` added (the endpoints); the namespace itself is left alone.
    Detach(NamesArgs),
    /// List a container's published ports (`NAME [PORT[/PROTO]]`), or publish (`add`) and
    /// withdraw (`rm`) them while it runs.
    Port(PortArgs),
    /// Stream the datapath's events as they happen: drops with their reason, and (traced)
    /// frames containers send and the host delivers to them. Ends with Ctrl-C.
    Monitor(MonitorArgs),
    /// The container commands under Docker's `container` names (`container ls`, `container rm`,
    /// ...).
    #[command(subcommand)]
    Container(ContainerCommand),
}

/// `xnet container X` is `xnet X`, as `docker container X` is `docker X`, with Docker's names
/// and aliases of the group (`ls`/`list`/`ps`, `rm`/`remove`). `attach` is not here: Docker's
/// `container attach` means something else.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create a container and run a command in it (`xnet run`).
    Run(RunArgs),
    /// Run a command in a running container's network namespace (`xnet exec`).
    Exec(ExecArgs),
    /// List containers (`xnet ps`).
    #[command(visible_aliases = ["list", "ps"], arg(docker_all()))]
    Ls(FormatArgs),
    /// Show containers in Docker's JSON shape (`xnet inspect`).
    Inspect(NamesArgs),
    /// Remove containers (`xnet rm`).
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Per-container counters and datapath drops (`xnet stats`).
    #[command(arg(docker_all()), arg(docker_no_stream()))]
    Stats(FormatArgs),
    /// List, publish or withdraw a container's ports (`xnet port`).
    Port(PortArgs),
}

impl From<ContainerCommand> for Command {
    fn from(cmd: ContainerCommand) -> Self {
        match cmd {
            ContainerCommand::Run(a) => Self::Run(a),
            ContainerCommand::Exec(a) => Self::Exec(a),
            ContainerCommand::Ls(a) => Self::Ps(a),
            ContainerCommand::Inspect(a) => Self::Inspect(a),
            ContainerCommand::Rm(a) => Self::Rm(a),
            ContainerCommand::Stats(a) => Self::Stats(a),
            ContainerCommand::Port(a) => Self::Port(a),
        }
    }
}

/// Docker's `-a/--all` of `ps` and `stats` (without it Docker shows only running containers).
/// xnet always shows every container, so the flag changes nothing; it is accepted so that
/// Docker command lines work as they are.
fn docker_all() -> Arg {
    Arg::new("all")
        .short('a')
        .long("all")
        .action(ArgAction::SetTrue)
        .help("Show all containers (xnet always does; accepted for Docker's command lines)")
}

/// Docker's `stats --no-stream`: one report instead of a live stream, which is all xnet's
/// `stats` ever prints. Accepted, like [`docker_all`], for Docker's command lines.
fn docker_no_stream() -> Arg {
    Arg::new("no-stream")
        .long("no-stream")
        .action(ArgAction::SetTrue)
        .help("Print one report (xnet always does; accepted for Docker's command lines)")
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PortArgs {
    #[command(subcommand)]
    pub action: Option<PortCommand>,
    /// Container.
    #[arg(required = true)]
    pub name: Option<String>,
    /// Only the host bindings of this container port: `PORT[/tcp|udp|sctp]`.
    pub port: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Publish more ports of a container (`-p` syntax); prints the new mappings.
    Add(PortSpecsArgs),
    /// Withdraw published ports: the mappings with the spec's container ports and protocol,
    /// and its host address and ports when it gives them; prints them.
    Rm(PortSpecsArgs),
}

#[derive(Debug, Args)]
pub struct PortSpecsArgs {
    pub name: String,
    /// `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]`
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(FormatArgs),
    /// Show networks in Docker's JSON shape.
    Inspect(NamesArgs),
    /// Remove networks.
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
    /// Connect a container to a network (one more interface, `ethN`).
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Static IPv4 address on that network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address on that network (it needs IPv6).
    #[arg(long)]
    pub ip6: Option<String>,
    /// Another name for the container on this network, in the embedded DNS.
    #[arg(long = "alias", visible_alias = "network-alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("namespace").required(true).args(["netns", "pid"])))]
pub struct AttachArgs {
    /// Name to manage it by.
    #[arg(long)]
    pub name: String,
    /// Its network namespace file (`/run/netns/NAME`, `/proc/PID/ns/net`, ...).
    #[arg(long)]
    pub netns: Option<String>,
    /// A process in it (e.g. `docker inspect -f '{{.State.Pid}}' NAME`).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Network to attach to.
    #[arg(long, default_value = "bridge")]
    pub network: String,
    /// Static IPv4 address on that network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address on that network (it needs IPv6).
    #[arg(long)]
    pub ip6: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Driver that manages the network: bridge, overlay (needs xnetd --cluster-store),
    /// macvlan or ipvlan (-o parent=IFACE[.VID]; --subnet required).
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form, one per address family; chosen from the default pools when
    /// omitted.
    #[arg(long)]
    pub subnet: Vec<String>,
    /// Gateway address (the host's address in the subnet of its family); the subnet's first
    /// address when omitted.
    #[arg(long)]
    pub gateway: Vec<String>,
    /// Hand out addresses from this sub-range of the subnet of its family only.
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// Reserve an address of the subnet (NAME=IP): never handed to a container.
    #[arg(long = "aux-address", value_name = "NAME=IP", value_parser = parse_key_value)]
    pub aux_address: Vec<(String, String)>,
    /// IPv6 besides IPv4 (a /64 of a unique local prefix unless an IPv6 --subnet is given).
    #[arg(long)]
    pub ipv6: bool,
    /// No way out of the network and no way in.
    #[arg(long)]
    pub internal: bool,
    /// Let standalone containers (`xnet run`, `docker run`) join a network of global scope
    /// (overlay), as Docker's `--attachable`.
    #[arg(long)]
    pub attachable: bool,
    /// Driver options: com.docker.network.bridge.enable_icc=false,
    /// com.docker.network.driver.mtu=N; for overlays
    /// com.docker.network.driver.overlay.vxlanid_list=N and encrypted; for macvlan
    /// parent=IFACE[.VID], macvlan_mode=bridge|private|vepa|passthru; for ipvlan parent,
    /// ipvlan_mode=l2|l3|l3s, ipvlan_flag=bridge|private|vepa; for both
    /// xnet.host_access=true.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub opt: Vec<(String, String)>,
    pub name: String,
}

/// `KEY=VALUE`, or `KEY` alone for an empty value (Docker's `--opt encrypted`).
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    if key.is_empty() {
        return Err(format!("{text:?} is not KEY=VALUE or KEY"));
    }
    Ok((key.to_string(), value.to_string()))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container name.
    #[arg(long)]
    pub name: String,
    /// Network to attach to.
    // `--net`: Docker's older spelling, which `docker run` still accepts.
    #[arg(long, visible_alias = "net", default_value = "bridge")]
    pub network: String,
    /// Static IPv4 address on that network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Static IPv6 address on that network (it needs IPv6).
    #[arg(long)]
    pub ip6: Option<String>,
    /// Publish a container's port(s):
    /// `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]`. Discarded with a
    /// warning on the host network, as in Docker.
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish on 127.0.0.1 only: the same as `-p 127.0.0.1:HOST_PORT:CONTAINER_PORT`
    /// (unlike Docker's `--expose`, which publishes nothing).
    #[arg(long, value_name = "HOST_PORT:CONTAINER_PORT[/PROTO]")]
    pub expose: Vec<String>,
    /// Another name for the container on its network, in the embedded DNS.
    #[arg(
        long = "network-alias",
        visible_alias = "net-alias",
        value_name = "NAME"
    )]
    pub network_aliases: Vec<String>,
    /// A resolver the embedded DNS forwards the container's other names to, instead of the
    /// host's.
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// A search domain of the container's resolv.conf.
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// An option of the container's resolv.conf (`ndots:2`).
    #[arg(long, value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Run the command in the background and print the container id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when the command exits (foreground only).
    #[arg(long, conflicts_with = "detach")]
    pub rm: bool,
    /// The command and its arguments.
    // From the command's first word on everything is the command's, `-x` included
    // (`trailing_var_arg`), as after Docker's IMAGE. Not `allow_hyphen_values`: with it clap
    // took an unknown flag before the command (`--net=host`) for the command's first word, and
    // the flags after it for its arguments.
    #[arg(required = true, trailing_var_arg = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    pub name: String,
    /// The command and its arguments.
    // As `run`'s: flags before it are xnet's, so an unknown one is an error, not the command.
    #[arg(required = true, trailing_var_arg = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill the container's process if it is still running.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Only drops, or only traced frames; both by default.
    #[arg(long = "type", value_enum)]
    pub kind: Option<MonitorType>,
    /// Only events on this container's interfaces.
    #[arg(long)]
    pub container: Option<String>,
    /// Only events on this network's endpoints.
    #[arg(long)]
    pub network: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonitorType {
    /// Frames the datapath dropped.
    Drop,
    /// Frames containers sent and the host delivered to them.
    Trace,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line (as Docker's `--format json`).
    Json,
}

#[cfg(test)]
mod tests;
