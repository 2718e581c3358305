//! A large manifest, stored compressed: zlib-deflated, then base64-encoded, because a
//! SafeTensors header's metadata holds strings only.
//!
//! A unit selection's manifest records every scored unit (tens of thousands on a small
//! transformer), megabytes of JSON that repeat the same keys and paths; deflate shrinks it
//! about eightfold (`docs/performance.md`). A manifest of at most [`COMPRESS_ABOVE`] bytes is
//! stored as it is, readable by any SafeTensors tool.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// A manifest longer than this many bytes is stored compressed, under
/// [`MANIFEST_DEFLATE_KEY`](super::MANIFEST_DEFLATE_KEY); a shorter one as plain JSON, under
/// [`MANIFEST_KEY`](super::MANIFEST_KEY).
pub const COMPRESS_ABOVE: usize = 64 * 1024;

/// The largest manifest a compressed entry may inflate to, in bytes: a damaged or hostile
/// entry cannot make a reader inflate more (its buffer may grow to about twice this while
/// reading). A million scored units take about 230 MB; the writer refuses a longer manifest.
pub(crate) const MAX_INFLATED_LEN: u64 = 1 << 30;

/// `text`, zlib-deflated (level 6) and base64-encoded.
pub(crate) fn deflate(text: &str) -> String {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(text.as_bytes())
        .expect("writing into a Vec cannot fail");
    let packed = encoder.finish().expect("writing into a Vec cannot fail");
    STANDARD.encode(packed)
}

/// The text [`deflate`] packed into `stored`, or why it cannot be read back: not base64, not
/// a complete zlib stream (its own Adler-32 check included), longer than `limit` bytes once
/// inflated, or not UTF-8.
pub(crate) fn inflate(stored: &str, limit: u64) -> Result<String, String> {
    let packed = STANDARD
        .decode(stored)
        .map_err(|e| format!("its compressed manifest is not base64: {e}"))?;
    let mut text = Vec::new();
    ZlibDecoder::new(packed.as_slice())
        .take(limit + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("its compressed manifest does not inflate: {e}"))?;
    if text.len() as u64 > limit {
        return Err(format!(
            "its compressed manifest inflates to more than {limit} bytes"
        ));
    }
    String::from_utf8(text).map_err(|e| format!("its compressed manifest is not UTF-8: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON-like text that does not compress to nothing: seeded pseudo-random numbers.
    fn manifest(len: usize) -> String {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut text = String::from("[");
        while text.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(&format!(
                r#"{{"name":"layers.{}.w","b":{:e}}},"#,
                state % 6,
                (state >> 11) as f64 / 9.0e15
            ));
        }
        text.push(']');
        text
    }

    #[test]
    fn round_trip_is_exact_and_smaller() {
        for text in ["", "{}", "é ∑ 𝔸", &manifest(200_000)] {
            let stored = deflate(text);
            assert_eq!(inflate(&stored, MAX_INFLATED_LEN).unwrap(), text);
            if text.len() > 1000 {
                assert!(
                    stored.len() < text.len() / 2,
                    "{} -> {}",
                    text.len(),
                    stored.len()
                );
            }
        }
    }

    #[test]
    fn damage_and_bombs_are_refused() {
        let text = manifest(5_000);
        let stored = deflate(&text);
        // Not base64.
        let not = format!("{}!", &stored[..stored.len() - 1]);
        assert!(
            inflate(&not, MAX_INFLATED_LEN)
                .unwrap_err()
                .contains("base64")
        );
        // A zlib stream cut short (whole base64 quanta dropped, so it still decodes).
        let cut = &stored[..stored.len() / 8 * 4];
        assert!(
            inflate(cut, MAX_INFLATED_LEN)
                .unwrap_err()
                .contains("inflate")
        );
        // A changed byte inside the stream: the zlib check or the inflater refuses it.
        let mut packed = STANDARD.decode(&stored).unwrap();
        let at = packed.len() / 2;
        packed[at] ^= 0x10;
        let changed = STANDARD.encode(&packed);
        assert!(inflate(&changed, MAX_INFLATED_LEN).is_err());
        // Inflating past the limit stops at the limit.
        let big = deflate(&"0".repeat(10_000));
        assert!(big.len() < 200);
        assert!(inflate(&big, 9_999).unwrap_err().contains("more than 9999"));
        assert_eq!(inflate(&big, 10_000).unwrap().len(), 10_000);
        // Bytes that are not UTF-8.
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&[0xff, 0xfe]).unwrap();
        let bytes = STANDARD.encode(encoder.finish().unwrap());
        assert!(
            inflate(&bytes, MAX_INFLATED_LEN)
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
