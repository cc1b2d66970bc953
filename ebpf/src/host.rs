//! Entry points on the host's own sockets: `connect`, `sendmsg`, `recvmsg` and `getpeername`
//! hooks on the root cgroup, for IPv4 and IPv6 sockets. Connecting or sending to a published
//! port of the host gives the socket the container's address instead; what it reads back shows
//! the address it asked for ([`sock_dnat`]).

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use crate::{
    packet::{V4, V6},
    sock_dnat,
};

/// The verdict that lets the syscall go on (these hooks only rewrite, never refuse).
const PROCEED: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn host_connect4(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_published::<V4>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(sendmsg4)]
pub fn host_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_published::<V4>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(recvmsg4)]
pub fn host_recvmsg4(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_asked::<V4>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(getpeername4)]
pub fn host_getpeername4(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_asked::<V4>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(connect6)]
pub fn host_connect6(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_published::<V6>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(sendmsg6)]
pub fn host_sendmsg6(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_published::<V6>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(recvmsg6)]
pub fn host_recvmsg6(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_asked::<V6>(&ctx);
    PROCEED
}

#[cgroup_sock_addr(getpeername6)]
pub fn host_getpeername6(ctx: SockAddrContext) -> i32 {
    sock_dnat::to_asked::<V6>(&ctx);
    PROCEED
}
