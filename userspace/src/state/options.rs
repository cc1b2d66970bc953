//! Network options (`-o KEY=VALUE` of `network create`): each driver names the keys it takes,
//! and the rules for each key live here, so two drivers that take the same key agree on it.
//! A key no driver takes is refused rather than ignored.

use std::collections::BTreeMap;

use crate::error::{Result, XnetError};

/// Inter-container communication on the network (`true` unless `false`).
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
/// The MTU of the network's interfaces.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
/// An overlay's VXLAN id (Docker takes a list; an xnet network has one).
pub const OPT_VXLANID: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// An overlay whose traffic between hosts is encrypted (`--opt encrypted`). As in Docker, the
/// key's presence is what counts, whatever its value.
pub const OPT_ENCRYPTED: &str = "encrypted";

/// The parent device of a macvlan or ipvlan network: `IFACE`, or `IFACE.VID` for VLAN VID on
/// IFACE.
pub const OPT_PARENT: &str = "parent";
/// A macvlan network's mode: `bridge` (Docker's default), `private`, `vepa` or `passthru`.
pub const OPT_MACVLAN_MODE: &str = "macvlan_mode";
/// An ipvlan network's mode: `l2` (Docker's default), `l3` or `l3s`.
pub const OPT_IPVLAN_MODE: &str = "ipvlan_mode";
/// An ipvlan network's flag: `bridge` (Docker's default), `private` or `vepa`.
pub const OPT_IPVLAN_FLAG: &str = "ipvlan_flag";
/// xnet's own: the host and the containers of a macvlan or ipvlan network reach each other
/// (`true`), which Docker's macvlan cannot (`false`, the default).
pub const OPT_HOST_ACCESS: &str = "xnet.host_access";

/// Whether a network with `options` is encrypted: [`OPT_ENCRYPTED`] is there, whatever its
/// value.
pub fn is_encrypted(options: &BTreeMap<String, String>) -> bool {
    options.contains_key(OPT_ENCRYPTED)
}

/// VXLAN ids are 24 bits; 0 means none.
const VNI_MAX: u32 = (1 << 24) - 1;
/// The kernel turns IPv6 off on a link with a smaller MTU (RFC 8200's minimum).
const IPV6_MIN_MTU: u32 = 1280;

/// The effect of a network's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkOptions {
    pub icc: bool,
    pub mtu: Option<u32>,
    pub vni: Option<u32>,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        Self {
            icc: true,
            mtu: None,
            vni: None,
        }
    }
}

/// Parses `options`, refusing any key not in `accepted` (the driver's keys); `ipv6` is whether
/// the network is dual-stack (which bounds the MTU).
pub fn parse(
    options: &BTreeMap<String, String>,
    accepted: &[&str],
    ipv6: bool,
) -> Result<NetworkOptions> {
    let mut parsed = NetworkOptions::default();
    for (key, value) in options {
        if !accepted.contains(&key.as_str()) {
            return Err(XnetError::invalid(format!(
                "unsupported network option {key:?} (supported: {})",
                accepted.join(", ")
            )));
        }
        match key.as_str() {
            OPT_ICC => {
                parsed.icc = value.parse().map_err(|_| {
                    XnetError::invalid(format!(
                        "invalid {OPT_ICC}={value:?}: expected true or false"
                    ))
                })?;
            }
            OPT_MTU => parsed.mtu = Some(parse_mtu(value, ipv6)?),
            OPT_VXLANID => {
                let vni = value.parse().ok().filter(|v| (1..=VNI_MAX).contains(v));
                parsed.vni = Some(vni.ok_or_else(|| {
                    XnetError::invalid(format!(
                        "invalid {OPT_VXLANID}={value:?}: expected one VXLAN id from 1 to {VNI_MAX}"
                    ))
                })?);
            }
            // Its presence is its meaning (`is_encrypted`): any value is taken.
            OPT_ENCRYPTED => {}
            // A LAN network's: checked by its driver (`drivers::lan`), which knows the values.
            OPT_PARENT | OPT_MACVLAN_MODE | OPT_IPVLAN_MODE | OPT_IPVLAN_FLAG | OPT_HOST_ACCESS => {
            }
            _ => unreachable!("every accepted key has a rule above"),
        }
    }
    Ok(parsed)
}

fn parse_mtu(value: &str, ipv6: bool) -> Result<u32> {
    let mtu: u32 = value
        .parse()
        .ok()
        .filter(|m| (68..=65535).contains(m))
        .ok_or_else(|| {
            XnetError::invalid(format!(
                "invalid {OPT_MTU}={value:?}: expected a number from 68 to 65535"
            ))
        })?;
    if ipv6 && mtu < IPV6_MIN_MTU {
        return Err(XnetError::invalid(format!(
            "{OPT_MTU}={mtu} is too small for --ipv6 (IPv6 needs {IPV6_MIN_MTU})"
        )));
    }
    Ok(mtu)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `-o` options from pairs.
    pub(crate) fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const BOTH: &[&str] = &[OPT_ICC, OPT_MTU];

    #[test]
    fn options_are_parsed_and_unknown_ones_refused() {
        let o = parse(&opts(&[]), BOTH, false).unwrap();
        assert!(o.icc && o.mtu.is_none());
        let o = parse(&opts(&[(OPT_ICC, "false"), (OPT_MTU, "1400")]), BOTH, false).unwrap();
        assert!(!o.icc);
        assert_eq!(o.mtu, Some(1400));
        for bad in [
            (OPT_ICC, "no"),
            (OPT_MTU, "10"),
            (OPT_MTU, "big"),
            ("com.docker.network.bridge.name", "br0"),
        ] {
            assert!(
                parse(&opts(&[bad]), BOTH, false).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn encrypted_counts_by_its_presence_as_in_docker() {
        let keys = &[OPT_MTU, OPT_VXLANID, OPT_ENCRYPTED];
        assert!(!is_encrypted(&opts(&[])));
        for value in ["", "true", "false"] {
            let options = opts(&[(OPT_ENCRYPTED, value)]);
            parse(&options, keys, false).unwrap();
            assert!(is_encrypted(&options), "{value:?}");
        }
        // A bridge network does not take it.
        assert!(parse(&opts(&[(OPT_ENCRYPTED, "")]), &[OPT_MTU], false).is_err());
    }

    #[test]
    fn an_overlay_takes_one_vxlan_id() {
        let keys = &[OPT_MTU, OPT_VXLANID];
        let o = parse(&opts(&[(OPT_VXLANID, "4097")]), keys, false).unwrap();
        assert_eq!(o.vni, Some(4097));
        for bad in ["0", "16777216", "4097,4098", "x"] {
            assert!(
                parse(&opts(&[(OPT_VXLANID, bad)]), keys, false).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_driver_takes_only_its_keys_and_ipv6_bounds_the_mtu() {
        let err = parse(&opts(&[(OPT_ICC, "true")]), &[OPT_MTU], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unsupported network option {OPT_ICC:?} (supported: {OPT_MTU})")
        );
        assert!(parse(&opts(&[(OPT_MTU, "1000")]), BOTH, false).is_ok());
        let err = parse(&opts(&[(OPT_MTU, "1000")]), BOTH, true).unwrap_err();
        assert!(err.to_string().contains("too small for --ipv6"), "{err}");
    }
}
