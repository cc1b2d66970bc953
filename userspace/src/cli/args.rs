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
    /// Driver that manages the network.
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
    /// IPv6 besides IPv4 (a /64 of a unique local prefix unless an IPv6 --subnet is given).
    #[arg(long)]
    pub ipv6: bool,
    /// No way out of the network and no way in.
    #[arg(long)]
    pub internal: bool,
    /// Driver options: com.docker.network.bridge.enable_icc=false,
    /// com.docker.network.driver.mtu=N.
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub opt: Vec<(String, String)>,
    pub name: String,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
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
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("xnet").chain(args.iter().copied()))
    }

    #[test]
    fn run_takes_dockers_flags_and_the_command_after_them() {
        let cli = parse(&[
            "run",
            "--name",
            "web",
            "--network",
            "n1",
            "--ip",
            "10.1.0.5",
            "--ip6",
            "fd00:1::5",
            "-d",
            "--",
            "sleep",
            "-x",
            "9",
        ])
        .unwrap();
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.name, "web");
        assert_eq!(run.network, "n1");
        assert_eq!(run.ip.as_deref(), Some("10.1.0.5"));
        assert_eq!(run.ip6.as_deref(), Some("fd00:1::5"));
        assert!(run.detach);
        assert_eq!(run.command, ["sleep", "-x", "9"]);
    }

    #[test]
    fn run_defaults_to_the_bridge_network() {
        let Command::Run(run) = parse(&["run", "--name", "a", "--", "true"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert_eq!(run.network, "bridge");
        assert!(!run.detach);
    }

    #[test]
    fn run_needs_a_name_and_a_command() {
        assert!(parse(&["run", "--", "true"]).is_err());
        assert!(parse(&["run", "--name", "a"]).is_err());
        assert!(parse(&["run", "--name", "a", "-d", "--rm", "--", "true"]).is_err());
    }

    #[test]
    fn network_create_uses_dockers_flags() {
        let cli = parse(&[
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.9.0.0/24",
            "--gateway",
            "10.9.0.254",
            "n9",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Create(c)) = cli.command else {
            panic!()
        };
        assert_eq!(c.driver, "bridge");
        assert_eq!(c.subnet, ["10.9.0.0/24"]);
        assert_eq!(c.gateway, ["10.9.0.254"]);
        assert!(!c.ipv6);
        assert_eq!(c.name, "n9");
        assert!(parse(&["network", "create"]).is_err());
        let cli = parse(&[
            "network",
            "create",
            "--internal",
            "--ip-range",
            "10.9.0.128/25",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "--opt",
            "com.docker.network.driver.mtu=1400",
            "n9",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Create(c)) = cli.command else {
            panic!()
        };
        assert!(c.internal);
        assert_eq!(c.ip_range, ["10.9.0.128/25"]);
        assert_eq!(
            c.opt,
            [
                (
                    "com.docker.network.bridge.enable_icc".to_string(),
                    "false".to_string()
                ),
                (
                    "com.docker.network.driver.mtu".to_string(),
                    "1400".to_string()
                )
            ]
        );
        assert!(parse(&["network", "create", "-o", "novalue", "n9"]).is_err());
    }

    #[test]
    fn network_create_takes_ipv6_and_repeated_addressing_flags() {
        let cli = parse(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "10.9.0.0/24",
            "--subnet",
            "fd00:9::/64",
            "--gateway",
            "fd00:9::fe",
            "--ip-range",
            "10.9.0.128/25",
            "--ip-range",
            "fd00:9::/120",
            "n9",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Create(c)) = cli.command else {
            panic!()
        };
        assert!(c.ipv6);
        assert_eq!(c.subnet, ["10.9.0.0/24", "fd00:9::/64"]);
        assert_eq!(c.gateway, ["fd00:9::fe"]);
        assert_eq!(c.ip_range, ["10.9.0.128/25", "fd00:9::/120"]);
        let Command::Network(NetworkCommand::Create(c)) =
            parse(&["network", "create", "n9"]).unwrap().command
        else {
            panic!()
        };
        assert!(c.subnet.is_empty() && c.gateway.is_empty() && c.ip_range.is_empty());
    }

    #[test]
    fn connect_attach_and_detach_parse() {
        let cli = parse(&[
            "network",
            "connect",
            "--ip",
            "10.1.0.9",
            "--ip6",
            "fd00:1::9",
            "n1",
            "web",
        ])
        .unwrap();
        let Command::Network(NetworkCommand::Connect(c)) = cli.command else {
            panic!()
        };
        assert_eq!(
            (c.network.as_str(), c.container.as_str(), c.ip.as_deref()),
            ("n1", "web", Some("10.1.0.9"))
        );
        assert_eq!(c.ip6.as_deref(), Some("fd00:1::9"));
        assert!(parse(&["network", "disconnect", "n1"]).is_err());
        let Command::Attach(a) = parse(&["attach", "--name", "d", "--pid", "42"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            (
                a.pid,
                a.netns.as_deref(),
                a.network.as_str(),
                a.ip6.as_deref()
            ),
            (Some(42), None, "bridge", None)
        );
        let Command::Attach(a) =
            parse(&["attach", "--name", "d", "--pid", "42", "--ip6", "fd00::7"])
                .unwrap()
                .command
        else {
            panic!()
        };
        assert_eq!(a.ip6.as_deref(), Some("fd00::7"));
        // Exactly one of --netns and --pid.
        assert!(parse(&["attach", "--name", "d"]).is_err());
        assert!(parse(&["attach", "--name", "d", "--pid", "1", "--netns", "/x"]).is_err());
        assert!(parse(&["detach", "d"]).is_ok());
    }

    #[test]
    fn port_lists_or_takes_add_and_rm() {
        let Command::Port(p) = parse(&["port", "web", "80/udp"]).unwrap().command else {
            panic!()
        };
        assert!(p.action.is_none());
        assert_eq!(
            (p.name.as_deref(), p.port.as_deref()),
            (Some("web"), Some("80/udp"))
        );
        let Command::Port(p) = parse(&["port", "add", "web", "8080:80"]).unwrap().command else {
            panic!()
        };
        let Some(PortCommand::Add(add)) = p.action else {
            panic!()
        };
        assert_eq!(
            (add.name.as_str(), add.specs),
            ("web", vec!["8080:80".to_string()])
        );
        let Command::Port(p) = parse(&["port", "rm", "web", "80", "127.0.0.1::81"])
            .unwrap()
            .command
        else {
            panic!()
        };
        let Some(PortCommand::Rm(rm)) = p.action else {
            panic!()
        };
        assert_eq!((rm.name.as_str(), rm.specs.len()), ("web", 2));
        assert!(parse(&["port"]).is_err());
        assert!(parse(&["port", "add", "web"]).is_err());
        let Command::Run(run) = parse(&[
            "run", "--name", "a", "-p", "80", "--expose", "8080:80", "--", "true",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(
            (run.publish, run.expose),
            (vec!["80".to_string()], vec!["8080:80".to_string()])
        );
    }

    #[test]
    fn host_comes_from_flag_or_default_and_formats_parse() {
        assert_eq!(
            parse(&["ps"]).unwrap().host,
            format!("unix://{DEFAULT_SOCKET}")
        );
        let cli = parse(&[
            "--host",
            "unix:///tmp/x.sock",
            "network",
            "ls",
            "--format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.host, "unix:///tmp/x.sock");
        let Command::Network(NetworkCommand::Ls(f)) = cli.command else {
            panic!()
        };
        assert_eq!(f.format, Format::Json);
        assert!(parse(&["ps", "--format", "yaml"]).is_err());
    }

    #[test]
    fn rm_and_inspect_take_several_names() {
        let Command::Rm(rm) = parse(&["rm", "-f", "a", "b"]).unwrap().command else {
            panic!()
        };
        assert!(rm.force);
        assert_eq!(rm.names, ["a", "b"]);
        assert!(parse(&["rm"]).is_err());
        assert!(parse(&["network", "inspect"]).is_err());
    }

    /// The command a line parses to, with `container X` resolved to `X`, in Debug form: two
    /// spellings mean the same when these are equal.
    fn meaning(line: &str) -> String {
        let cli = parse(&line.split(' ').collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("xnet {line}: {e}"));
        let command = match cli.command {
            Command::Container(cmd) => cmd.into(),
            cmd => cmd,
        };
        format!("{command:?}")
    }

    #[test]
    fn dockers_spellings_mean_what_xnets_do() {
        // (Docker's spelling, xnet's canonical one)
        let cases = [
            (
                "run --name web --net=host -d -- sleep 600",
                "run --name web --network host -d -- sleep 600",
            ),
            (
                "run --name web --net n1 -- true",
                "run --name web --network n1 -- true",
            ),
            (
                "run --name web --network=n1 -- true",
                "run --name web --network n1 -- true",
            ),
            (
                "run --name web --detach --publish 8080:80 --publish=90 -- true",
                "run --name web -d -p 8080:80 -p 90 -- true",
            ),
            (
                "run --name web -dp8080:80 -- true",
                "run --name web -d -p 8080:80 -- true",
            ),
            // Without `--` the command starts at its first word, as after Docker's IMAGE; its
            // own flags stay its own.
            (
                "run --name web -d sleep -d 600",
                "run --name web -d -- sleep -d 600",
            ),
            (
                "network create --driver=bridge --opt com.docker.network.driver.mtu=1400 n",
                "network create -d bridge -o com.docker.network.driver.mtu=1400 n",
            ),
            ("network list --format=json", "network ls --format json"),
            ("network remove a b", "network rm a b"),
            ("rm --force a", "rm -f a"),
            ("ps -a", "ps"),
            ("ps --all --format json", "ps --format json"),
            ("stats -a --no-stream", "stats"),
            (
                "stats --all --no-stream --format json",
                "stats --format json",
            ),
            ("-H unix:///x.sock ps", "--host unix:///x.sock ps"),
            // Docker's `container` management command.
            (
                "container run --name web --net host -- true",
                "run --name web --network host -- true",
            ),
            ("container exec web -- ip a", "exec web -- ip a"),
            ("container ls -a", "ps"),
            ("container list", "ps"),
            ("container ps --format json", "ps --format json"),
            ("container inspect a b", "inspect a b"),
            ("container rm -f a", "rm -f a"),
            ("container remove a", "rm a"),
            ("container stats --no-stream", "stats"),
            ("container port web 80", "port web 80"),
            ("container port add web 8080:80", "port add web 8080:80"),
        ];
        for (docker, xnet) in cases {
            assert_eq!(meaning(docker), meaning(xnet), "{docker:?} vs {xnet:?}");
        }
    }

    #[test]
    fn unknown_flags_before_the_command_are_errors_not_the_command() {
        for line in [
            "run --name web --bogus -- true",
            "run --name web --net=host --bogus sleep 600",
            "run --name web -it -- sh",
            "run --name web --hostname h -- true",
            "exec --bogus web -- true",
            "exec web -it -- sh",
            "ps -q",
            "network rm -f n",
            "container attach web",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let err = parse(&args).expect_err(line);
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::UnknownArgument
                        | clap::error::ErrorKind::InvalidSubcommand
                ),
                "xnet {line}: {err}"
            );
        }
    }
}
