//! Names for Docker's objects. The plugin protocol carries ids only, so after a call that makes
//! a network or joins a container, a task asks Docker's API (`--docker-host`) what the user
//! called them and renames them in xnet's state: `xnet network ls` and `xnet ps` then show
//! `docker network ls`'s and `docker ps`'s names. It never runs inside a plugin call: Docker
//! holds its own locks while it waits for the plugin's answer.
//!
//! The first answer after xnetd starts also tells which of Docker's networks Docker removed
//! while xnetd was down (Docker removes them even when the plugin does not answer): those are
//! removed here too.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Deserialize;
use tracing::{info, warn};

use crate::{
    api::client::Client,
    daemon::{Daemon, inner::Inner},
    state::{DockerOwned, Network, State},
};

/// How long one question to Docker's API may take.
const API_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon to ask again for what Docker did not know yet (it stores a new network or
/// container only after our answer).
const RETRY: Duration = Duration::from_millis(300);

/// The fields of `GET /networks` this needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerNetwork {
    name: String,
    id: String,
}

/// The fields of `GET /containers/json?all=1` this needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerContainer {
    id: String,
    names: Vec<String>,
    #[serde(default)]
    command: String,
    network_settings: Option<DockerContainerNetworks>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerContainerNetworks {
    #[serde(default)]
    networks: BTreeMap<String, DockerEndpointSettings>,
}

#[derive(Debug, Deserialize)]
struct DockerEndpointSettings {
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
}

/// What Docker calls xnet's objects: network id → name; endpoint id → its container.
#[derive(Default)]
struct Names {
    networks: BTreeMap<String, String>,
    endpoints: BTreeMap<String, ContainerName>,
}

/// A Docker container as `xnet ps` shows it.
#[derive(Clone)]
struct ContainerName {
    id: String,
    name: String,
    command: String,
}

impl Daemon {
    /// Names Docker's objects as they appear, until the process ends.
    pub async fn name_docker_objects(self: Arc<Self>, api: String) {
        let client = match Client::docker(&api) {
            Ok(client) => client,
            Err(e) => {
                warn!("--docker-host: {e:#}; Docker's objects keep their ids as names");
                return;
            }
        };
        let mut warned = false;
        let mut synced = false;
        loop {
            if synced && !self.inner.lock().await.has_unnamed_docker_objects() {
                self.names_wanted.notified().await;
                continue;
            }
            match ask_docker(&client).await {
                Ok(names) => {
                    warned = false;
                    let mut inner = self.inner.lock().await;
                    if !synced {
                        synced = true;
                        if let Err(e) = inner.forget_removed_docker_networks(&names).await {
                            warn!("removing networks Docker removed: {e:#}");
                        }
                    }
                    if let Err(e) = inner.apply_docker_names(&names) {
                        warn!("naming Docker's objects: {e:#}");
                    }
                }
                Err(e) if !warned => {
                    warn!("Docker's API at {api} does not answer ({e:#}); retrying");
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = self.names_wanted.notified() => {}
            }
        }
    }
}

async fn ask_docker(client: &Client) -> anyhow::Result<Names> {
    let (networks, containers) = tokio::time::timeout(API_TIMEOUT, async {
        let networks: Vec<DockerNetwork> = client.get("/networks").await?;
        let containers: Vec<DockerContainer> = client.get("/containers/json?all=1").await?;
        anyhow::Ok((networks, containers))
    })
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {API_TIMEOUT:?}"))??;
    let mut names = Names {
        networks: networks.into_iter().map(|n| (n.id, n.name)).collect(),
        ..Names::default()
    };
    for c in containers {
        let name = c
            .names
            .first()
            .map(|n| n.trim_start_matches('/').to_string());
        let Some(name) = name else { continue };
        let endpoints = c.network_settings.map(|s| s.networks).unwrap_or_default();
        for settings in endpoints.into_values() {
            names.endpoints.insert(
                settings.endpoint_id,
                ContainerName {
                    id: c.id.clone(),
                    name: name.clone(),
                    command: c.command.clone(),
                },
            );
        }
    }
    Ok(names)
}

impl Inner {
    /// Removes the Docker networks Docker once named (so it stored them) and no longer lists,
    /// if no container uses them.
    async fn forget_removed_docker_networks(&mut self, names: &Names) -> crate::error::Result<()> {
        let gone: Vec<Network> = self
            .state
            .networks
            .values()
            .filter(|n| n.docker.is_some_and(|d| d.named) && !names.networks.contains_key(&n.id))
            .filter(|n| self.state.endpoints_on(&n.name).next().is_none())
            .cloned()
            .collect();
        for net in gone {
            info!(network = %net.name, "Docker removed the network while xnetd was down; removing it");
            self.uninstall_network(&net).await?;
        }
        Ok(())
    }

    fn has_unnamed_docker_objects(&self) -> bool {
        let unnamed = |d: &Option<DockerOwned>| d.is_some_and(|d| !d.named);
        self.state.networks.values().any(|n| unnamed(&n.docker))
            || self.state.containers.values().any(|c| unnamed(&c.docker))
    }

    /// Renames the unnamed Docker objects Docker knows by now; a name xnet already uses for
    /// something else gets the id prefix appended.
    fn apply_docker_names(&mut self, names: &Names) -> anyhow::Result<()> {
        let unnamed: Vec<(String, String)> = self
            .state
            .networks
            .values()
            .filter(|n| n.docker.is_some_and(|d| !d.named))
            .map(|n| (n.name.clone(), n.id.clone()))
            .collect();
        for (old, id) in unnamed {
            let Some(name) = names.networks.get(&id) else {
                continue;
            };
            let new = self.free_name(name, &id, |state, n| state.networks.contains_key(n));
            let mut net = self.state.networks.remove(&old).expect("listed");
            net.name = new.clone();
            net.docker = Some(DockerOwned { named: true });
            self.state.networks.insert(new.clone(), net);
            for ep in self
                .state
                .containers
                .values_mut()
                .flat_map(|c| &mut c.endpoints)
                .filter(|e| e.network == old)
            {
                ep.network = new.clone();
            }
        }
        let unnamed: Vec<(String, Vec<String>)> = self
            .state
            .containers
            .values()
            .filter(|c| c.docker.is_some_and(|d| !d.named))
            .map(|c| {
                (
                    c.name.clone(),
                    c.endpoints.iter().map(|e| e.id.clone()).collect(),
                )
            })
            .collect();
        for (old, endpoint_ids) in unnamed {
            let Some(docker) = endpoint_ids.iter().find_map(|e| names.endpoints.get(e)) else {
                continue;
            };
            let new = self.free_name(&docker.name, &docker.id, |state, n| {
                n != old && state.containers.contains_key(n)
            });
            let mut c = self.state.containers.remove(&old).expect("listed");
            c.name = new.clone();
            c.id = docker.id.clone();
            c.command = docker
                .command
                .split_whitespace()
                .map(str::to_string)
                .collect();
            c.docker = Some(DockerOwned { named: true });
            self.state.containers.insert(new, c);
        }
        self.save()?;
        Ok(())
    }

    /// `name`, or `name-<id prefix>` when `taken` says xnet uses it already.
    fn free_name(&self, name: &str, id: &str, taken: impl Fn(&State, &str) -> bool) -> String {
        if taken(&self.state, name) {
            format!("{name}-{}", &id[..id.len().min(12)])
        } else {
            name.to_string()
        }
    }
}
