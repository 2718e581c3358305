//! Integrity of what adapeft writes to disk: one checksum format and one error type for
//! adapter files ([`save_tensors`](crate::save_tensors)) and checkpoints
//! (`adapeft_optim::checkpoint::save_checkpoint`).
//!
//! A checksum is written as `xxh3-64:<16 lower-case hex digits>`: the algorithm's name, a
//! colon, and the XXH3-64 hash of the bytes ([`checksum`]). XXH3 is not a cryptographic
//! hash: it guards against damage (a flipped bit, a truncated copy, an overwritten block),
//! not against someone who edits a file and its checksums together.
//!
//! What is hashed is the format's business:
//!
//! - an **adapter file** (safetensors) records, in its header metadata under
//!   [`INTEGRITY_KEY`](crate::INTEGRITY_KEY), a [`Checksums`] record: the checksum of the
//!   manifest and of each stored tensor's bytes;
//! - a **checkpoint** records, in `checkpoint.json`, the length and checksum of each data
//!   file, and the checksum of the manifest's own body.
//!
//! Both formats say in a version field whether checksums are recorded; a file whose version
//! says so but whose checksums are missing or unreadable is refused ([`IntegrityError::Missing`],
//! [`IntegrityError::Corrupt`]) rather than loaded unverified. Only a file that an older build
//! wrote before checksums existed loads unverified; how such a file is recognised is
//! documented with each format (see [`load_tensors`](crate::load_tensors)).
//!
//! Every failed check is an [`IntegrityError`], which `StoreError` and `CheckpointError` both
//! carry as their `Integrity` variant: one `match` arm catches a damaged file of either kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The checksum algorithm's name, the prefix of every checksum (`xxh3-64:`).
pub const CHECKSUM_ALGORITHM: &str = "xxh3-64";

/// The checksum of `bytes`: `xxh3-64:` and 16 lower-case hex digits.
///
/// ```
/// use adapeft_selection::integrity::checksum;
///
/// let sum = checksum(b"adapeft");
/// assert!(sum.starts_with("xxh3-64:"));
/// assert_eq!(sum.len(), "xxh3-64:".len() + 16);
/// assert_ne!(sum, checksum(b"adapefT"));
/// ```
pub fn checksum(bytes: &[u8]) -> String {
    format!("{CHECKSUM_ALGORITHM}:{:016x}", xxh3_64(bytes))
}

/// Whether `text` is a checksum in the one format [`checksum`] writes.
pub fn is_checksum(text: &str) -> bool {
    text.strip_prefix(CHECKSUM_ALGORITHM)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|hex| {
            hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
}

/// Checks `bytes` (the item `item` of `file`) against the recorded checksum `expected`.
///
/// # Errors
///
/// [`IntegrityError::Mismatch`] naming `file` and `item` if the checksums differ.
pub fn verify(file: &Path, item: &str, bytes: &[u8], expected: &str) -> Result<(), IntegrityError> {
    let found = checksum(bytes);
    if found == expected {
        Ok(())
    } else {
        Err(IntegrityError::Mismatch {
            file: file.to_path_buf(),
            item: item.to_string(),
            expected: expected.to_string(),
            found,
        })
    }
}

/// Checks the whole content of `file` against its recorded length and checksum (a data file of
/// a checkpoint). The length is checked first, so a truncated or extended copy says so.
///
/// # Errors
///
/// [`IntegrityError::Corrupt`] for another length, [`IntegrityError::Mismatch`] for another
/// checksum.
pub fn verify_file(
    file: &Path,
    bytes: &[u8],
    expected_len: u64,
    expected: &str,
) -> Result<(), IntegrityError> {
    if bytes.len() as u64 != expected_len {
        return Err(IntegrityError::Corrupt {
            file: file.to_path_buf(),
            reason: format!(
                "it has {} bytes, but {expected_len} were written",
                bytes.len()
            ),
        });
    }
    verify(file, "(whole file)", bytes, expected)
}

/// The checksums an adapter file records: its manifest's and each stored tensor's (a tensor's
/// bytes as SafeTensors stores them: little-endian, in its own dtype), by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checksums {
    /// The checksum of the manifest's UTF-8 bytes.
    pub manifest: String,
    /// The checksum of each stored tensor's bytes, by dotted path (a partially trained
    /// tensor's cell values under `<path>#cells`).
    pub tensors: BTreeMap<String, String>,
    /// The checksum of the cell layout's UTF-8 bytes (the metadata entry
    /// [`CELLS_KEY`](crate::CELLS_KEY)), in a file that stores cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<String>,
}

/// The record as the first adapeft builds with checksums wrote it: the algorithm named once,
/// bare hex digits.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyChecksums {
    algorithm: String,
    manifest: String,
    tensors: BTreeMap<String, String>,
}

impl Checksums {
    /// The record's JSON text, as stored in the file.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a checksum record always serialises")
    }

    /// Reads a record stored in `file`: the one format, or the first builds' form
    /// (`{"algorithm":"xxh3-64","manifest":"<hex>","tensors":{..}}`, read as the same
    /// checksums).
    ///
    /// # Errors
    ///
    /// [`IntegrityError::Corrupt`] naming `file` if the text is not such a record, or holds a
    /// checksum that is not in the one format.
    pub fn parse(file: &Path, text: &str) -> Result<Self, IntegrityError> {
        let corrupt = |reason: String| IntegrityError::Corrupt {
            file: file.to_path_buf(),
            reason,
        };
        let record = match serde_json::from_str::<Checksums>(text) {
            Ok(record) => record,
            Err(e) => {
                let legacy: LegacyChecksums = serde_json::from_str(text)
                    .map_err(|_| corrupt(format!("its checksum record is unreadable: {e}")))?;
                if legacy.algorithm != CHECKSUM_ALGORITHM {
                    return Err(corrupt(format!(
                        "its checksum record names the algorithm `{}`, not `{CHECKSUM_ALGORITHM}`",
                        legacy.algorithm
                    )));
                }
                let prefixed = |hex: String| format!("{CHECKSUM_ALGORITHM}:{hex}");
                Checksums {
                    manifest: prefixed(legacy.manifest),
                    tensors: legacy
                        .tensors
                        .into_iter()
                        .map(|(path, hex)| (path, prefixed(hex)))
                        .collect(),
                    cells: None,
                }
            }
        };
        let bad = std::iter::once(("(manifest)", &record.manifest))
            .chain(record.cells.iter().map(|s| ("(cells)", s)))
            .chain(record.tensors.iter().map(|(p, s)| (p.as_str(), s)))
            .find(|(_, sum)| !is_checksum(sum));
        if let Some((item, sum)) = bad {
            return Err(corrupt(format!(
                "its checksum record holds `{sum}` for `{item}`, not a `{CHECKSUM_ALGORITHM}:` checksum"
            )));
        }
        Ok(record)
    }
}

/// A file that fails its integrity check: it was damaged after it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// Bytes do not match the checksum recorded when the file was written.
    #[error(
        "`{}` is damaged: `{item}` has checksum {found}, but {expected} was recorded",
        file.display()
    )]
    Mismatch {
        /// The damaged file.
        file: PathBuf,
        /// What was checked: a tensor's path, `(manifest)`, or `(whole file)`.
        item: String,
        /// The checksum recorded at save time.
        expected: String,
        /// The checksum of the bytes now there.
        found: String,
    },

    /// The file's version says checksums are recorded, but there are none.
    #[error("`{}` is damaged: it has no checksums, {reason}", file.display())]
    Missing {
        /// The damaged file.
        file: PathBuf,
        /// Why the file must have them.
        reason: String,
    },

    /// The checksum record, or the file's structure it describes, does not add up (an
    /// unreadable record, a tensor missing or added, a length or an id that does not match).
    #[error("`{}` is damaged: {reason}", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// What does not add up.
        reason: String,
    },
}

impl IntegrityError {
    /// The damaged file.
    pub fn file(&self) -> &Path {
        match self {
            IntegrityError::Mismatch { file, .. }
            | IntegrityError::Missing { file, .. }
            | IntegrityError::Corrupt { file, .. } => file,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_format_and_the_first_builds_record_read_the_same() {
        let file = Path::new("a.safetensors");
        let record = Checksums {
            manifest: checksum(b"{}"),
            tensors: BTreeMap::from([("fc.weight".to_string(), checksum(b"\x01\x02"))]),
            cells: None,
        };
        assert_eq!(Checksums::parse(file, &record.to_json()).unwrap(), record);
        let legacy = format!(
            r#"{{"algorithm":"xxh3-64","manifest":"{:016x}","tensors":{{"fc.weight":"{:016x}"}}}}"#,
            xxh3_64(b"{}"),
            xxh3_64(b"\x01\x02")
        );
        assert_eq!(Checksums::parse(file, &legacy).unwrap(), record);
        let with_cells = Checksums {
            cells: Some(checksum(b"{}")),
            ..record
        };
        assert_eq!(
            Checksums::parse(file, &with_cells.to_json()).unwrap(),
            with_cells
        );
    }

    #[test]
    fn unreadable_records_are_corrupt() {
        let file = Path::new("a.safetensors");
        let good = checksum(b"x");
        for bad in [
            String::new(),
            "{}".to_string(),
            format!(r#"{{"manifest":"{good}","tensors":{{"w":"xxh3-64:123"}}}}"#),
            format!(r#"{{"manifest":"md5:{good}","tensors":{{}}}}"#),
            format!(r#"{{"manifest":"{good}","tensors":{{}},"extra":1}}"#),
            format!(r#"{{"manifest":"{good}","tensors":{{}},"cells":"xxh3-64:1"}}"#),
            r#"{"algorithm":"crc32","manifest":"00","tensors":{}}"#.to_string(),
        ] {
            match Checksums::parse(file, &bad) {
                Err(IntegrityError::Corrupt { file: f, .. }) => assert_eq!(f, file),
                other => panic!("{bad:?}: expected Corrupt, got {other:?}"),
            }
        }
    }

    #[test]
    fn verify_names_the_item_and_verify_file_checks_the_length_first() {
        let file = Path::new("f");
        assert!(verify(file, "w", b"abc", &checksum(b"abc")).is_ok());
        match verify(file, "w", b"abd", &checksum(b"abc")) {
            Err(IntegrityError::Mismatch { item, .. }) => assert_eq!(item, "w"),
            other => panic!("{other:?}"),
        }
        assert!(verify_file(file, b"abc", 3, &checksum(b"abc")).is_ok());
        assert!(matches!(
            verify_file(file, b"ab", 3, &checksum(b"abc")),
            Err(IntegrityError::Corrupt { .. })
        ));
        assert!(is_checksum(&checksum(b"")));
        assert!(!is_checksum("xxh3-64:ABCDEF0123456789"));
    }
}
