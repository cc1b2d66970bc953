//! Persistence: the state is one JSON file, replaced atomically (write, fsync, rename) so a
//! crash leaves either the old or the new document, never half of one.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::model::State;

pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join("state.json"),
        }
    }

    /// The persisted state, or an empty one on first start.
    pub fn load(&self) -> anyhow::Result<State> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("parsing {}", self.path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.path.display())),
        }
    }

    pub fn save(&self, state: &State) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut file =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(&serde_json::to_vec_pretty(state)?)?;
        file.sync_all()?;
        fs::rename(&tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_state_and_save_round_trips() {
        let dir = std::env::temp_dir().join(format!("xnet-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let store = Store::new(&dir);
        assert!(store.load().unwrap().networks.is_empty());
        let state = State {
            next_network_id: 7,
            ..State::default()
        };
        store.save(&state).unwrap();
        assert_eq!(store.load().unwrap().next_network_id, 7);
        fs::remove_dir_all(&dir).unwrap();
    }
}
