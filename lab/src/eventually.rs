//! Waiting for what a lab (or any test host) does in the background: a daemon that takes a
//! moment to listen, a change that reaches the other hosts through the store.

use std::{
    thread,
    time::{Duration, Instant},
};

/// Retries `check` every 100 ms for up to `timeout`; whether it ever held.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}
