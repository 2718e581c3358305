//! Damaged adapter files: the checksums of `save_tensors` catch every change to the tensors or
//! the manifest, and no damage makes loading panic.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use adapeft_selection::{
    INTEGRITY_KEY, MANIFEST_KEY, StoreError, load_tensors, read_manifest, save_tensors,
};
use adapeft_testing::{snapshot_base, temp_dir};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Module, Debug)]
struct Net {
    fc1: Linear,
    fc2: Linear,
}

impl Net {
    fn new(device: &Device) -> Self {
        Net {
            fc1: LinearConfig::new(6, 8).init(device),
            fc2: LinearConfig::new(8, 3).init(device),
        }
    }
}

const MANIFEST: &str = r#"{"version":2,"chosen":["fc1.weight","fc2.bias"],"note":"ünïcode"}"#;

fn saved() -> Vec<String> {
    vec!["fc1.weight".to_string(), "fc2.bias".to_string()]
}

/// path -> raw bytes of every float parameter.
fn bytes<M: Module>(model: &M) -> BTreeMap<String, Vec<u8>> {
    snapshot_base(model)
        .into_iter()
        .map(|(path, bytes, _)| (path, bytes))
        .collect()
}

/// The start of the tensor data (after the 8-byte length and the JSON header).
fn data_start(file: &[u8]) -> usize {
    8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize
}

#[test]
fn a_flipped_bit_in_a_tensor_is_named() {
    let device = Device::flex();
    let dir = temp_dir("integrity");
    let file = dir.path().join("adapter.safetensors");
    let trained = Net::new(&device);
    save_tensors(&trained, &saved(), MANIFEST, &file).unwrap();
    assert!(read_manifest(&file).is_ok());

    // The stored tensors lie in order of their names: `fc1.weight` (48 floats) first.
    let mut damaged = std::fs::read(&file).unwrap();
    let at = data_start(&damaged) + 4 * 10 + 2;
    damaged[at] ^= 0x10;
    std::fs::write(&file, &damaged).unwrap();
    let err = load_tensors(Net::new(&device), &file).unwrap_err();
    match &err {
        StoreError::ChecksumMismatch {
            tensor, file: f, ..
        } => {
            assert_eq!(tensor, "fc1.weight");
            assert_eq!(f, &file);
        }
        other => panic!("expected a checksum mismatch, got {other}"),
    }
    assert!(err.to_string().contains("fc1.weight"), "{err}");
    // The manifest alone is intact, so it still reads.
    assert_eq!(read_manifest(&file).unwrap(), MANIFEST);
}

/// A file written before checksums existed: the manifest, no integrity record.
#[test]
fn files_without_checksums_still_load() {
    let device = Device::flex();
    let dir = temp_dir("integrity");
    let file = dir.path().join("old.safetensors");
    let trained = Net::new(&device);
    let mut store = SafetensorsStore::from_file(&file)
        .with_full_paths(saved())
        .metadata(MANIFEST_KEY, MANIFEST);
    trained.save_into(&mut store).unwrap();
    let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).to_string();
    assert!(!text.contains(INTEGRITY_KEY));

    let (loaded, manifest) = load_tensors(Net::new(&device), &file).unwrap();
    assert_eq!(manifest, MANIFEST);
    let (want, got) = (bytes(&trained), bytes(&loaded));
    for path in saved() {
        assert_eq!(got[&path], want[&path], "{path}");
    }
}

/// One damaged copy of `original`, of one of five kinds.
fn damage(original: &[u8], rng: &mut StdRng, kind: usize) -> Vec<u8> {
    let mut out = original.to_vec();
    let header_end = data_start(original);
    match kind {
        // Truncated anywhere.
        0 => out.truncate(rng.random_range(0..original.len())),
        // One flipped bit anywhere.
        1 => {
            let at = rng.random_range(0..out.len());
            out[at] ^= 1 << rng.random_range(0..8);
        }
        // One flipped bit in the length prefix or the JSON header.
        2 => {
            let at = rng.random_range(0..header_end);
            out[at] ^= 1 << rng.random_range(0..8);
        }
        // A few bytes overwritten with garbage.
        3 => {
            let at = rng.random_range(0..out.len());
            let n = rng.random_range(1..=16).min(out.len() - at);
            for b in &mut out[at..at + n] {
                *b = rng.random();
            }
        }
        // Garbage appended, or the whole file replaced by garbage.
        _ => {
            if rng.random_bool(0.5) {
                let n = rng.random_range(1..64);
                out.extend((0..n).map(|_| rng.random::<u8>()));
            } else {
                let n = rng.random_range(0..2 * original.len());
                out = (0..n).map(|_| rng.random::<u8>()).collect();
            }
        }
    }
    out
}

/// The issue's mutation test, as a new user's tooling would try it: thousands of damaged
/// copies of one adapter file. None may panic, and none may load with other weights or
/// another manifest than were saved.
#[test]
fn thousands_of_damaged_copies_never_panic_or_load_other_weights() {
    let device = Device::flex();
    // Seeded weights and mutations. (burn-store writes the header's metadata in hash order, so
    // which entry a header mutation hits still varies a little between runs.)
    device.seed(7);
    let dir = temp_dir("integrity");
    let file = dir.path().join("adapter.safetensors");
    let trained = Net::new(&device);
    save_tensors(&trained, &saved(), MANIFEST, &file).unwrap();
    let original = std::fs::read(&file).unwrap();
    let base = Net::new(&device);
    let (want, base_bytes) = (bytes(&trained), bytes(&base));

    let damaged_file = dir.path().join("damaged.safetensors");
    let mut rng = StdRng::seed_from_u64(2026);
    let (mut errors, mut unchanged) = (0usize, 0usize);
    let mut by_variant: BTreeMap<String, usize> = BTreeMap::new();
    const COPIES: usize = 3000;
    for i in 0..COPIES {
        let copy = damage(&original, &mut rng, i % 5);
        std::fs::write(&damaged_file, &copy).unwrap();
        let manifest = catch_unwind(AssertUnwindSafe(|| read_manifest(&damaged_file)))
            .unwrap_or_else(|_| panic!("read_manifest panicked on damaged copy {i}"));
        if let Ok(m) = manifest {
            assert_eq!(
                m, MANIFEST,
                "copy {i}: read_manifest returned another manifest"
            );
        }
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            load_tensors(base.clone(), Path::new(&damaged_file))
        }))
        .unwrap_or_else(|_| panic!("load_tensors panicked on damaged copy {i}"));
        match loaded {
            Ok((model, manifest)) => {
                assert_eq!(manifest, MANIFEST, "copy {i}: another manifest loaded");
                let got = bytes(&model);
                for (path, value) in &got {
                    let expected = if saved().contains(path) {
                        &want[path]
                    } else {
                        &base_bytes[path]
                    };
                    assert_eq!(value, expected, "copy {i}: `{path}` loaded changed");
                }
                unchanged += 1;
            }
            Err(e) => {
                errors += 1;
                let variant = format!("{e:?}");
                let variant = variant
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("")
                    .to_string();
                *by_variant.entry(variant).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{COPIES} damaged copies: {errors} errors {by_variant:?}, {unchanged} loaded unchanged"
    );
    assert_eq!(errors + unchanged, COPIES);
    // Every bit of tensor data is covered by a checksum: most damage must be caught.
    assert!(
        by_variant.get("ChecksumMismatch").copied().unwrap_or(0) > 300,
        "{by_variant:?}"
    );
}
