//! Tests of the commands' pure parts.

use super::*;

fn bindings(pairs: &[(&str, &str, &str)]) -> PortMap {
    let mut map = PortMap::new();
    for (key, ip, port) in pairs {
        map.entry(key.to_string()).or_default().push(PortBinding {
            host_ip: ip.to_string(),
            host_port: port.to_string(),
        });
    }
    map
}

#[test]
fn port_lines_are_dockers_sorted_by_number() {
    let map = bindings(&[
        ("10000/tcp", "0.0.0.0", "10000"),
        ("80/udp", "0.0.0.0", "8080"),
        ("80/tcp", "127.0.0.1", "8080"),
        ("80/tcp", "0.0.0.0", "9090"),
    ]);
    assert_eq!(
        port_lines(&map, None).unwrap(),
        [
            "80/tcp -> 127.0.0.1:8080",
            "80/tcp -> 0.0.0.0:9090",
            "80/udp -> 0.0.0.0:8080",
            "10000/tcp -> 0.0.0.0:10000"
        ]
    );
    assert_eq!(
        port_lines(&map, Some("80")).unwrap(),
        ["127.0.0.1:8080", "0.0.0.0:9090"]
    );
    assert_eq!(port_lines(&map, Some("80/UDP")).unwrap(), ["0.0.0.0:8080"]);
    assert_eq!(port_lines(&map, Some("81")).unwrap_err(), "81/tcp");
}

#[test]
fn ipv6_host_addresses_are_shown_in_brackets() {
    let map = bindings(&[
        ("80/tcp", "0.0.0.0", "8080"),
        ("80/tcp", "::", "8080"),
        ("90/tcp", "::1", "9090"),
    ]);
    assert_eq!(
        port_lines(&map, None).unwrap(),
        [
            "80/tcp -> 0.0.0.0:8080",
            "80/tcp -> [::]:8080",
            "90/tcp -> [::1]:9090"
        ]
    );
}

#[test]
fn expose_is_publishing_on_localhost() {
    assert_eq!(expose_spec("8080:80/udp").unwrap(), "127.0.0.1:8080:80/udp");
    for bad in ["80", "1.2.3.4:8080:80"] {
        assert!(expose_spec(bad).is_err(), "{bad}");
    }
}
