//! The embedded DNS as containers see it: a resolv.conf per container naming 127.0.0.11
//! (with its `--dns-search` and `--dns-option`), which `run` and `exec` mount over the
//! container's `/etc/resolv.conf`; the flags checked; stale files of containers gone removed
//! at start. The servers themselves follow the state (`Inner::save`, `dns::DnsServers`).

use std::{
    fs,
    net::IpAddr,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::inner::Inner;
use crate::{
    dns::DNS_ADDRESS,
    error::{Result, XnetError},
    state::{Container, Sandbox, model::DnsConfig, rules::validate_name},
};

/// Where the containers' resolv.conf files live: beside the namespaces' pins.
pub(crate) fn resolv_dir(netns_dir: &Path) -> PathBuf {
    netns_dir.with_file_name("resolv")
}

impl Inner {
    /// The resolv.conf `run` and `exec` give `container`, if it gets one: only containers
    /// in a namespace of xnet's own.
    pub(crate) fn resolv_conf_of(&self, container: &Container) -> Option<PathBuf> {
        (container.sandbox == Sandbox::Owned)
            .then(|| resolv_dir(&self.netns_dir).join(format!("{}.conf", &container.id[..12])))
    }

    /// Writes `container`'s resolv.conf.
    pub(crate) fn write_resolv_conf(&self, container: &Container) -> anyhow::Result<()> {
        let Some(path) = self.resolv_conf_of(container) else {
            return Ok(());
        };
        let dir = resolv_dir(&self.netns_dir);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::write(&path, resolv_conf(&container.dns))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Removes `container`'s resolv.conf, if it has one.
    pub(crate) fn remove_resolv_conf(&self, container: &Container) -> anyhow::Result<()> {
        match self.resolv_conf_of(container).map(fs::remove_file) {
            Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("removing a container's resolv.conf")
            }
            _ => Ok(()),
        }
    }

    /// Removes the resolv.conf files of containers the state does not have (a daemon killed
    /// between writing one and keeping its container).
    pub(crate) fn prune_resolv_confs(&self) -> anyhow::Result<()> {
        let Ok(entries) = fs::read_dir(resolv_dir(&self.netns_dir)) else {
            return Ok(());
        };
        let kept: Vec<PathBuf> = self
            .state
            .containers
            .values()
            .filter_map(|c| self.resolv_conf_of(c))
            .collect();
        for path in entries.flatten().map(|e| e.path()) {
            if !kept.contains(&path) {
                fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }
}

/// A container's resolv.conf: the embedded DNS, then its search domains and options.
fn resolv_conf(dns: &DnsConfig) -> String {
    let mut text = format!("nameserver {DNS_ADDRESS}\n");
    if !dns.search.is_empty() {
        text += &format!("search {}\n", dns.search.join(" "));
    }
    if !dns.options.is_empty() {
        text += &format!("options {}\n", dns.options.join(" "));
    }
    text
}

/// `--dns`, `--dns-search` and `--dns-option` checked, as a container keeps them.
pub(crate) fn dns_config(
    servers: &[String],
    search: &[String],
    options: &[String],
) -> Result<DnsConfig> {
    let servers = servers
        .iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| XnetError::invalid(format!("invalid --dns {s:?}: not an IP address")))
        })
        .collect::<Result<Vec<_>>>()?;
    let word = |flag: &str, value: &String| {
        let fine = !value.is_empty() && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        match fine {
            true => Ok(value.clone()),
            false => Err(XnetError::invalid(format!("invalid {flag} {value:?}"))),
        }
    };
    Ok(DnsConfig {
        servers,
        search: search
            .iter()
            .map(|s| word("--dns-search", s))
            .collect::<Result<_>>()?,
        options: options
            .iter()
            .map(|o| word("--dns-option", o))
            .collect::<Result<_>>()?,
    })
}

/// Network aliases checked as Docker checks names.
pub(crate) fn checked_aliases(aliases: &[String]) -> Result<Vec<String>> {
    for alias in aliases {
        validate_name(alias, "alias")?;
    }
    Ok(aliases.to_vec())
}
