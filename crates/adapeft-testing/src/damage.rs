//! Seeded damage to a file's bytes, for the integrity tests of adapter files and checkpoints:
//! the kinds of damage a disk, a copy or a transfer does to a file.

use std::collections::BTreeMap;
use std::ops::Range;

use rand::Rng;
use rand::rngs::StdRng;

/// One kind of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Damage {
    /// Cut at a random point of the region (the copy is strictly shorter).
    Truncate,
    /// One bit flipped at a random byte of the region.
    FlipBit,
    /// 1 to 16 bytes from a random point of the region overwritten with random bytes.
    Overwrite,
    /// 1 to 63 random bytes appended to the file.
    Append,
    /// The whole file replaced by random bytes (up to twice its length).
    Replace,
}

impl Damage {
    /// Every kind, in a fixed order.
    pub const ALL: [Damage; 5] = [
        Damage::Truncate,
        Damage::FlipBit,
        Damage::Overwrite,
        Damage::Append,
        Damage::Replace,
    ];

    /// Whether every copy damaged this way must be refused: the file cannot be read back as
    /// it was, whatever the format (it is shorter, or not the file at all). A flipped bit or
    /// overwritten bytes may land where the format ignores them (JSON whitespace), and bytes
    /// appended after a complete file may be ignored by a reader, so those may also load, but
    /// then only with the original content.
    pub fn always_refused(self) -> bool {
        matches!(self, Damage::Truncate | Damage::Replace)
    }
}

/// A copy of `original` damaged by `kind`, within `region` (byte offsets of `original`;
/// ignored by [`Damage::Append`] and [`Damage::Replace`]). The copy may, rarely, equal the
/// original (overwriting bytes with the same bytes): callers skip those.
///
/// # Panics
/// If `region` is empty or extends past `original`.
pub fn damage(original: &[u8], region: Range<usize>, kind: Damage, rng: &mut StdRng) -> Vec<u8> {
    assert!(
        region.start < region.end && region.end <= original.len(),
        "bad region {region:?} for {} bytes",
        original.len()
    );
    let mut out = original.to_vec();
    match kind {
        Damage::Truncate => out.truncate(rng.random_range(region)),
        Damage::FlipBit => {
            let at = rng.random_range(region);
            out[at] ^= 1 << rng.random_range(0..8);
        }
        Damage::Overwrite => {
            let at = rng.random_range(region.clone());
            let n = rng.random_range(1..=16).min(region.end - at);
            for b in &mut out[at..at + n] {
                *b = rng.random();
            }
        }
        Damage::Append => {
            let n = rng.random_range(1..64);
            out.extend((0..n).map(|_| rng.random::<u8>()));
        }
        Damage::Replace => {
            let n = rng.random_range(0..2 * original.len());
            out = (0..n).map(|_| rng.random::<u8>()).collect();
        }
    }
    out
}

/// The start of a SafeTensors file's tensor data (after the 8-byte length and the JSON
/// header).
pub fn data_start(file: &[u8]) -> usize {
    8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize
}

/// The header of a SafeTensors file: its metadata and its tensor entries.
pub type Header = (
    BTreeMap<String, String>,
    BTreeMap<String, serde_json::Value>,
);

/// The header of the SafeTensors file `file` (its bytes).
pub fn header(file: &[u8]) -> Header {
    let mut entries: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&file[8..data_start(file)]).unwrap();
    let metadata = entries
        .remove("__metadata__")
        .map(|m| serde_json::from_value(m).unwrap())
        .unwrap_or_default();
    (metadata, entries)
}

/// `file` with its header replaced by `header`, keys in sorted order (the tensor data is
/// kept: its offsets are relative to the end of the header).
pub fn with_header(file: &[u8], (metadata, mut entries): Header) -> Vec<u8> {
    entries.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).unwrap(),
    );
    let mut text = serde_json::to_string(&entries).unwrap().into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let len = (text.len() as u64).to_le_bytes();
    [&len[..], &text, &file[data_start(file)..]].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn damage_stays_in_its_region_and_is_seeded() {
        let original: Vec<u8> = (0..=255).collect();
        let mut a = StdRng::seed_from_u64(1);
        let mut b = StdRng::seed_from_u64(1);
        for i in 0..500 {
            let kind = Damage::ALL[i % 5];
            let copy = damage(&original, 100..140, kind, &mut a);
            assert_eq!(copy, damage(&original, 100..140, kind, &mut b));
            match kind {
                Damage::Truncate => assert!((100..140).contains(&copy.len())),
                Damage::FlipBit | Damage::Overwrite => {
                    assert_eq!(copy.len(), original.len());
                    assert_eq!(copy[..100], original[..100]);
                    assert_eq!(copy[140..], original[140..]);
                }
                Damage::Append => {
                    assert!(copy.len() > original.len());
                    assert_eq!(copy[..256], original[..]);
                }
                Damage::Replace => assert!(copy.len() < 512),
            }
            if kind == Damage::FlipBit {
                let flipped: u32 = copy
                    .iter()
                    .zip(&original)
                    .map(|(x, y)| (x ^ y).count_ones())
                    .sum();
                assert_eq!(flipped, 1);
            }
        }
    }
}
