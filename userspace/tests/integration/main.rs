//! Integration tests: real xnetd daemons in namespaces of their own, driven through the `xnet`
//! CLI as a user would, with real ping and iperf3 traffic. Needs root: without it, the tests
//! skip (`skipped: needs root`). The Docker tests are in `tests/docker/`.

mod aliases;
mod bridge;
mod cni;
mod common;
mod crash;
mod dns;
mod egress;
mod errors;
mod ipv6;
mod lan;
mod lifecycle;
mod logging;
mod metrics;
mod monitor;
mod networks;
mod ports;
mod publish;
