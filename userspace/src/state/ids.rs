//! Ids and timestamps of new objects, as Docker makes them.

use std::time::SystemTime;

/// A Docker-style 64-hex-digit id.
pub fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A random number below `n` (which must not be 0).
pub fn random_below(n: usize) -> anyhow::Result<usize> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("reading random bytes: {e}"))?;
    Ok((u64::from_le_bytes(bytes) % n as u64) as usize)
}

/// Now, in RFC 3339 (a record's `created`).
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_numbers_stay_below_their_bound() {
        assert!((0..100).all(|_| random_below(3).unwrap() < 3));
        assert_eq!(random_below(1).unwrap(), 0);
    }

    #[test]
    fn ids_are_64_hex_and_differ() {
        let a = random_id().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_id().unwrap());
    }
}
