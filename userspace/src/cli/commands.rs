//! What each command does: API calls, then printing. Every failure becomes one line on stderr
//! and a non-zero exit in `bin/xnet.rs`.

use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::{
    args::{
        Cli, Command, ExecArgs, Format, FormatArgs, MonitorArgs, MonitorType, NetworkCommand,
        PortArgs, PortCommand, PortSpecsArgs, RmArgs, RunArgs,
    },
    output::{print_inspect, print_rows, short_id},
    process::{Mode, spawn_failure_code, spawn_in, wait_exit_code},
};
use crate::{
    api::{
        client::Client,
        types::{
            AttachRequest, ContainerCreate, ContainerInspect, ContainerProcess, MonitorLine,
            MonitoredFrame, NetworkConnect, NetworkCreate, NetworkInspect, PortBinding, PortMap,
            PortRange, PortsRequest, StatsReport,
        },
    },
    state::HOST_NETWORK,
};

/// Runs one CLI invocation; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = Client::new(&cli.host)?;
    execute(&client, cli.command).await
}

/// Runs one command; returns the process exit code.
async fn execute(client: &Client, command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Network(cmd) => network(client, cmd).await,
        Command::Run(args) => run_container(client, args).await,
        Command::Exec(args) => exec(client, args).await,
        Command::Ps(args) => ps(client, args).await.map(|()| 0),
        Command::Inspect(args) => {
            let mut found = Vec::new();
            for name in &args.names {
                found.push(
                    client
                        .get::<ContainerInspect>(&container_path(name))
                        .await?,
                );
            }
            print_inspect(&found);
            Ok(0)
        }
        Command::Rm(args) => rm(client, args).await,
        Command::Stats(args) => stats(client, args).await.map(|()| 0),
        Command::Attach(args) => {
            let netns = match (args.netns, args.pid) {
                (Some(path), _) => path,
                (None, Some(pid)) => format!("/proc/{pid}/ns/net"),
                (None, None) => unreachable!("clap requires --netns or --pid"),
            };
            let req = AttachRequest {
                name: args.name,
                netns,
                network: Some(args.network),
                ip: args.ip,
                ip6: args.ip6,
                ifname: None,
                aliases: Vec::new(),
                embedded_dns: false,
                mac: None,
            };
            let attached: ContainerInspect = client.post("/attached", &req).await?;
            println!("{}", attached.id);
            Ok(0)
        }
        Command::Detach(args) => Ok(remove_each(client, &args.names, |name| {
            format!("/attached/{}", encode(name))
        })
        .await),
        Command::Port(args) => port(client, args).await.map(|()| 0),
        Command::Monitor(args) => monitor(client, args).await.map(|()| 0),
        // Boxed: an async fn's future cannot contain itself.
        Command::Container(cmd) => Box::pin(execute(client, cmd.into())).await,
    }
}

/// `xnet port`: lists, or with `add`/`rm` changes, a container's published ports.
async fn port(client: &Client, args: PortArgs) -> anyhow::Result<()> {
    let (verb, PortSpecsArgs { name, specs }) = match args.action {
        Some(PortCommand::Add(a)) => ("publish", a),
        Some(PortCommand::Rm(a)) => ("unpublish", a),
        None => {
            let name = args.name.expect("clap requires NAME without a subcommand");
            let container: ContainerInspect = client.get(&container_path(&name)).await?;
            for line in port_lines(&container.network_settings.ports, args.port.as_deref())
                .map_err(|key| anyhow::anyhow!("no public port '{key}' published for {name}"))?
            {
                println!("{line}");
            }
            return Ok(());
        }
    };
    let changed: Vec<PortRange> = client
        .post(
            &format!("{}/{verb}", container_path(&name)),
            &PortsRequest { specs },
        )
        .await?;
    for r in changed {
        println!(
            "{} -> {}",
            r.container_ports,
            host_side(&r.host_ip, &r.host_ports)
        );
    }
    Ok(())
}

/// `docker port`'s lines, by container port: `80/tcp -> 0.0.0.0:8080`, or only
/// `0.0.0.0:8080` for the one port `only` names (`80`, `80/udp`). Err: the key of a port
/// that is not published.
/// A host address and port(s) as Docker shows them: `0.0.0.0:8080`, IPv6 addresses in
/// brackets (`[::]:8080`).
fn host_side(host_ip: &str, ports: &str) -> String {
    if host_ip.contains(':') {
        format!("[{host_ip}]:{ports}")
    } else {
        format!("{host_ip}:{ports}")
    }
}

fn port_lines(ports: &PortMap, only: Option<&str>) -> Result<Vec<String>, String> {
    let binding = |b: &PortBinding| host_side(&b.host_ip, &b.host_port);
    if let Some(port) = only {
        let key = if port.contains('/') {
            port.to_ascii_lowercase()
        } else {
            format!("{port}/tcp")
        };
        return match ports.get(&key) {
            Some(bindings) if !bindings.is_empty() => Ok(bindings.iter().map(binding).collect()),
            _ => Err(key),
        };
    }
    let mut keys: Vec<&String> = ports.keys().collect();
    // By number, then protocol, as Docker sorts them (the map's order is by text).
    keys.sort_by_key(|k| {
        let (port, proto) = k.split_once('/').unwrap_or((k, ""));
        (port.parse::<u16>().unwrap_or(0), proto)
    });
    Ok(keys
        .into_iter()
        .flat_map(|k| {
            ports[k]
                .iter()
                .map(move |b| format!("{k} -> {}", binding(b)))
        })
        .collect())
}

/// `--expose HOST_PORT:CONTAINER_PORT[/PROTO]` as the `-p` spec it stands for.
fn expose_spec(text: &str) -> anyhow::Result<String> {
    if text.split(':').count() != 2 {
        anyhow::bail!("invalid --expose {text:?}: expected HOST_PORT:CONTAINER_PORT[/PROTO]");
    }
    Ok(format!("127.0.0.1:{text}"))
}

async fn network(client: &Client, cmd: NetworkCommand) -> anyhow::Result<i32> {
    match cmd {
        NetworkCommand::Create(args) => {
            let created: NetworkInspect = client
                .post(
                    "/networks",
                    &NetworkCreate {
                        name: args.name,
                        driver: Some(args.driver),
                        subnets: args.subnet,
                        gateways: args.gateway,
                        ip_ranges: args.ip_range,
                        aux_addresses: args.aux_address.into_iter().collect(),
                        enable_ipv6: args.ipv6,
                        internal: args.internal,
                        attachable: args.attachable,
                        options: args.opt.into_iter().collect(),
                    },
                )
                .await?;
            println!("{}", created.id);
        }
        NetworkCommand::Ls(FormatArgs { format }) => {
            let nets: Vec<NetworkInspect> = client.get("/networks").await?;
            let rows: Vec<_> = nets
                .iter()
                .map(|n| {
                    let subnet = n.ipam.config.first().map(|c| c.subnet.clone()).unwrap_or_default();
                    (
                        vec![short_id(&n.id), n.name.clone(), n.driver.clone(), n.scope.clone(), subnet.clone()],
                        json!({"ID": short_id(&n.id), "Name": n.name, "Driver": n.driver,
                               "Scope": n.scope, "Subnet": subnet, "Internal": n.internal.to_string(),
                               "IPv6": n.enable_ipv6.to_string(), "CreatedAt": n.created}),
                    )
                })
                .collect();
            print_rows(
                format,
                &["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"],
                &rows,
            );
        }
        NetworkCommand::Inspect(args) => {
            let mut found = Vec::new();
            for name in &args.names {
                found.push(client.get::<NetworkInspect>(&network_path(name)).await?);
            }
            print_inspect(&found);
        }
        NetworkCommand::Connect(args) => {
            let req = NetworkConnect {
                container: args.container,
                ip: args.ip,
                ip6: args.ip6,
                aliases: args.aliases,
            };
            client
                .post::<_, ()>(&format!("{}/connect", network_path(&args.network)), &req)
                .await?;
        }
        NetworkCommand::Disconnect(args) => {
            let req = NetworkConnect {
                container: args.container,
                ip: None,
                ip6: None,
                aliases: Vec::new(),
            };
            client
                .post::<_, ()>(&format!("{}/disconnect", network_path(&args.network)), &req)
                .await?;
        }
        NetworkCommand::Rm(args) => {
            return Ok(remove_each(client, &args.names, network_path).await);
        }
    }
    Ok(0)
}

/// Creates the container, then starts the command in it. If the command cannot even start,
/// the container is removed again: a failed `run` leaves nothing behind.
async fn run_container(client: &Client, args: RunArgs) -> anyhow::Result<i32> {
    let exposed = args
        .expose
        .iter()
        .map(|e| expose_spec(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let publish: Vec<String> = args.publish.iter().cloned().chain(exposed).collect();
    let created: ContainerInspect = client
        .post(
            "/containers",
            &ContainerCreate {
                name: args.name.clone(),
                network: Some(args.network),
                ip: args.ip,
                ip6: args.ip6,
                publish: publish.clone(),
                command: args.command.clone(),
                aliases: args.network_aliases,
                dns: args.dns,
                dns_search: args.dns_search,
                dns_option: args.dns_option,
            },
        )
        .await?;
    if !publish.is_empty() && created.network_settings.networks.contains_key(HOST_NETWORK) {
        // Docker's words: the container shares the host's ports, there is nothing to map.
        eprintln!("WARNING: Published ports are discarded when using host network mode");
    }
    let path = container_path(&args.name);
    let mode = if args.detach {
        Mode::Detached
    } else {
        Mode::Foreground
    };
    let child = match spawn_in(
        Path::new(&created.network_settings.sandbox_key),
        resolv_conf(&created),
        &args.command,
        mode,
    ) {
        Ok(child) => child,
        Err(err) => {
            client.delete(&format!("{path}?force=true")).await?;
            eprintln!("xnet: failed to start {:?}: {err}", args.command[0]);
            return Ok(spawn_failure_code(&err));
        }
    };
    client
        .put(
            &format!("{path}/process"),
            &ContainerProcess { pid: child.id() },
        )
        .await?;
    if args.detach {
        println!("{}", created.id);
        return Ok(0);
    }
    let code = tokio::task::spawn_blocking(move || wait_exit_code(child)).await??;
    if args.rm {
        client.delete(&format!("{path}?force=true")).await?;
    }
    Ok(code)
}

async fn exec(client: &Client, args: ExecArgs) -> anyhow::Result<i32> {
    let container: ContainerInspect = client.get(&container_path(&args.name)).await?;
    let sandbox = &container.network_settings.sandbox_key;
    let resolv = resolv_conf(&container);
    match spawn_in(Path::new(sandbox), resolv, &args.command, Mode::Foreground) {
        Ok(child) => tokio::task::spawn_blocking(move || wait_exit_code(child)).await?,
        Err(err) => {
            eprintln!("xnet: failed to start {:?}: {err}", args.command[0]);
            Ok(spawn_failure_code(&err))
        }
    }
}

/// The resolv.conf the container's commands see, if xnet gives it one.
fn resolv_conf(container: &ContainerInspect) -> Option<&Path> {
    Some(Path::new(&container.resolv_conf_path)).filter(|p| !p.as_os_str().is_empty())
}

async fn ps(client: &Client, FormatArgs { format }: FormatArgs) -> anyhow::Result<()> {
    let containers: Vec<ContainerInspect> = client.get("/containers").await?;
    let rows: Vec<_> = containers
        .iter()
        .map(|c| {
            let name = c.name.trim_start_matches('/').to_string();
            // One entry per network, as Docker's `ps` joins them.
            let networks = &c.network_settings.networks;
            let network = networks.keys().cloned().collect::<Vec<_>>().join(",");
            let ip = networks
                .values()
                .map(|e| e.addresses.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .collect::<Vec<_>>()
                .join(",");
            let command = std::iter::once(c.path.clone())
                .chain(c.args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            (
                vec![
                    short_id(&c.id),
                    name.clone(),
                    network.clone(),
                    ip.clone(),
                    c.state.status.clone(),
                    command.clone(),
                ],
                json!({"ID": short_id(&c.id), "Names": name, "Networks": network, "IPAddress": ip,
                       "State": c.state.status, "Status": c.state.status, "Command": command,
                       "CreatedAt": c.created}),
            )
        })
        .collect();
    print_rows(
        format,
        &[
            "CONTAINER ID",
            "NAME",
            "NETWORK",
            "IP ADDRESS",
            "STATUS",
            "COMMAND",
        ],
        &rows,
    );
    Ok(())
}

async fn rm(client: &Client, args: RmArgs) -> anyhow::Result<i32> {
    let force = if args.force { "?force=true" } else { "" };
    Ok(remove_each(client, &args.names, |name| {
        format!("{}{force}", container_path(name))
    })
    .await)
}

/// Like Docker: tries every name, prints each one removed, reports each failure on its own
/// line, and returns exit code 1 if any failed.
async fn remove_each(client: &Client, names: &[String], path: impl Fn(&str) -> String) -> i32 {
    let mut code = 0;
    for name in names {
        match client.delete(&path(name)).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e:#}");
                code = 1;
            }
        }
    }
    code
}

async fn monitor(client: &Client, args: MonitorArgs) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(kind) = args.kind {
        let kind = match kind {
            MonitorType::Drop => "drop",
            MonitorType::Trace => "trace",
        };
        query.push(format!("type={kind}"));
    }
    for (key, value) in [("container", &args.container), ("network", &args.network)] {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(value)));
        }
    }
    let path = match query.is_empty() {
        true => "/monitor".to_string(),
        false => format!("/monitor?{}", query.join("&")),
    };
    client
        .get_lines(&path, |json| {
            if args.format == Format::Json {
                println!("{json}");
                return Ok(());
            }
            let line: MonitorLine =
                serde_json::from_str(json).context("decoding a monitor event")?;
            println!("{}", monitor_text(&line));
            Ok(())
        })
        .await
}

/// One event for people: time, what happened, where, and the frame.
fn monitor_text(line: &MonitorLine) -> String {
    let (what, frame) = match line {
        MonitorLine::Drop { frame, reason } => (format!("drop ({reason})"), frame),
        MonitorLine::FromContainer { frame } => ("from-container".to_string(), frame),
        MonitorLine::ToContainer { frame } => ("to-container".to_string(), frame),
        MonitorLine::Lost { count } => return format!("lost {count} event(s) to the rate limit"),
    };
    let MonitoredFrame {
        time,
        interface,
        container,
        network,
        ether_type,
        protocol,
        source,
        destination,
        source_port,
        destination_port,
        icmp_type,
        icmp_code,
        arp_operation,
        length,
    } = frame;
    let mut text = format!("{time} {what} on {interface}");
    if let (Some(container), Some(network)) = (container, network) {
        text += &format!(" ({container} on {network})");
    }
    let with_port = |address: &Option<String>, port: &Option<u16>| {
        let address = address.clone().unwrap_or_else(|| "?".into());
        match port {
            Some(port) if address.contains(':') => format!("[{address}]:{port}"),
            Some(port) => format!("{address}:{port}"),
            None => address,
        }
    };
    text += &format!(
        ": {} {} -> {}",
        protocol.as_deref().unwrap_or(ether_type),
        with_port(source, source_port),
        with_port(destination, destination_port)
    );
    if let (Some(kind), Some(code)) = (icmp_type, icmp_code) {
        text += &format!(" type {kind} code {code}");
    }
    if let Some(operation) = arp_operation {
        text += &format!(" {operation}");
    }
    text + &format!(", {length} bytes")
}

async fn stats(client: &Client, FormatArgs { format }: FormatArgs) -> anyhow::Result<()> {
    let report: StatsReport = client.get("/stats").await?;
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding stats")?
        );
        return Ok(());
    }
    let rows: Vec<_> = report
        .containers
        .iter()
        .map(|c| {
            let cells = [
                &c.rx_packets,
                &c.rx_bytes,
                &c.tx_packets,
                &c.tx_bytes,
                &c.drops,
            ]
            .map(u64::to_string);
            (
                std::iter::once(c.name.clone())
                    .chain([c.network.clone()])
                    .chain(cells)
                    .collect(),
                (),
            )
        })
        .collect();
    print_rows(
        Format::Table,
        &[
            "NAME",
            "NETWORK",
            "RX PACKETS",
            "RX BYTES",
            "TX PACKETS",
            "TX BYTES",
            "DROPS",
        ],
        &rows,
    );
    let drops: Vec<String> = report
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    if !drops.is_empty() {
        println!("datapath drops: {}", drops.join(" "));
    }
    if let Some(e) = &report.encryption {
        println!(
            "encryption: {} peer(s), {} sealed, {} opened, {} handshake(s)",
            e.peers.len(),
            e.sealed,
            e.opened,
            e.handshakes
        );
    }
    Ok(())
}

fn container_path(name: &str) -> String {
    format!("/containers/{}", encode(name))
}

fn network_path(name: &str) -> String {
    format!("/networks/{}", encode(name))
}

/// `value` percent-encoded for a URL's path segment or query (all but unreserved
/// characters). Names are validated by the daemon; this keeps a stray `/`, `?`, `&` or `%`
/// from changing the request's meaning before it gets there.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests;
