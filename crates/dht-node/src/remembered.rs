//! The members a node remembers across restarts (docs/protocol.md, "Rejoin after a
//! restart"): the addresses of itself, its predecessor, its successor list and its passive list
//! (members presumed dead, still probed for ring unification), kept in a file in the data
//! directory. A node restarted with its data but without `--bootstrap` uses them
//! as its bootstrap list, so it finds its ring again instead of serving a ring of its own
//! (dhtd's `--new-ring` starts a new ring from old data on purpose).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::warn;

use crate::node::Node;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "members";

/// The remembered addresses in `path`, one per line; none when the file does not exist.
pub fn load(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Where the list goes, and what was written last (so an unchanged ring costs no write).
pub(crate) struct Remembered {
    path: Option<PathBuf>,
    written: Mutex<Vec<String>>,
}

impl Remembered {
    pub(crate) fn new(path: Option<PathBuf>) -> Remembered {
        Remembered {
            path,
            written: Mutex::default(),
        }
    }
}

impl Node {
    /// Writes the current members to the data directory if they changed: this node, its
    /// predecessor, its successor list and its passive list, in that order. Written to a temporary file and
    /// renamed, so a crash leaves the old list or the new one, never half of one.
    pub(crate) fn remember_members(&self) {
        let Some(path) = &self.remembered.path else {
            return;
        };
        if !self.life.is_serving() {
            return;
        }
        let addrs: Vec<String> = {
            let st = self.state();
            let mut v = vec![st.me().addr.to_string()];
            let passive = st.passive().iter().map(|e| &e.peer);
            for p in st
                .predecessor()
                .into_iter()
                .chain(st.successors())
                .chain(passive)
            {
                if !v.iter().any(|a| **a == *p.addr) {
                    v.push(p.addr.to_string());
                }
            }
            v
        };
        // Alone: nothing worth remembering beyond what is already there.
        if addrs.len() < 2 {
            return;
        }
        let mut written = self
            .remembered
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *written == addrs {
            return;
        }
        let tmp = path.with_extension("tmp");
        let text = format!(
            "# members of this node's ring, kept by dhtd: used as the bootstrap list when it\n# starts without one (dhtd --new-ring ignores them)\n{}\n",
            addrs.join("\n")
        );
        match std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
            Ok(()) => *written = addrs,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot remember the ring's members")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reads_addresses_and_skips_comments_and_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        assert!(load(&p).unwrap().is_empty(), "no file: nothing remembered");
        std::fs::write(&p, "# c\n10.0.0.1:5000\n\n 10.0.0.2:5000 \n").unwrap();
        assert_eq!(load(&p).unwrap(), vec!["10.0.0.1:5000", "10.0.0.2:5000"]);
    }
}
