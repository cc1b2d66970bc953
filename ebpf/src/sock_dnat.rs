//! Published ports for the host's own sockets, at the `host` hooks: a socket of the host that
//! connects (or sends datagrams) to a published port on loopback (127.0.0.1, [::1]) or on the
//! host's address gets the container's address instead, before routing: no userland proxy, no
//! NAT on the packets, and the container sees the host as the client. Datagram replies read
//! from such a socket, and its peer address, show the address it asked for. The mappings are
//! [`crate::dnat`]'s; what each socket asked for is remembered in `SOCK_REVNAT` and
//! `SOCK6_REVNAT`.
//!
//! The hooks see every socket of the machine; each acts only on sockets in its daemon's network
//! namespace (several daemons, one per simulated host, share a machine in tests).

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_ANY, bpf_sock_addr},
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    maps::LruHashMap,
    programs::SockAddrContext,
};
use xnet_common::{SockAddr, SockAddrV4, SockAddrV6, SockRevKey, SockRevKeyV4, SockRevKeyV6};

use crate::{
    dnat::{self, Publish},
    ipv6,
    maps::{self, HOST_NETNS, SOCK_REVNAT, SOCK6_REVNAT},
    packet::{Family, V4, V6},
};

/// Where the socket address of each family sits in the hooks' context, and its reverse map.
pub trait SockFamily: Publish {
    /// `SockRevKey`'s tail padding for this address width.
    type Tail: Copy + 'static;
    const TAIL: <Self as SockFamily>::Tail;

    /// The context's address (`user_ip4`, `user_ip6`).
    ///
    /// # Safety
    /// `sa` is the context pointer of a hook of this family.
    unsafe fn user_addr(sa: *const bpf_sock_addr) -> Self::Addr;
    /// # Safety
    /// As for `user_addr`, in a hook where the address is writable.
    unsafe fn set_user_addr(sa: *mut bpf_sock_addr, addr: Self::Addr);
    /// Loopback or the uplink's address: the host's addresses where mappings bound to every
    /// address answer.
    fn is_any_address_host(addr: &Self::Addr) -> bool;
    fn revnat() -> &'static RevNat<Self>;
}

/// The reverse map of family `F`: (socket, container address) -> the address it asked for.
type RevNat<F> = LruHashMap<
    SockRevKey<<F as Family>::Addr, <F as SockFamily>::Tail>,
    SockAddr<<F as Family>::Addr>,
>;

impl SockFamily for V4 {
    type Tail = [u8; 0];
    const TAIL: [u8; 0] = [];

    #[inline(always)]
    unsafe fn user_addr(sa: *const bpf_sock_addr) -> [u8; 4] {
        // SAFETY: the caller's promise.
        unsafe { (*sa).user_ip4.to_ne_bytes() }
    }

    #[inline(always)]
    unsafe fn set_user_addr(sa: *mut bpf_sock_addr, addr: [u8; 4]) {
        // SAFETY: the caller's promise.
        unsafe { (*sa).user_ip4 = u32::from_ne_bytes(addr) }
    }

    #[inline(always)]
    fn is_any_address_host(addr: &[u8; 4]) -> bool {
        V4::is_loopback(addr) || maps::uplink().is_some_and(|uplink| uplink.ipv4 == *addr)
    }

    #[inline(always)]
    fn revnat() -> &'static LruHashMap<SockRevKeyV4, SockAddrV4> {
        &SOCK_REVNAT
    }
}

impl SockFamily for V6 {
    type Tail = [u8; 4];
    const TAIL: [u8; 4] = [0; 4];

    /// Read and written one 32-bit word at a time, volatile: the verifier allows only 32-bit
    /// accesses to `user_ip6`, and the compiler must not merge them.
    #[inline(always)]
    unsafe fn user_addr(sa: *const bpf_sock_addr) -> [u8; 16] {
        let mut addr = [0; 16];
        let mut i = 0;
        while i < 4 {
            // SAFETY: the caller's promise; `i` is below 4.
            let word = unsafe { core::ptr::read_volatile(&(*sa).user_ip6[i]) };
            addr[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            i += 1;
        }
        addr
    }

    #[inline(always)]
    unsafe fn set_user_addr(sa: *mut bpf_sock_addr, addr: [u8; 16]) {
        let mut i = 0;
        while i < 4 {
            let word = u32::from_ne_bytes([
                addr[i * 4],
                addr[i * 4 + 1],
                addr[i * 4 + 2],
                addr[i * 4 + 3],
            ]);
            // SAFETY: the caller's promise; `i` is below 4.
            unsafe { core::ptr::write_volatile(&mut (*sa).user_ip6[i], word) };
            i += 1;
        }
    }

    #[inline(always)]
    fn is_any_address_host(addr: &[u8; 16]) -> bool {
        V6::is_loopback(addr)
            || maps::uplink().is_some_and(|uplink| {
                !ipv6::is_unspecified(&uplink.ipv6) && ipv6::same(&uplink.ipv6, addr)
            })
    }

    #[inline(always)]
    fn revnat() -> &'static LruHashMap<SockRevKeyV6, SockAddrV6> {
        &SOCK6_REVNAT
    }
}

/// The context's destination (or source, in recvmsg) address and port.
///
/// # Safety
/// `sa` is the context pointer of a hook of family `F`.
#[inline(always)]
unsafe fn user_sock_addr<F: SockFamily>(sa: *const bpf_sock_addr) -> SockAddr<F::Addr> {
    SockAddr {
        // SAFETY: the caller's promise.
        addr: unsafe { F::user_addr(sa) },
        // SAFETY: as above; `user_port` holds the port in network order in its low 16 bits.
        port: (unsafe { (*sa).user_port } as u16).to_ne_bytes(),
        _pad: [0; 2],
    }
}

/// # Safety
/// As for [`user_sock_addr`], in a hook where the address is writable.
#[inline(always)]
unsafe fn set_user_sock_addr<F: SockFamily>(sa: *mut bpf_sock_addr, to: &SockAddr<F::Addr>) {
    // SAFETY: the caller's promise.
    unsafe {
        F::set_user_addr(sa, to.addr);
        (*sa).user_port = u32::from(u16::from_ne_bytes(to.port));
    }
}

/// Shows the address the socket asked for where the kernel would show the container's: the
/// source of a datagram read (`recvmsg`), the peer of a connected socket (`getpeername`).
#[inline(always)]
pub fn to_asked<F: SockFamily>(ctx: &SockAddrContext) {
    if !ours(ctx) {
        return;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the context pointer the kernel passed, of a hook of family `F`; these fields
    // are readable and writable in recvmsg and getpeername.
    unsafe {
        let key = SockRevKey {
            cookie: bpf_get_socket_cookie(ctx.as_ptr()),
            container: user_sock_addr::<F>(sa),
            _tail: <F as SockFamily>::TAIL,
        };
        if let Some(asked) = F::revnat().get(key) {
            set_user_sock_addr::<F>(sa, asked);
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
pub fn to_published<F: SockFamily>(ctx: &SockAddrContext) {
    if !ours(ctx) {
        return;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the context pointer the kernel passed, of a hook of family `F`; the destination
    // fields are readable and writable in connect and sendmsg.
    unsafe {
        let asked = user_sock_addr::<F>(sa);
        // Mappings bound to every address answer on loopback and on the uplink's address.
        let any_address = F::is_any_address_host(&asked.addr);
        let proto = (*sa).protocol as u8;
        let Some(published) = dnat::lookup::<F>(proto, asked.addr, asked.port, any_address) else {
            return;
        };
        let container = SockAddr {
            addr: published.container_ip,
            port: dnat::container_port(&published, asked.port),
            _pad: [0; 2],
        };
        set_user_sock_addr::<F>(sa, &container);
        let key = SockRevKey {
            cookie: bpf_get_socket_cookie(ctx.as_ptr()),
            container,
            _tail: <F as SockFamily>::TAIL,
        };
        let _ = F::revnat().insert(key, asked, u64::from(BPF_ANY));
    }
}
