//! Docker's network plugin protocols on the wire, as Docker 20.10 speaks them: libnetwork's
//! remote network driver (moby `libnetwork/docs/remote.md`) and remote IPAM driver
//! (`libnetwork/docs/ipam.md`). Requests are JSON bodies (`null` for some); answers are JSON,
//! refusals `{"Err": …}` (`{"Error": …}` for IPAM), see [`super::routes`].

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The media type of every plugin request and response.
pub const PLUGIN_MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// Docker's generic options (`-o KEY=VALUE` of `docker network create`).
pub const OPT_GENERIC: &str = "com.docker.network.generic";
/// Set (true) for `docker network create --internal`.
pub const OPT_INTERNAL: &str = "com.docker.network.internal";
/// The sandbox's port bindings (`-p`), in ProgramExternalConnectivity.
pub const OPT_PORTMAP: &str = "com.docker.network.portmap";
/// `-o xnet.overlay=NAME` (network) and `--ipam-opt xnet.overlay=NAME` (IPAM): the Docker
/// network is the cluster's overlay network NAME on this host.
pub const OPT_OVERLAY: &str = "xnet.overlay";

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

/// Decodes a request body; a body Docker could not have sent is a refusal like any other.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed plugin request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_requests_decode() {
        let create: CreateNetwork = decode(
            br#"{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false,
            "com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"false"}},
            "IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.1.0.0/24",
            "Gateway":"10.1.0.1/24","AuxAddresses":{}}],"IPv6Data":null}"#,
        )
        .unwrap();
        assert_eq!(create.network_id, "n1");
        assert_eq!(create.ipv4_data[0].pool, "10.1.0.0/24");
        assert_eq!(create.ipv4_data[0].gateway, "10.1.0.1/24");
        assert!(create.ipv6_data.is_empty());
        assert_eq!(
            create.options[OPT_GENERIC]["com.docker.network.bridge.enable_icc"],
            "false"
        );

        let ep: CreateEndpoint = decode(
            br#"{"NetworkID":"n1","EndpointID":"e1","Interface":{"Address":"10.1.0.2/24",
            "AddressIPv6":"","MacAddress":""},"Options":{}}"#,
        )
        .unwrap();
        assert_eq!(ep.interface.address, "10.1.0.2/24");
        assert!(ep.interface.mac_address.is_empty());

        let program: ProgramExternalConnectivity = decode(
            br#"{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.portmap":
            [{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}],
            "com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}]}}"#,
        )
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
        assert!(decode::<Join>(b"null").is_err());
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
    }
}
