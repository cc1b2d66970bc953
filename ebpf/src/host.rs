//! Entry points on the host's own sockets: `connect`, `sendmsg` and `recvmsg` hooks on the root
//! cgroup. A socket of the host that connects (or sends datagrams) to a published port on
//! 127.0.0.1 or on the host's address gets the container's address instead, before routing:
//! no userland proxy, no NAT on the packets, and the container sees the host as the client.
//! Datagram replies read from such a socket, and its peer address, show the address it asked
//! for.
//!
//! The hooks see every socket of the machine; each acts only on sockets in its daemon's network
//! namespace (several daemons, one per simulated host, share a machine in tests).

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_ANY,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock_addr,
    programs::SockAddrContext,
};
use xnet_common::{SockAddrV4, SockRevKey};

use crate::{
    dnat,
    maps::{self, HOST_NETNS, SOCK_REVNAT},
};

/// The verdict that lets the syscall go on (these hooks only rewrite, never refuse).
const PROCEED: i32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn host_connect4(ctx: SockAddrContext) -> i32 {
    to_published(&ctx);
    PROCEED
}

#[cgroup_sock_addr(sendmsg4)]
pub fn host_sendmsg4(ctx: SockAddrContext) -> i32 {
    to_published(&ctx);
    PROCEED
}

#[cgroup_sock_addr(recvmsg4)]
pub fn host_recvmsg4(ctx: SockAddrContext) -> i32 {
    to_asked(&ctx);
    PROCEED
}

#[cgroup_sock_addr(getpeername4)]
pub fn host_getpeername4(ctx: SockAddrContext) -> i32 {
    to_asked(&ctx);
    PROCEED
}

/// Shows the address the socket asked for where the kernel would show the container's: the
/// source of a datagram read (`recvmsg`), the peer of a connected socket (`getpeername`).
#[inline(always)]
fn to_asked(ctx: &SockAddrContext) {
    if ours(ctx) {
        // SAFETY: the context pointer the kernel passed; these fields are readable and writable
        // in recvmsg4 and getpeername4.
        unsafe {
            let sa = ctx.sock_addr;
            let key = SockRevKey {
                cookie: bpf_get_socket_cookie(ctx.as_ptr()),
                container: SockAddrV4 {
                    addr: (*sa).user_ip4.to_ne_bytes(),
                    port: ((*sa).user_port as u16).to_ne_bytes(),
                    _pad: [0; 2],
                },
            };
            if let Some(asked) = SOCK_REVNAT.get(key) {
                (*sa).user_ip4 = u32::from_ne_bytes(asked.addr);
                (*sa).user_port = u32::from(u16::from_ne_bytes(asked.port));
            }
        }
    }
}

/// Whether the socket lives in this daemon's network namespace.
#[inline(always)]
fn ours(ctx: &SockAddrContext) -> bool {
    let Some(&host) = HOST_NETNS.get(0) else {
        return false;
    };
    // SAFETY: plain helper call on the context pointer.
    host != 0 && unsafe { bpf_get_netns_cookie(ctx.as_ptr()) } == host
}

/// Rewrites a destination that is a published port of the host into the container's address
/// and port, and remembers the pair for the socket's replies.
#[inline(always)]
fn to_published(ctx: &SockAddrContext) {
    if !ours(ctx) {
        return;
    }
    // SAFETY: the context pointer the kernel passed; the destination fields are readable and
    // writable in connect4 and sendmsg4.
    unsafe {
        let sa = ctx.sock_addr;
        let asked = SockAddrV4 {
            addr: (*sa).user_ip4.to_ne_bytes(),
            port: ((*sa).user_port as u16).to_ne_bytes(),
            _pad: [0; 2],
        };
        // Mappings bound to every address answer on loopback and on the uplink's address.
        let any_address =
            asked.addr[0] == 127 || maps::uplink().is_some_and(|uplink| uplink.ipv4 == asked.addr);
        let Some(published) =
            dnat::lookup((*sa).protocol as u8, asked.addr, asked.port, any_address)
        else {
            return;
        };
        let container = SockAddrV4 {
            addr: published.container_ip,
            port: dnat::container_port(&published, asked.port),
            _pad: [0; 2],
        };
        (*sa).user_ip4 = u32::from_ne_bytes(container.addr);
        (*sa).user_port = u32::from(u16::from_ne_bytes(container.port));
        let key = SockRevKey {
            cookie: bpf_get_socket_cookie(ctx.as_ptr()),
            container,
        };
        let _ = SOCK_REVNAT.insert(key, asked, u64::from(BPF_ANY));
    }
}
