//! The plugin socket's routes: Docker's `POST /<Interface>.<Method>` calls, decoded, run by the
//! daemon under its lock, answered. Docker sends no Content-Type header, so bodies are read as
//! bytes rather than through axum's `Json`, which insists on one. Refusals are HTTP 200 with
//! `{"Err": "…"}` (`{"Error": "…"}` for IPAM): Docker shows the message to the user as
//! `… remote: <message>`.

use std::sync::Arc;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::Serialize;
use serde_json::Value;
use tracing::debug;

use super::wire::{
    Activation, AddressSpaces, Capabilities, CreateEndpoint, CreateNetwork, EndpointCall,
    IpamCapabilities, Join, NetworkCall, PLUGIN_MEDIA_TYPE, ProgramExternalConnectivity,
    ReleaseAddress, ReleasePool, RequestAddress, RequestPool, decode,
};
use crate::{daemon::Daemon, error::XnetError};

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
            debug!(call = $name, "docker plugin call");
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
    fn refusals_use_each_protocols_key() {
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
