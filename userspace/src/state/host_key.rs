//! This host's static key pair for encrypted overlays (issue #14): an X25519 key pair, the
//! curve of WireGuard's handshake, made on the first start of a cluster member and kept in
//! the state directory (`host.key`, mode 0600, the private key in standard base64 as
//! WireGuard's tools write it). The private key never leaves the file; the public key goes
//! into the host's record in the cluster store, next to its advertise address, for the other
//! hosts' peers.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use anyhow::{Context as _, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use x25519_dalek::{PublicKey, StaticSecret};

/// The file, in the state directory.
pub const HOST_KEY_FILE: &str = "host.key";

pub struct HostKey {
    secret: StaticSecret,
}

impl HostKey {
    /// The key pair kept in `state_dir`, made (and kept) on first use. A file that is not a
    /// key, or that others may read, is refused with a message naming it: the key is never
    /// silently replaced.
    pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Self> {
        let path = state_dir.join(HOST_KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mode = fs::metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    bail!(
                        "{} holds this host's private key but others may read it (mode {:o}): \
                         chmod 600 it",
                        path.display(),
                        mode & 0o777
                    );
                }
                Self::parse(text.trim())
                    .with_context(|| format!("{} is not a private key", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The public key, in standard base64 (44 characters), as WireGuard shows keys.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(PublicKey::from(&self.secret).as_bytes())
    }

    /// The private key, for this process's encryption worker.
    pub fn secret(&self) -> StaticSecret {
        self.secret.clone()
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = STANDARD
            .decode(text)
            .context("not base64")?
            .try_into()
            .map_err(|b: Vec<u8>| anyhow::anyhow!("{} bytes, not 32", b.len()))?;
        Ok(Self {
            secret: StaticSecret::from(bytes),
        })
    }

    /// A new key pair, written to `path` whole or not at all (a temporary file of mode 0600,
    /// synced, renamed into place).
    fn create(path: &Path) -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("drawing a private key: {e}"))?;
        let key = Self {
            secret: StaticSecret::from(bytes),
        };
        let tmp = path.with_extension("key.tmp");
        let _ = fs::remove_file(&tmp);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        writeln!(file, "{}", STANDARD.encode(key.secret.as_bytes()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("creating {}", path.display()))?;
        Ok(key)
    }
}

/// A public key as [`HostKey::public_base64`] writes it; `None` if `text` is not one.
pub fn parse_public(text: &str) -> Option<PublicKey> {
    let bytes: [u8; 32] = STANDARD.decode(text).ok()?.try_into().ok()?;
    Some(PublicKey::from(bytes))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A fresh state directory of this test process.
    fn state_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xnet-key-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_is_made_once_readable_by_its_owner_only_and_kept() {
        let (one, two) = (state_dir("one"), state_dir("two"));
        let first = HostKey::load_or_create(&one).unwrap();
        let path = one.join(HOST_KEY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = HostKey::load_or_create(&one).unwrap();
        assert_eq!(first.public_base64(), again.public_base64(), "the same key");
        assert_eq!(first.public_base64().len(), 44);
        let private = fs::read_to_string(&path).unwrap();
        assert_ne!(private.trim(), first.public_base64());
        let other = HostKey::load_or_create(&two).unwrap();
        assert_ne!(
            first.public_base64(),
            other.public_base64(),
            "each host its own"
        );
        for dir in [one, two] {
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn a_broken_or_readable_key_file_is_refused_naming_it() {
        let (broken, readable) = (state_dir("broken"), state_dir("readable"));
        let path = broken.join(HOST_KEY_FILE);
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = format!("{:#}", HostKey::load_or_create(&broken).err().unwrap());
        assert!(err.contains("host.key is not a private key"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "not a key\n",
            "left alone"
        );
        HostKey::load_or_create(&readable).unwrap();
        let key = readable.join(HOST_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", HostKey::load_or_create(&readable).err().unwrap());
        assert!(err.contains("others may read it (mode 644)"), "{err}");
        for dir in [broken, readable] {
            fs::remove_dir_all(dir).unwrap();
        }
    }
}
