//! A test host whose xnetd is the network plugin of a private Docker engine in the host's
//! namespace.

use std::{
    ops::{Deref, DerefMut},
    path::Path,
    process::Output,
};

use xnet_dockerlab::{Engine, Options};

use crate::common::Host;

/// A [`Host`] (all of whose methods it has) plus its Docker engine, whose network plugin and
/// IPAM driver (named [`DockerHost::plugin`]) is the host's xnetd.
pub struct DockerHost {
    // Fields drop in order: the engine first, so its containers leave their networks through
    // xnetd's plugin while it still answers.
    engine: Engine,
    host: Host,
}

impl DockerHost {
    /// Starts the engine, then xnetd; with the uplink of [`Host::with_uplink`] if `uplink`.
    pub fn start(uplink: bool, options: Options) -> Self {
        let mut host = Host::without_daemon();
        if uplink {
            host.add_uplink();
        }
        let engine = Engine::start(Path::new(&host.host_netns()), &host.ns, options)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let plugin = plugin(&host);
        host.daemon_args.extend([
            "--docker-plugin".to_string(),
            plugin,
            "--docker-host".to_string(),
            engine.host(),
        ]);
        host.start_daemon();
        Self { engine, host }
    }

    /// The Docker driver (and plugin) name: unique on the machine, as the plugin directory is
    /// shared by every engine.
    pub fn plugin(&self) -> String {
        plugin(&self.host)
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Runs `docker ARGS` against the host's engine, which must succeed; its output, trimmed.
    pub fn docker(&self, args: &[&str]) -> String {
        self.engine
            .run(args)
            .unwrap_or_else(|e| panic!("{e:#}\nxnetd's log:\n{}", self.daemon_log()))
    }

    /// Runs `docker ARGS` against the host's engine.
    pub fn docker_output(&self, args: &[&str]) -> Output {
        self.engine.output(args)
    }

    /// The network namespace of a running Docker container, for `nsenter --net`.
    pub fn docker_netns(&self, container: &str) -> String {
        let netns = self.engine.netns_of(container).unwrap();
        netns.display().to_string()
    }
}

fn plugin(host: &Host) -> String {
    format!("xnet-{}", host.ns)
}

impl Deref for DockerHost {
    type Target = Host;

    fn deref(&self) -> &Host {
        &self.host
    }
}

impl DerefMut for DockerHost {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.host
    }
}
