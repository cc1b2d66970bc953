//! The result of a step that runs as a BPF-to-BPF call rather than inlined (to give it a stack
//! frame of its own), packed into one register. A call returns a single scalar: a Rust
//! `Result` would come back through a pointer into the caller's stack, and the verifier
//! refuses programs whose subprograms leave a stack pointer in the return register.

use aya_ebpf::bindings::TC_ACT_SHOT;
use xnet_common::DropReason;

const KIND_VERDICT: u64 = 0;
const KIND_DROP: u64 = 1;
const KIND_CONTINUE: u64 = 2;

/// `Ok(Some(verdict))`: the step decided the frame's fate; `Ok(None)`: the caller goes on;
/// `Err(reason)`: drop.
#[repr(transparent)]
pub struct Outcome(u64);

impl Outcome {
    #[inline(always)]
    pub fn pack(result: Result<Option<i32>, DropReason>) -> Self {
        Self(match result {
            Ok(Some(verdict)) => KIND_VERDICT << 32 | u64::from(verdict as u32),
            Ok(None) => KIND_CONTINUE << 32,
            Err(reason) => KIND_DROP << 32 | reason as u64,
        })
    }

    #[inline(always)]
    pub fn unpack(self) -> Result<Option<i32>, DropReason> {
        let value = self.0 as u32;
        match self.0 >> 32 {
            KIND_VERDICT => Ok(Some(value as i32)),
            KIND_CONTINUE => Ok(None),
            // Only `pack` makes these, from a real reason; the fallback is never taken.
            _ => Err(*DropReason::ALL
                .get(value as usize)
                .unwrap_or(&DropReason::UnknownEndpoint)),
        }
    }

    /// For steps that always decide; a "go on" would be a bug, and fails closed.
    #[inline(always)]
    pub fn verdict(self) -> Result<i32, DropReason> {
        Ok(self.unpack()?.unwrap_or(TC_ACT_SHOT))
    }
}
