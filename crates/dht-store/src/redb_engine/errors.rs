//! Every redb error becomes a [`StoreError`] here, and only here, chosen by what the operator
//! can do about it: a lock held elsewhere, a damaged file, or an I/O failure; each names the
//! database file.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::StoreError;

pub fn map(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let path_s = path.display().to_string();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked { path: path_s },
        redb::Error::Corrupted(detail) => StoreError::Corrupt {
            path: path_s,
            detail,
        },
        redb::Error::UpgradeRequired(v) => StoreError::Corrupt {
            path: path_s,
            detail: format!("file format {v} is too old for this build; upgrade it first"),
        },
        redb::Error::Io(source) => StoreError::Io {
            path: path_s,
            source,
        },
        redb::Error::PreviousIo => StoreError::Io {
            path: path_s,
            source: io::Error::other(
                "an earlier I/O error left the database unusable; restart the node",
            ),
        },
        other => StoreError::Backend(format!("{path_s}: {other}")),
    }
}

/// An undecodable key or record read from the file.
pub fn corrupt(path: &Path, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// A copy of `e` for each caller of a group commit that failed as a whole (`io::Error` is not
/// `Clone`, so the I/O source is rebuilt from its kind and message).
pub fn duplicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io { path, source } => StoreError::Io {
            path: path.clone(),
            source: io::Error::new(source.kind(), source.to_string()),
        },
        StoreError::Backend(m) => StoreError::Backend(m.clone()),
        StoreError::Locked { path } => StoreError::Locked { path: path.clone() },
        StoreError::Corrupt { path, detail } => StoreError::Corrupt {
            path: path.clone(),
            detail: detail.clone(),
        },
    }
}

/// Runs `f`, turning a panic inside redb into [`StoreError::Corrupt`]. redb trusts the pages
/// of a cleanly closed file (it verifies checksums only when recovering from a crash), and
/// some damaged files trip its assertions instead of returning an error; a node must report
/// that, not die. The panic message is still printed by the panic hook.
pub fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        Err(corrupt(
            path,
            format!("the storage engine failed on the file: {what}"),
        ))
    })
}
