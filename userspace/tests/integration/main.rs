//! Integration tests: real xnetd daemons in namespaces of their own, driven through the `xnet`
//! CLI as a user would, with real ping and iperf3 traffic. Needs root.

mod aliases;
mod bridge;
mod common;
mod crash;
mod docker;
mod egress;
mod errors;
mod ipv6;
mod lifecycle;
mod logging;
mod networks;
mod ports;
mod publish;
