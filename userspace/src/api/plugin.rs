//! Docker's network plugin protocols as Docker 20.10 speaks them, served on xnetd's plugin
//! socket under `/run/docker/plugins/`: libnetwork's remote network driver (moby
//! `libnetwork/docs/remote.md`) and remote IPAM driver (`libnetwork/docs/ipam.md`), used with
//! `docker network create -d xnet [--ipam-driver xnet]`. The wire types and the routes; the
//! calls themselves are `daemon::docker`'s and `daemon::docker_ipam`'s.
//!
//! Docker's requests are `POST /<Interface>.<Method>` with a JSON body (`null` for some) and no
//! Content-Type header, so bodies are read as bytes rather than through axum's `Json`, which
//! insists on one. Refusals are HTTP 200 with `{"Err": "…"}` (`{"Error": "…"}` for IPAM): Docker
//! shows the message to the user as `… remote: <message>`.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{daemon::Daemon, error::XnetError};

/// The media type of every plugin request and response.
const PLUGIN_MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// Docker's generic options (`-o KEY=VALUE` of `docker network create`).
pub const OPT_GENERIC: &str = "com.docker.network.generic";
/// Set (true) for `docker network create --internal`.
pub const OPT_INTERNAL: &str = "com.docker.network.internal";
/// The sandbox's port bindings (`-p`), in ProgramExternalConnectivity.
pub const OPT_PORTMAP: &str = "com.docker.network.portmap";

/// `Plugin.Activate`'s answer: the protocols this socket speaks.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Activation {
    pub implements: Vec<&'static str>,
}

/// The answer of calls that return nothing: `{}`.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// `NetworkDriver.GetCapabilities`: networks are local to this host.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Capabilities {
    pub scope: &'static str,
    pub connectivity_scope: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetwork {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, Value>,
    /// What Docker's IPAM chose: at most one pool per family is used.
    #[serde(rename = "IPv4Data", default, deserialize_with = "null_as_default")]
    pub ipv4_data: Vec<IpamData>,
    #[serde(rename = "IPv6Data", default, deserialize_with = "null_as_default")]
    pub ipv6_data: Vec<IpamData>,
}

/// One pool of a network, as Docker's IPAM gave it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamData {
    /// `10.1.0.0/24`.
    pub pool: String,
    /// `10.1.0.1/24` (empty when none).
    #[serde(default)]
    pub gateway: String,
}

/// The request of every call that names just a network.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkCall {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// The request of every call that names an endpoint (DeleteEndpoint, Leave,
/// EndpointOperInfo, RevokeExternalConnectivity).
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointCall {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateEndpoint {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub interface: EndpointInterface,
}

/// The interface Docker describes in CreateEndpoint (addresses from its IPAM, a MAC only with
/// `--mac-address`) and the one the driver answers with (only what Docker left empty: Docker
/// refuses a driver that changes what it set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointInterface {
    /// `10.1.0.2/24`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(
        rename = "AddressIPv6",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub address_ipv6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointCreated {
    pub interface: EndpointInterface,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Join {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's network namespace, a bind-mounted nsfs file.
    pub sandbox_key: String,
}

/// Join's answer: Docker moves the interface named `SrcName` from its (and xnetd's) namespace
/// into the sandbox, renames it `<DstPrefix><n>`, gives it the endpoint's address and MAC, and
/// routes by default through `Gateway` (no gateway: no default route, as `--internal`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Joined {
    pub interface_name: InterfaceName,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    pub disable_gateway_service: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProgramExternalConnectivity {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, Value>,
}

/// One `-p` binding as Docker hands it over (container port ranges arrive one port each).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    /// IP protocol number: 6 TCP, 17 UDP, 132 SCTP.
    pub proto: u8,
    pub port: u16,
    /// Empty: every address.
    #[serde(rename = "HostIP", default)]
    pub host_ip: String,
    /// 0: any free port.
    #[serde(default)]
    pub host_port: u16,
    /// Above `host_port`: the first free port of the range.
    #[serde(default)]
    pub host_port_end: u16,
}

/// EndpointOperInfo's answer (informational: Docker 20.10's `docker port` cannot show a remote
/// driver's ports).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OperInfo {
    pub value: BTreeMap<String, Value>,
}

/// `IpamDriver.GetCapabilities`: xnet keeps its pools and addresses across restarts, so Docker
/// need not replay its requests.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamCapabilities {
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    pub requires_request_replay: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressSpaces {
    pub local_default_address_space: &'static str,
    pub global_default_address_space: &'static str,
}

/// `IpamDriver.RequestPool`: `--subnet` (empty: xnet picks) and `--ip-range`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestPool {
    #[serde(default)]
    pub pool: String,
    #[serde(default)]
    pub sub_pool: String,
    /// `--ipam-opt`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PoolGranted {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The subnet, `10.1.0.0/24`.
    pub pool: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReleasePool {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`: a container's address (`--ip`, else any), or the network's
/// gateway (`--gateway`, else the first) when the options say so.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RequestAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
}

/// The option key and value that make a RequestAddress ask for the gateway.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";
pub const GATEWAY_ADDRESS: &str = "com.docker.network.gateway";

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressGranted {
    /// With the pool's prefix length: `10.1.0.2/24`.
    pub address: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReleaseAddress {
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    pub address: String,
}

/// Docker sends `null` for absent objects and lists.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A plugin answer: 200 with the JSON body, or with the refusal under the protocol's key.
struct PluginReply {
    result: Result<Value, String>,
    /// `Err` for the network driver, `Error` for IPAM.
    error_key: &'static str,
}

impl IntoResponse for PluginReply {
    fn into_response(self) -> Response {
        let body = match self.result {
            Ok(value) => value,
            Err(err) => serde_json::json!({ self.error_key: err }),
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PLUGIN_MEDIA_TYPE)],
            body.to_string(),
        )
            .into_response()
    }
}

type Shared = State<Arc<Daemon>>;

/// Decodes a request body; a body Docker could not have sent is a refusal like any other.
fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed plugin request: {e}"))
}

/// A network driver's answer.
fn reply<T: Serialize>(result: Result<T, XnetError>) -> PluginReply {
    answer(result, "Err")
}

/// An IPAM driver's answer.
fn ipam_reply<T: Serialize>(result: Result<T, XnetError>) -> PluginReply {
    answer(result, "Error")
}

fn answer<T: Serialize>(result: Result<T, XnetError>, error_key: &'static str) -> PluginReply {
    PluginReply {
        result: result
            .map(|v| serde_json::to_value(v).expect("plugin answers serialize"))
            .map_err(|e| e.to_string()),
        error_key,
    }
}

/// Routes one call: decode, log, run, encode with `$reply`.
macro_rules! call {
    ($name:literal, $reply:ident, $request:ty, |$d:ident, $req:ident| $body:expr) => {
        post(|State($d): Shared, body: Bytes| async move {
            let $req: $request = match decode(&body) {
                Ok(req) => req,
                Err(e) => return $reply::<()>(Err(XnetError::invalid(e))),
            };
            eprintln!("xnetd: docker plugin: {}", $name);
            $reply($body.await)
        })
    };
}

pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route(
            "/Plugin.Activate",
            post(|| async {
                reply(Ok(Activation {
                    implements: vec!["NetworkDriver", "IpamDriver"],
                }))
            }),
        )
        .route(
            "/NetworkDriver.GetCapabilities",
            post(|| async {
                reply(Ok(Capabilities {
                    scope: "local",
                    connectivity_scope: "local",
                }))
            }),
        )
        .route(
            "/NetworkDriver.CreateNetwork",
            call!("CreateNetwork", reply, CreateNetwork, |d, req| d
                .docker_create_network(req)),
        )
        .route(
            "/NetworkDriver.DeleteNetwork",
            call!("DeleteNetwork", reply, NetworkCall, |d, req| d
                .docker_delete_network(req)),
        )
        .route(
            "/NetworkDriver.CreateEndpoint",
            call!("CreateEndpoint", reply, CreateEndpoint, |d, req| d
                .docker_create_endpoint(req)),
        )
        .route(
            "/NetworkDriver.DeleteEndpoint",
            call!("DeleteEndpoint", reply, EndpointCall, |d, req| d
                .docker_delete_endpoint(req)),
        )
        .route(
            "/NetworkDriver.EndpointOperInfo",
            call!("EndpointOperInfo", reply, EndpointCall, |d, req| d
                .docker_endpoint_info(req)),
        )
        .route(
            "/NetworkDriver.Join",
            call!("Join", reply, Join, |d, req| d.docker_join(req)),
        )
        .route(
            "/NetworkDriver.Leave",
            call!("Leave", reply, EndpointCall, |d, req| d.docker_leave(req)),
        )
        .route(
            "/NetworkDriver.ProgramExternalConnectivity",
            call!(
                "ProgramExternalConnectivity",
                reply,
                ProgramExternalConnectivity,
                |d, req| d.docker_program_external(req)
            ),
        )
        .route(
            "/NetworkDriver.RevokeExternalConnectivity",
            call!(
                "RevokeExternalConnectivity",
                reply,
                EndpointCall,
                |d, req| d.docker_revoke_external(req)
            ),
        )
        // Node discovery: only swarm sends these; a local driver has nothing to do.
        .route(
            "/NetworkDriver.DiscoverNew",
            post(|| async { reply(Ok(serde_json::json!({}))) }),
        )
        .route(
            "/NetworkDriver.DiscoverDelete",
            post(|| async { reply(Ok(serde_json::json!({}))) }),
        )
        .route(
            "/IpamDriver.GetCapabilities",
            post(|| async {
                ipam_reply(Ok(IpamCapabilities {
                    requires_mac_address: false,
                    requires_request_replay: false,
                }))
            }),
        )
        .route(
            "/IpamDriver.GetDefaultAddressSpaces",
            post(|| async {
                ipam_reply(Ok(AddressSpaces {
                    local_default_address_space: "xnet",
                    global_default_address_space: "xnet-global",
                }))
            }),
        )
        .route(
            "/IpamDriver.RequestPool",
            call!("RequestPool", ipam_reply, RequestPool, |d, req| d
                .ipam_request_pool(req)),
        )
        .route(
            "/IpamDriver.ReleasePool",
            call!("ReleasePool", ipam_reply, ReleasePool, |d, req| d
                .ipam_release_pool(req)),
        )
        .route(
            "/IpamDriver.RequestAddress",
            call!("RequestAddress", ipam_reply, RequestAddress, |d, req| d
                .ipam_request_address(req)),
        )
        .route(
            "/IpamDriver.ReleaseAddress",
            call!("ReleaseAddress", ipam_reply, ReleaseAddress, |d, req| d
                .ipam_release_address(req)),
        )
        .with_state(daemon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_requests_decode() {
        let create: CreateNetwork = decode(&Bytes::from_static(
            br#"{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false,
            "com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"false"}},
            "IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.1.0.0/24",
            "Gateway":"10.1.0.1/24","AuxAddresses":{}}],"IPv6Data":null}"#,
        ))
        .unwrap();
        assert_eq!(create.network_id, "n1");
        assert_eq!(create.ipv4_data[0].pool, "10.1.0.0/24");
        assert_eq!(create.ipv4_data[0].gateway, "10.1.0.1/24");
        assert!(create.ipv6_data.is_empty());
        assert_eq!(
            create.options[OPT_GENERIC]["com.docker.network.bridge.enable_icc"],
            "false"
        );

        let ep: CreateEndpoint = decode(&Bytes::from_static(
            br#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.1.0.2/24",
            "AddressIPv6":"","MacAddress":""},"Options":{}}"#,
        ))
        .unwrap();
        assert_eq!(ep.interface.address, "10.1.0.2/24");
        assert!(ep.interface.mac_address.is_empty());

        let program: ProgramExternalConnectivity = decode(&Bytes::from_static(
            br#"{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.portmap":
            [{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}],
            "com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}]}}"#,
        ))
        .unwrap();
        let bindings: Vec<PortBinding> =
            serde_json::from_value(program.options[OPT_PORTMAP].clone()).unwrap();
        assert_eq!(
            bindings,
            [PortBinding {
                proto: 6,
                port: 80,
                host_ip: String::new(),
                host_port: 8080,
                host_port_end: 8080
            }]
        );
        assert!(decode::<Join>(&Bytes::from_static(b"null")).is_err());
    }

    #[test]
    fn answers_use_dockers_keys_and_leave_out_what_docker_set() {
        let joined = serde_json::to_value(Joined {
            interface_name: InterfaceName {
                src_name: "xp1".into(),
                dst_prefix: "eth",
            },
            gateway: "10.1.0.1".into(),
            gateway_ipv6: String::new(),
            disable_gateway_service: false,
        })
        .unwrap();
        assert_eq!(
            joined,
            serde_json::json!({"InterfaceName":{"SrcName":"xp1","DstPrefix":"eth"},
                "Gateway":"10.1.0.1","DisableGatewayService":false})
        );
        let created = serde_json::to_value(EndpointCreated {
            interface: EndpointInterface {
                mac_address: "02:42:0a:01:00:02".into(),
                ..EndpointInterface::default()
            },
        })
        .unwrap();
        assert_eq!(
            created,
            serde_json::json!({"Interface":{"MacAddress":"02:42:0a:01:00:02"}})
        );
        let refused = reply::<()>(Err(XnetError::conflict("no")));
        assert_eq!(
            (refused.result, refused.error_key),
            (Err("no".to_string()), "Err")
        );
        assert_eq!(
            ipam_reply::<()>(Err(XnetError::conflict("no"))).error_key,
            "Error"
        );
    }
}
