//! The errors of the Chord rules: all of them are about malformed input from outside.

use crate::Id;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error("hash_size {0} is out of range: it must be between 1 and 160 bits")]
    HashSize(u32),
    #[error("identifier has {0} bytes; the wire form is exactly 20")]
    IdLength(usize),
    #[error("identifier {id} does not fit in a {bits}-bit identifier space")]
    IdOutOfRange { id: Id, bits: u32 },
    #[error("peer {addr} claims id {claimed} but its address hashes to {expected}")]
    IdMismatch {
        addr: String,
        claimed: Id,
        expected: Id,
    },
    #[error("successor list length {0} is out of range: it must be between 1 and 256")]
    SuccessorListLength(usize),
}
