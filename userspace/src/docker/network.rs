//! The Docker engine's calls through the network plugin ([`super::routes`]): Docker's
//! networks become xnet networks and its containers' sandboxes xnet containers, on the same
//! datapath as `xnet run`'s, with the same isolation, egress and published ports.
//!
//! Who does what: Docker's IPAM chooses subnets and addresses (xnet checks them against every
//! other network and the host's routes); Docker owns the sandboxes, moves the interface xnet
//! prepares into them and addresses it; xnet owns the veth pairs, the datapath entries, the
//! host's routes and the published ports. The protocol names networks and endpoints by id
//! only: names come from Docker's API afterwards ([`super::names`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use serde_json::Value;
use tracing::info;

use super::{
    convert::{address, generic_options, pools, port_spec, provisional_name, sandbox_id},
    wire::{
        CreateEndpoint, CreateNetwork, Empty, EndpointCall, EndpointCreated, EndpointInterface,
        InterfaceName, Join, Joined, NetworkCall, OPT_INTERNAL, OPT_OVERLAY, OPT_PORTMAP, OperInfo,
        PortBinding, ProgramExternalConnectivity,
    },
};
use crate::{
    cluster::{keys, records::EndpointRecord},
    daemon::{Daemon, inner::Inner},
    drivers::{self, BRIDGE},
    error::{Result, XnetError},
    plumbing::Placement,
    state::{
        Container, DockerEndpoint, DockerOwned, Endpoint, KernelObject, Mac, Network, Sandbox,
        ids::{now, random_id},
        ipam,
        rules::{check_attachable, check_publishable, parse_specs},
    },
};

impl Daemon {
    pub async fn docker_create_network(&self, req: CreateNetwork) -> Result<Empty> {
        let mut inner = self.inner.lock().await;
        inner.docker_create_network(req).await?;
        drop(inner);
        self.names_wanted.notify_one();
        Ok(Empty {})
    }

    pub async fn docker_delete_network(&self, req: NetworkCall) -> Result<Empty> {
        self.inner
            .lock()
            .await
            .docker_delete_network(&req.network_id)
            .await?;
        Ok(Empty {})
    }

    pub async fn docker_create_endpoint(&self, req: CreateEndpoint) -> Result<EndpointCreated> {
        self.inner.lock().await.docker_create_endpoint(req).await
    }

    pub async fn docker_delete_endpoint(&self, req: EndpointCall) -> Result<Empty> {
        self.inner
            .lock()
            .await
            .docker_delete_endpoint(&req.endpoint_id)
            .await?;
        Ok(Empty {})
    }

    pub async fn docker_join(&self, req: Join) -> Result<Joined> {
        let mut inner = self.inner.lock().await;
        let joined = inner.docker_join(req).await?;
        drop(inner);
        self.names_wanted.notify_one();
        Ok(joined)
    }

    pub async fn docker_leave(&self, req: EndpointCall) -> Result<Empty> {
        self.inner
            .lock()
            .await
            .docker_leave(&req.endpoint_id)
            .await?;
        Ok(Empty {})
    }

    pub async fn docker_program_external(&self, req: ProgramExternalConnectivity) -> Result<Empty> {
        self.inner.lock().await.docker_program_external(req)?;
        Ok(Empty {})
    }

    pub async fn docker_revoke_external(&self, req: EndpointCall) -> Result<Empty> {
        self.inner
            .lock()
            .await
            .docker_revoke_external(&req.endpoint_id)?;
        Ok(Empty {})
    }

    pub async fn docker_endpoint_info(&self, req: EndpointCall) -> Result<OperInfo> {
        let inner = self.inner.lock().await;
        let mut value = BTreeMap::new();
        if let Some(ep) = inner.state.docker_endpoints.get(&req.endpoint_id) {
            value.insert(
                "com.docker.network.endpoint.macaddress".to_string(),
                Value::from(ep.mac.to_string()),
            );
        }
        Ok(OperInfo { value })
    }
}

impl Inner {
    /// The plugin's name, which is the driver name Docker's networks carry.
    fn plugin_name(&self) -> Result<&str> {
        self.docker
            .as_ref()
            .map(|d| d.plugin.as_str())
            .ok_or_else(|| XnetError::invalid("xnetd serves no Docker plugin"))
    }

    async fn docker_create_network(&mut self, req: CreateNetwork) -> Result<()> {
        let plugin = self.plugin_name()?.to_string();
        if self.state.networks.values().any(|n| n.id == req.network_id) {
            // A repeated call (Docker retries when an answer got lost).
            return Ok(());
        }
        let internal = req
            .options
            .get(OPT_INTERNAL)
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let generic = generic_options(&req.options)?;
        let (subnets, gateways) = pools(&req)?;
        if let Some(overlay) = generic.get(OPT_OVERLAY) {
            return self.docker_stand_for_overlay(
                &req.network_id,
                overlay,
                &generic,
                &subnets,
                &plugin,
            );
        }
        // Docker's networks are bridge networks.
        let driver = drivers::endpoint_driver(BRIDGE).expect("the bridge driver makes endpoints");
        let options = driver.check_options(&generic, !req.ipv6_data.is_empty())?;
        let (want4, want6) = ipam::by_family(&subnets, &gateways, &[])?;
        let (taken4, taken6) = self.taken_subnets().await?;
        // Docker's IPAM has chosen: a subnet taken here is refused, never replaced.
        let refused = |e: XnetError| {
            XnetError::conflict(format!(
                "{e}; choose a free --subnet, or let xnet choose with --ipam-driver {plugin}"
            ))
        };
        let ipv4 = ipam::configure(&want4, &taken4, std::iter::empty()).map_err(refused)?;
        let ipv6 = match req.ipv6_data.is_empty() {
            true => None,
            false => Some(ipam::configure(&want6, &taken6, std::iter::empty()).map_err(refused)?),
        };
        let network = Network {
            name: provisional_name(&req.network_id),
            id: req.network_id,
            driver: BRIDGE.into(),
            ipv4,
            ipv6,
            datapath_id: 0,
            created: now(),
            internal,
            options: generic,
            icc: options.icc,
            mtu: options.mtu,
            docker: Some(DockerOwned { named: false }),
            vni: None,
            attachable: false,
            aux_addresses: BTreeMap::new(),
        };
        self.install_network(network).await?;
        Ok(())
    }

    /// `-o xnet.overlay=NAME`: the Docker network stands for the cluster's overlay network
    /// NAME on this host (Weave's pattern: Docker 20.10 takes remote drivers of global scope
    /// only with its deprecated cluster store). Its addresses must be the cluster's, from
    /// xnet's IPAM with the same option; standalone containers join only an attachable one.
    fn docker_stand_for_overlay(
        &mut self,
        docker_id: &str,
        overlay: &str,
        generic: &BTreeMap<String, String>,
        subnets: &[String],
        plugin: &str,
    ) -> Result<()> {
        let net = self.overlay_named(overlay)?;
        check_attachable(net)?;
        if let Some(other) = generic.keys().find(|k| *k != OPT_OVERLAY) {
            return Err(XnetError::invalid(format!(
                "-o {other}: a network that stands for overlay network {overlay} takes its options from it"
            )));
        }
        if subnets.first().map(String::as_str) != Some(&net.ipv4.subnet.to_string()) {
            return Err(XnetError::invalid(format!(
                "-o {OPT_OVERLAY}={overlay} needs the overlay's addresses: add --ipam-driver {plugin} --ipam-opt {OPT_OVERLAY}={overlay}"
            )));
        }
        let id = net.id.clone();
        self.state.docker_overlays.insert(docker_id.to_string(), id);
        self.save()?;
        info!(network = %overlay, "a Docker network stands for the overlay network");
        Ok(())
    }

    async fn docker_delete_network(&mut self, network_id: &str) -> Result<()> {
        if self.state.docker_overlays.remove(network_id).is_some() {
            // The overlay is the cluster's: only the Docker network goes.
            self.state
                .docker_endpoints
                .retain(|_, ep| ep.network_id != network_id);
            self.save()?;
            return Ok(());
        }
        let Ok(net) = self.state.network_by_id(network_id).cloned() else {
            return Ok(());
        };
        self.uninstall_network(&net).await?;
        self.state
            .docker_endpoints
            .retain(|_, ep| ep.network_id != network_id);
        self.save()?;
        Ok(())
    }

    async fn docker_create_endpoint(&mut self, req: CreateEndpoint) -> Result<EndpointCreated> {
        let net = self.state.network_by_id(&req.network_id)?.clone();
        if net.vni.is_some() {
            return self.docker_create_overlay_endpoint(req, &net).await;
        }
        let net = &net;
        let ipv4: Ipv4Addr = address(&req.interface.address, "IPv4")?.ok_or_else(|| {
            XnetError::invalid("the endpoint has no IPv4 address from Docker's IPAM")
        })?;
        let ipv6: Option<Ipv6Addr> = address(&req.interface.address_ipv6, "IPv6")?;
        // Docker's IPAM chose them: they are checked as `--ip`/`--ip6` are (a host address of
        // the subnet, not the gateway, not another endpoint's), never replaced.
        let others = self
            .state
            .docker_endpoints
            .iter()
            .filter(|(id, ep)| ep.network_id == req.network_id && **id != req.endpoint_id)
            .map(|(_, ep)| ep);
        let used4: BTreeSet<Ipv4Addr> = others.clone().map(|ep| ep.ipv4).collect();
        ipam::allocate(&net.ipv4, &used4, Some(&ipv4.to_string()))?;
        if let (Some(config), Some(ip)) = (&net.ipv6, ipv6) {
            let used6: BTreeSet<Ipv6Addr> = others.filter_map(|ep| ep.ipv6).collect();
            ipam::allocate(config, &used6, Some(&ip.to_string()))?;
        }
        let given_mac = !req.interface.mac_address.is_empty();
        let mac = match given_mac {
            true => req
                .interface
                .mac_address
                .parse()
                .map_err(XnetError::invalid)?,
            false => Mac::for_ipv4(ipv4),
        };
        self.keep_docker_endpoint(
            req.endpoint_id,
            DockerEndpoint {
                network_id: req.network_id,
                ipv4,
                ipv6,
                mac,
            },
            given_mac,
        )
    }

    async fn docker_delete_endpoint(&mut self, endpoint_id: &str) -> Result<()> {
        // Docker leaves first; if that call was lost (xnetd was down), leave now.
        self.docker_leave(endpoint_id).await?;
        if let Some(ep) = self.state.docker_endpoints.remove(endpoint_id) {
            // Leaving withdrew a joined endpoint of an overlay from the cluster; one that
            // never joined is withdrawn here.
            if let Ok(net) = self.state.network_by_id(&ep.network_id).cloned()
                && net.vni.is_some()
            {
                let addresses: Vec<IpAddr> = std::iter::once(ep.ipv4.into())
                    .chain(ep.ipv6.map(IpAddr::from))
                    .collect();
                self.withdraw_global_endpoint(&net, endpoint_id, &addresses)
                    .await;
            }
            self.save()?;
        }
        Ok(())
    }

    /// An endpoint on a Docker network that stands for an overlay: its addresses, which
    /// xnet's IPAM reserved in the cluster, become its own, with its record (and a random
    /// MAC unless Docker set one), in one transaction.
    async fn docker_create_overlay_endpoint(
        &mut self,
        req: CreateEndpoint,
        net: &Network,
    ) -> Result<EndpointCreated> {
        let ipv4: Ipv4Addr = address(&req.interface.address, "IPv4")?.ok_or_else(|| {
            XnetError::invalid("the endpoint has no IPv4 address from Docker's IPAM")
        })?;
        let ipv6: Option<Ipv6Addr> = address(&req.interface.address_ipv6, "IPv6")?;
        let given_mac = !req.interface.mac_address.is_empty();
        let mac = match given_mac {
            true => req
                .interface
                .mac_address
                .parse()
                .map_err(XnetError::invalid)?,
            false => Mac::random()?,
        };
        let (host, lease) = self.membership()?;
        let record = EndpointRecord {
            id: req.endpoint_id.clone(),
            network: net.id.clone(),
            host,
            container: provisional_name(&req.endpoint_id),
            ipv4,
            ipv6,
            mac,
        };
        let claims: Vec<String> = std::iter::once(IpAddr::from(ipv4))
            .chain(ipv6.map(IpAddr::from))
            .map(|ip| keys::address(&net.id, ip))
            .collect();
        let tokens = claims
            .iter()
            .map(|key| self.state.docker_reservations.get(key).cloned())
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| {
                XnetError::invalid(format!(
                    "the endpoint's addresses were not reserved in the cluster: create the Docker network with --ipam-opt {OPT_OVERLAY}={}",
                    net.name
                ))
            })?;
        let (mut store, _) = self.cluster_store(&net.driver)?;
        if !store.adopt_reserved(&record, &tokens, lease).await? {
            return Err(XnetError::conflict(format!(
                "address {ipv4} is no longer reserved for this endpoint in the cluster"
            )));
        }
        for key in &claims {
            self.state.docker_reservations.remove(key);
        }
        self.keep_docker_endpoint(
            req.endpoint_id,
            DockerEndpoint {
                network_id: req.network_id,
                ipv4,
                ipv6,
                mac,
            },
            given_mac,
        )
    }

    async fn docker_join(&mut self, req: Join) -> Result<Joined> {
        let created = self
            .state
            .docker_endpoints
            .get(&req.endpoint_id)
            .cloned()
            .ok_or_else(|| {
                XnetError::not_found(format!("endpoint {} not found", req.endpoint_id))
            })?;
        if req.endpoint_id.len() < 12 || self.state.joined_endpoint(&req.endpoint_id).is_some() {
            return Err(XnetError::conflict(format!(
                "endpoint {} has already joined a sandbox",
                req.endpoint_id
            )));
        }
        let net = self.state.network_by_id(&created.network_id)?.clone();
        let sandbox_key = PathBuf::from(&req.sandbox_key);
        let mut container = match self.docker_container_at(&sandbox_key) {
            Some(c) => c.clone(),
            None => Container {
                id: random_id()?,
                name: provisional_name(&sandbox_id(&sandbox_key)),
                sandbox_key,
                created: now(),
                command: Vec::new(),
                pid: None,
                sandbox: Sandbox::Docker,
                endpoints: Vec::new(),
                ports: Vec::new(),
                docker: Some(DockerOwned { named: false }),
                dns: Default::default(),
                embedded_dns: false,
            },
        };
        // Docker names them `eth<n>` in the order they join.
        let ifname = format!("eth{}", container.endpoints.len());
        let ipv6 = created.ipv6.filter(|_| net.ipv6.is_some());
        let mut ep = Endpoint {
            mac: created.mac,
            ..self.unplumbed_endpoint(req.endpoint_id, &net, created.ipv4, ipv6, ifname)?
        };
        let driver = self.driver(&net)?;
        let objects = [ep.kernel_object()];
        self.begin(&objects)?;
        let plumbed = driver
            .plumb_endpoint(&mut self.kernel, Placement::Docker, &mut ep, &net)
            .await;
        let src_name = match plumbed {
            Ok(name) => name.expect("an endpoint left for Docker has a name"),
            Err(e) => {
                self.undo_endpoint(&ep, &objects).await;
                return Err(e);
            }
        };
        info!(container = %container.name, network = %net.name, interface = %ep.host_ifname, "docker sandbox joined");
        container.endpoints.push(ep);
        self.state
            .containers
            .insert(container.name.clone(), container);
        self.settle(&objects);
        self.save()?;
        self.sync_members(&net.name)?;
        // On an internal network no default route: its gateway only answers.
        let gateway = |ip: IpAddr| {
            if net.internal {
                String::new()
            } else {
                ip.to_string()
            }
        };
        Ok(Joined {
            interface_name: InterfaceName {
                src_name,
                dst_prefix: "eth",
            },
            gateway: gateway(net.ipv4.gateway.into()),
            gateway_ipv6: net
                .ipv6
                .map(|c| gateway(c.gateway.into()))
                .unwrap_or_default(),
            disable_gateway_service: false,
        })
    }

    /// The Docker container whose sandbox is at `key`.
    fn docker_container_at(&self, key: &Path) -> Option<&Container> {
        self.state
            .containers
            .values()
            .find(|c| c.sandbox == Sandbox::Docker && c.sandbox_key == key)
    }

    async fn docker_leave(&mut self, endpoint_id: &str) -> Result<()> {
        let Some((container, position)) = self.state.joined_endpoint(endpoint_id) else {
            return Ok(());
        };
        let container = container.clone();
        self.remove_endpoint(&container, position).await?;
        // A Docker container is its joined endpoints.
        if self.state.containers[&container.name].endpoints.is_empty() {
            self.state.containers.remove(&container.name);
        }
        self.save()?;
        self.sync_members(&container.endpoints[position].network)?;
        Ok(())
    }

    /// Publishes the sandbox's `-p` bindings on its gateway endpoint, the one Docker names.
    fn docker_program_external(&mut self, req: ProgramExternalConnectivity) -> Result<()> {
        let bindings: Vec<PortBinding> = match req.options.get(OPT_PORTMAP) {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => serde_json::from_value(value.clone())
                .map_err(|e| XnetError::invalid(format!("malformed port bindings: {e}")))?,
        };
        let specs = bindings
            .iter()
            .map(port_spec)
            .collect::<Result<Vec<String>>>()?;
        let specs = parse_specs(&specs)?;
        let (container, position) =
            self.state
                .joined_endpoint(&req.endpoint_id)
                .ok_or_else(|| {
                    XnetError::not_found(format!("endpoint {} not found", req.endpoint_id))
                })?;
        let mut container = container.clone();
        // Programmed again (the gateway endpoint changed): the old bindings go first.
        self.unpublish_ports(&container, &container.ports)?;
        container.ports.clear();
        // xnet's published ports lead to a container's first endpoint: the one Docker
        // programs becomes the first.
        let programmed = container.endpoints.remove(position);
        container.endpoints.insert(0, programmed);
        self.state
            .containers
            .insert(container.name.clone(), container.clone());
        if !specs.is_empty() {
            let ipv6 = check_publishable(&container, self.publish_network(&container))?;
            let mappings = self.resolve_ports(&container.name, ipv6, &specs)?;
            let objects: Vec<KernelObject> =
                mappings.iter().map(KernelObject::reserved_ports).collect();
            self.begin(&objects)?;
            if let Err(e) = self.publish_ports(&container, &mappings) {
                let undone = self.unpublish_ports(&container, &mappings);
                self.settle_undone(undone, &objects, &format!("container {}", container.name));
                return Err(e.into());
            }
            container.ports = mappings;
            self.state
                .containers
                .insert(container.name.clone(), container);
            self.settle(&objects);
        }
        self.save()?;
        Ok(())
    }

    fn docker_revoke_external(&mut self, endpoint_id: &str) -> Result<()> {
        let Some((container, 0)) = self.state.joined_endpoint(endpoint_id) else {
            return Ok(());
        };
        let container = container.clone();
        self.unpublish_ports(&container, &container.ports)?;
        self.state
            .containers
            .get_mut(&container.name)
            .expect("found above")
            .ports
            .clear();
        self.save()?;
        Ok(())
    }

    /// Keeps the endpoint Docker created (in the state, saved) and answers Docker: with the
    /// MAC xnet chose, or none when Docker gave one (Docker refuses an answer that changes
    /// what it set itself).
    fn keep_docker_endpoint(
        &mut self,
        endpoint_id: String,
        endpoint: DockerEndpoint,
        given_mac: bool,
    ) -> Result<EndpointCreated> {
        let mac = endpoint.mac;
        self.state.docker_endpoints.insert(endpoint_id, endpoint);
        self.save()?;
        let mac_address = if given_mac {
            String::new()
        } else {
            mac.to_string()
        };
        Ok(EndpointCreated {
            interface: EndpointInterface {
                mac_address,
                ..EndpointInterface::default()
            },
        })
    }
}
