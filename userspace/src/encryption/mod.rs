//! Encrypted overlays (`--opt encrypted`, issue #14): the encryption worker.
//!
//! The datapath encapsulates an encrypted network's frame for another host exactly as a
//! plain one's (VXLAN in IPv4 and UDP), then hands it to the worker's TAP device instead of
//! the underlay (`ENCRYPTION_PEERS`). The worker reads it there, seals the outer IPv4 packet
//! with WireGuard (boringtun: Noise handshakes, a new key every two minutes, replay
//! protection) for the host it is addressed to, and sends it over UDP to that host's worker.
//! That worker opens it, checks that the host whose key sealed it is the packet's source, and
//! writes it into its own TAP device, where `decrypted_ingress` checks it as VXLAN from the
//! underlay and delivers it.
//!
//! The TAP device itself is OS plumbing (`os::tap`: multi-queue, NAPI, non-blocking); the
//! daemon makes it and attaches the datapath's programs to it (`daemon::cluster`).
//!
//! - [`peers`]: the other hosts, one WireGuard session each, keyed by underlay address;
//! - [`worker`]: the threads (seal, open, timers) and their counters.

pub mod peers;
pub mod worker;

pub use worker::{Counters, Device, EncryptionWorker};
