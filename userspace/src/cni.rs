//! `xnet-cni`: a CNI plugin (`"type": "xnet"`) for podman, nerdctl and other CNI runtimes.
//! The runtime runs it with the command in `CNI_COMMAND` and the network configuration on
//! stdin; it asks xnetd over its socket, as the `xnet` CLI does:
//!
//! - `ADD`: `CNI_NETNS` attached to the xnet network the configuration names (as `xnet
//!   attach` does; the network made first from the configuration's driver, subnet, gateway,
//!   ICC and MTU if xnetd lacks it), as interface `CNI_IFNAME`, with the `ips`, `portMappings` and `aliases`
//!   capabilities (and `K8S_POD_NAME` of `CNI_ARGS` as one more alias), and `mac` on bridge
//!   networks, and the embedded DNS served in the namespace; the result carries the
//!   interface, addresses, routes and DNS (127.0.0.11);
//! - `DEL`: the attachment removed; nothing to remove is success (DEL is idempotent);
//! - `CHECK`: the attachment is there, on that network, with that interface;
//! - `GC`: attachments of the network that `cni.dev/valid-attachments` does not list removed;
//! - `STATUS`: whether xnetd answers and has the network;
//! - `VERSION`.
//!
//! Versions 0.4.0 (which podman 4.3 writes), 1.0.0 and 1.1.0, with each one's result shape.
//! Errors are the spec's JSON on stdout, with its codes, and a non-zero exit.

use std::{collections::BTreeMap, io::Read as _, path::Path};

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::{
        DEFAULT_SOCKET,
        client::{Client, status_of},
        types::{AttachRequest, ContainerInspect, EndpointSettings, NetworkCreate, PortsRequest},
    },
    dns::DNS_ADDRESS,
    os::netns,
    state::options::{OPT_ICC, OPT_MTU},
};

/// The versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The spec's error codes.
mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const UNDECODABLE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin cannot serve ADDs now.
    pub const NOT_AVAILABLE: u32 = 50;
    /// This plugin's own: xnetd refused the request.
    pub const REFUSED: u32 = 100;
}

/// A failure as the spec prints it.
#[derive(Debug)]
pub struct CniError {
    code: u32,
    msg: String,
    details: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    fn refused(e: anyhow::Error) -> Self {
        Self {
            code: code::REFUSED,
            msg: "xnetd refused the request".into(),
            details: format!("{e:#}"),
        }
    }

    fn unreachable(e: anyhow::Error) -> Self {
        Self {
            code: code::TRY_AGAIN_LATER,
            msg: "xnetd does not answer".into(),
            details: format!("{e:#}"),
        }
    }

    /// The spec's error object.
    pub fn to_json(&self, version: &str) -> Value {
        json!({"cniVersion": version, "code": self.code, "msg": self.msg, "details": self.details})
    }
}

/// The network configuration on stdin (what this plugin reads of it).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetConf {
    cni_version: String,
    name: String,
    /// The xnet network to attach to; the configuration's `name` when absent.
    #[serde(default)]
    network: Option<String>,
    /// xnetd's socket (`unix:///path` or a path).
    #[serde(default)]
    socket: Option<String>,
    /// How to make the network if xnetd does not have it yet (as `xnet network create`
    /// would); an existing network is used as it is.
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    /// Inter-container communication (default true, as Docker's).
    #[serde(default)]
    icc: Option<bool>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    args: Option<Value>,
    /// GC's list of the attachments to keep.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<PortMapping>,
    /// `ips`: addresses asked for, `ADDRESS[/PREFIX]`.
    #[serde(default)]
    ips: Vec<String>,
    /// `mac`: the interface's MAC.
    #[serde(default)]
    mac: Option<String>,
    /// `aliases`: by CNI network name (the configuration's `name`), more names for the
    /// embedded DNS (podman passes the container's name and its network aliases).
    #[serde(default)]
    aliases: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PortMapping {
    host_port: u16,
    container_port: u16,
    #[serde(default = "tcp")]
    protocol: String,
    #[serde(default, rename = "hostIP")]
    host_ip: String,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Attachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// What the runtime said in the environment.
pub struct Invocation {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    /// `CNI_ARGS`, `KEY=VALUE;…`: podman passes the container's name as `K8S_POD_NAME`
    /// (which the dnsname plugin answers to; here, another alias).
    pub args: Vec<(String, String)>,
}

impl Invocation {
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            command: var("CNI_COMMAND").unwrap_or_default(),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS")
                .map(|args| {
                    args.split(';')
                        .filter_map(|pair| pair.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The pod's name, if the runtime gave one that can be a name in the DNS.
    fn pod_name(&self) -> Option<String> {
        let (_, name) = self.args.iter().find(|(k, _)| k == "K8S_POD_NAME")?;
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        valid.then(|| name.clone())
    }

    fn required(value: &Option<String>, name: &str) -> Result<String, CniError> {
        value
            .clone()
            .ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, format!("{name} is not set")))
    }
}

/// Runs one invocation: what to print on stdout (nothing for some commands), or the error
/// and the version to print it in.
pub async fn run(
    invocation: &Invocation,
    stdin: &[u8],
) -> Result<Option<Value>, (CniError, String)> {
    let newest = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].to_string();
    if invocation.command == "VERSION" {
        let asked: Option<String> = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(str::to_string));
        return Ok(Some(json!({
            "cniVersion": asked.unwrap_or(newest),
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
        (
            CniError::new(code::UNDECODABLE, format!("the network configuration: {e}")),
            newest.clone(),
        )
    })?;
    let version = conf.cni_version.clone();
    let fail = |e: CniError| (e, version.clone());
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(fail(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("version {version} is not supported (only {SUPPORTED_VERSIONS:?})"),
        )));
    }
    let client = Client::new(conf.socket.as_deref().unwrap_or(DEFAULT_SOCKET))
        .map_err(|e| fail(CniError::new(code::INVALID_CONFIG, format!("{e:#}"))))?;
    let network = conf.network.clone().unwrap_or_else(|| conf.name.clone());
    match invocation.command.as_str() {
        "ADD" => add(&client, invocation, &conf, &network).await.map(Some),
        "DEL" => del(&client, invocation).await.map(|()| None),
        "CHECK" => check(&client, invocation, &network).await.map(|()| None),
        "GC" => gc(&client, &conf, &network).await.map(|()| None),
        "STATUS" => status(&client, &network).await.map(|()| None),
        other => Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("unknown CNI_COMMAND {other:?}"),
        )),
    }
    .map_err(fail)
}

/// xnet's name for the attachment of `container_id`'s `ifname`.
fn attachment_name(container_id: &str, ifname: &str) -> String {
    format!("cni-{container_id}-{ifname}")
}

async fn add(
    client: &Client,
    invocation: &Invocation,
    conf: &NetConf,
    network: &str,
) -> Result<Value, CniError> {
    let id = Invocation::required(&invocation.container_id, "CNI_CONTAINERID")?;
    let netns = Invocation::required(&invocation.netns, "CNI_NETNS")?;
    let ifname = Invocation::required(&invocation.ifname, "CNI_IFNAME")?;
    let (ip, ip6) = requested_ips(conf)?;
    ensure_network(client, conf, network).await?;
    let name = attachment_name(&id, &ifname);
    let request = AttachRequest {
        name: name.clone(),
        netns: netns.clone(),
        network: Some(network.to_string()),
        ip,
        ip6,
        ifname: Some(ifname.clone()),
        aliases: conf
            .runtime_config
            .aliases
            .get(&conf.name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .chain(invocation.pod_name())
            .collect(),
        embedded_dns: true,
        mac: conf.runtime_config.mac.clone(),
    };
    let attached: ContainerInspect = client
        .post("/attached", &request)
        .await
        .map_err(CniError::refused)?;
    let specs: Vec<String> = conf.runtime_config.port_mappings.iter().map(spec).collect();
    if !specs.is_empty() {
        let path = format!("/containers/{name}/publish");
        if let Err(e) = client
            .post::<_, Value>(&path, &PortsRequest { specs })
            .await
        {
            // Nothing half-made: the attachment goes too.
            let _ = client.delete(&format!("/attached/{name}")).await;
            return Err(CniError::refused(e));
        }
    }
    let endpoint = attached
        .network_settings
        .networks
        .get(network)
        .ok_or_else(|| CniError::new(code::REFUSED, "xnetd's answer lacks the network"))?;
    Ok(result(&conf.cni_version, &ifname, &netns, endpoint))
}

/// Makes `network` as the configuration describes it (driver, subnet, gateway, ICC, MTU),
/// unless xnetd has it (or the configuration describes nothing: then it must exist).
async fn ensure_network(client: &Client, conf: &NetConf, network: &str) -> Result<(), CniError> {
    let described = conf.driver.is_some() || conf.subnet.is_some();
    if !described {
        return Ok(());
    }
    let path = format!("/networks/{network}");
    match client.get::<Value>(&path).await {
        Ok(_) => return Ok(()),
        Err(e) if status_of(&e) != Some(StatusCode::NOT_FOUND) => {
            return Err(CniError::unreachable(e));
        }
        Err(_) => {}
    }
    let mut options = BTreeMap::new();
    if let Some(icc) = conf.icc {
        options.insert(OPT_ICC.to_string(), icc.to_string());
    }
    if let Some(mtu) = conf.mtu {
        options.insert(OPT_MTU.to_string(), mtu.to_string());
    }
    let create = NetworkCreate {
        name: network.to_string(),
        driver: conf.driver.clone(),
        subnets: conf.subnet.iter().cloned().collect(),
        gateways: conf.gateway.iter().cloned().collect(),
        options,
        ..Default::default()
    };
    match client.post::<_, Value>("/networks", &create).await {
        Ok(_) => Ok(()),
        // A conflict: another ADD may have made it meanwhile (else, say an overlapping
        // subnet, the refusal stands).
        Err(e) if status_of(&e) == Some(StatusCode::CONFLICT) => {
            match client.get::<Value>(&path).await {
                Ok(_) => Ok(()),
                Err(_) => Err(CniError::refused(e)),
            }
        }
        Err(e) => Err(CniError::refused(e)),
    }
}

/// A `portMappings` entry as a `-p` spec.
fn spec(mapping: &PortMapping) -> String {
    let host = match mapping.host_ip.as_str() {
        "" | "0.0.0.0" => String::new(),
        ip if ip.contains(':') => format!("[{ip}]:"),
        ip => format!("{ip}:"),
    };
    format!(
        "{host}{}:{}/{}",
        mapping.host_port,
        mapping.container_port,
        mapping.protocol.to_ascii_lowercase()
    )
}

/// The addresses asked for (`ips` capability, or `CNI_ARGS`-style `args.cni.ips`): at most
/// one IPv4 and one IPv6, without their prefix.
fn requested_ips(conf: &NetConf) -> Result<(Option<String>, Option<String>), CniError> {
    let from_args = conf
        .args
        .as_ref()
        .and_then(|a| a["cni"]["ips"].as_array())
        .map(|ips| {
            ips.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let (mut ip, mut ip6) = (None, None);
    for address in conf.runtime_config.ips.iter().chain(&from_args) {
        let bare = address.split('/').next().unwrap_or_default();
        let slot = match bare.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => &mut ip,
            Ok(std::net::IpAddr::V6(_)) => &mut ip6,
            Err(_) => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("invalid address {address:?} in ips"),
                ));
            }
        };
        if slot.replace(bare.to_string()).is_some() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "at most one IPv4 and one IPv6 address may be asked for",
            ));
        }
    }
    Ok((ip, ip6))
}

/// The ADD result in the shape of `version`.
fn result(version: &str, ifname: &str, netns: &str, endpoint: &EndpointSettings) -> Value {
    let addresses = &endpoint.addresses;
    let legacy = version == "0.4.0";
    let mut ips = vec![];
    let mut routes = vec![];
    let mut add = |address: String, prefix: u8, gateway: &str, family: &str, default: &str| {
        let mut ip = json!({"address": format!("{address}/{prefix}"), "interface": 0});
        if !gateway.is_empty() {
            ip["gateway"] = json!(gateway);
            routes.push(json!({"dst": default, "gw": gateway}));
        }
        if legacy {
            ip["version"] = json!(family);
        }
        ips.push(ip);
    };
    add(
        addresses.ip_address.clone(),
        addresses.ip_prefix_len,
        &addresses.gateway,
        "4",
        "0.0.0.0/0",
    );
    if !addresses.global_ipv6_address.is_empty() {
        add(
            addresses.global_ipv6_address.clone(),
            addresses.global_ipv6_prefix_len,
            &addresses.ipv6_gateway,
            "6",
            "::/0",
        );
    }
    json!({
        "cniVersion": version,
        "interfaces": [{"name": ifname, "mac": addresses.mac_address, "sandbox": netns}],
        "ips": ips,
        "routes": routes,
        "dns": {"nameservers": [DNS_ADDRESS.to_string()]},
    })
}

async fn del(client: &Client, invocation: &Invocation) -> Result<(), CniError> {
    let id = Invocation::required(&invocation.container_id, "CNI_CONTAINERID")?;
    let ifname = Invocation::required(&invocation.ifname, "CNI_IFNAME")?;
    let name = attachment_name(&id, &ifname);
    match client
        .get::<ContainerInspect>(&format!("/containers/{name}"))
        .await
    {
        // Gone already (or never made): DEL succeeds.
        Err(e) if status_of(&e) == Some(StatusCode::NOT_FOUND) => Ok(()),
        Err(e) => Err(CniError::unreachable(e)),
        Ok(_) => client
            .delete(&format!("/attached/{name}"))
            .await
            .map_err(CniError::refused),
    }
}

async fn check(client: &Client, invocation: &Invocation, network: &str) -> Result<(), CniError> {
    let id = Invocation::required(&invocation.container_id, "CNI_CONTAINERID")?;
    let ifname = Invocation::required(&invocation.ifname, "CNI_IFNAME")?;
    let name = attachment_name(&id, &ifname);
    let attached: ContainerInspect = client
        .get(&format!("/containers/{name}"))
        .await
        .map_err(CniError::refused)?;
    if !attached.network_settings.networks.contains_key(network) {
        return Err(CniError::new(
            code::REFUSED,
            format!("{name} is not attached to network {network}"),
        ));
    }
    if let Some(netns) = &invocation.netns
        && !netns::same_namespace(
            Path::new(netns),
            Path::new(&attached.network_settings.sandbox_key),
        )
    {
        return Err(CniError::new(
            code::REFUSED,
            format!("{name} is attached to another namespace than {netns}"),
        ));
    }
    Ok(())
}

async fn gc(client: &Client, conf: &NetConf, network: &str) -> Result<(), CniError> {
    let valid: Vec<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| attachment_name(&a.container_id, &a.ifname))
        .collect();
    let containers: Vec<ContainerInspect> = client
        .get("/containers")
        .await
        .map_err(CniError::unreachable)?;
    for container in containers {
        let name = container.name.trim_start_matches('/');
        let ours =
            name.starts_with("cni-") && container.network_settings.networks.contains_key(network);
        if ours && !valid.iter().any(|v| v == name) {
            client
                .delete(&format!("/attached/{name}"))
                .await
                .map_err(CniError::refused)?;
        }
    }
    Ok(())
}

async fn status(client: &Client, network: &str) -> Result<(), CniError> {
    client
        .get::<Value>(&format!("/networks/{network}"))
        .await
        .map(drop)
        .map_err(|e| CniError {
            code: code::NOT_AVAILABLE,
            msg: format!("xnet network {network} is not available"),
            details: format!("{e:#}"),
        })
}

/// The binary's whole life: environment and stdin in, result or error out; the exit code.
pub fn main() -> i32 {
    let invocation = Invocation::from_env();
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let outcome = match read {
        Err(e) => Err((
            CniError::new(code::IO_FAILURE, format!("reading stdin: {e}")),
            SUPPORTED_VERSIONS[2].to_string(),
        )),
        Ok(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                (
                    CniError::new(code::IO_FAILURE, format!("{e}")),
                    SUPPORTED_VERSIONS[2].to_string(),
                )
            })
            .and_then(|runtime| runtime.block_on(run(&invocation, &stdin))),
    };
    match outcome {
        Ok(Some(result)) => {
            println!("{result}");
            0
        }
        Ok(None) => 0,
        Err((error, version)) => {
            println!("{}", error.to_json(&version));
            1
        }
    }
}
