//! Damaged adapter files: nothing loads silently.
//!
//! - thousands of seeded damaged copies of one `save_trained` file (a selection's JSON as
//!   the manifest), of whole tensors and of cells of units below the tensor: none panics,
//!   none loads other weights or another selection; every copy that cannot be the file any
//!   more (truncated, replaced) is refused, and every change to a tensor's bytes is a
//!   checksum mismatch naming the tensor;
//! - the door the first builds left open: a file without a checksum record loaded
//!   unverified, so damage to the record's key turned the checks off. Now only a file
//!   recognised as older than checksums loads unverified; a damaged key, or a format version
//!   that records checksums without them, is refused;
//! - a manifest stored compressed (long ones are): damage to it never loads another
//!   selection, and a compressed manifest where the format version says plain, a plain one
//!   where it says compressed, both, or a cell layout removed from such a file, are refused;
//! - files written by earlier builds, with or without checksums, still load.
//!
//! The checkpoint side (`adapeft_optim::checkpoint`) has the same test in
//! `crates/adapeft-optim/tests/integrity.rs`.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use adapeft::importance::{Baseline, Estimator, Unit, UnitRules};
use adapeft::{
    AdaPeft, AdaPeftConfig, AdaPeftError, Budget, Scored, Selection, load_trained, save_trained,
};
use adapeft_selection::integrity::IntegrityError;
use adapeft_selection::{
    CELLS_SUFFIX, COMPRESS_ABOVE, INTEGRITY_KEY, MANIFEST_DEFLATE_KEY, MANIFEST_KEY, STORE_VERSION,
    StoreError, VERSION_KEY, load_tensors, read_manifest, save_tensors,
};
use adapeft_testing::damage::{Damage, damage, data_start, header, with_header};
use adapeft_testing::{Mlp, per_tensor, regression_batch, snapshot_base, temp_dir};
use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// path -> raw bytes of every float parameter.
fn bytes<M: Module>(model: &M) -> BTreeMap<String, Vec<u8>> {
    snapshot_base(model)
        .into_iter()
        .map(|(path, bytes, _)| (path, bytes))
        .collect()
}

/// A small model, the selection of half of it, and that selection's `save_trained` file.
struct Saved {
    trained: Mlp,
    base: Mlp,
    selection: Selection,
    /// The file's bytes, its header rewritten with sorted keys: burn-store writes the
    /// metadata in hash order, which changes from run to run, and the seeded damage must
    /// land on the same bytes in every run.
    original: Vec<u8>,
}

/// What the saved file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Whole tensors, a selection of half the model.
    Whole,
    /// Cells: the selection is of units below the tensor (the hidden layer's output neurons,
    /// 2 x 2 blocks of the output weight).
    Cells,
    /// Cells, and a manifest long enough to be stored compressed: units below the tensor of
    /// a wider model (2 x 2 blocks of the hidden layer too), hundreds of them.
    Compressed,
}

fn saved(dir: &Path, kind: Kind) -> Saved {
    let device = Device::flex().autodiff();
    device.seed(7);
    let (d_in, hidden) = if kind == Kind::Compressed {
        (32, 64)
    } else {
        (6, 8)
    };
    let trained = Mlp::new(d_in, hidden, 3, &device);
    let base = Mlp::new(d_in, hidden, 3, &device);
    let batch = regression_batch(16, d_in, 3, 1, &device);
    let units = kind != Kind::Whole;
    let selection = if units {
        let neurons = if kind == Kind::Compressed {
            Unit::Blocks { rows: 2, cols: 2 }
        } else {
            Unit::Outputs
        };
        let rules = UnitRules::new()
            .with("^hidden$", neurons)
            .unwrap()
            .with("^out$", Unit::Blocks { rows: 2, cols: 2 })
            .unwrap();
        let groups = per_tensor(&trained).split(&rules).unwrap();
        let scores = Baseline::GradientNorm
            .estimate(&trained, std::slice::from_ref(&batch), &groups)
            .unwrap();
        let scored = Scored::new(groups, scores, 1).unwrap();
        AdaPeftConfig::new()
            .select_scored(&scored, Budget::Fraction(0.5))
            .unwrap()
    } else {
        AdaPeft::select(&trained, &batch, Budget::Fraction(0.5)).unwrap()
    };
    assert!(!selection.chosen_paths().is_empty() || units);
    assert_eq!(!selection.partial().is_empty(), units);
    let file = dir.join("written.safetensors");
    save_trained(&trained, &selection, &file).unwrap();
    let written = std::fs::read(&file).unwrap();
    let compressed = header(&written).0.contains_key(MANIFEST_DEFLATE_KEY);
    assert_eq!(compressed, kind == Kind::Compressed);
    assert_eq!(
        selection.to_json_compact().len() > COMPRESS_ABOVE,
        compressed
    );
    let original = with_header(&written, header(&written));
    Saved {
        trained,
        base,
        selection,
        original,
    }
}

/// Where a damage lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Region {
    /// The 8-byte length and the JSON header.
    Header,
    /// The tensor data.
    Data,
    /// Anywhere.
    File,
}

/// The mutation test, as a new user's tooling would try it: thousands of damaged
/// copies of one `save_trained` file. None may panic, none may load other weights or another
/// selection than were saved, and the damage that must be noticed is.
#[test]
fn thousands_of_damaged_copies_never_panic_or_load_other_weights() {
    damaged_copies(Kind::Whole);
}

/// The same with a file of units below the tensor: the cells' values and their layout (tiling
/// and cell numbers) are checked like whole tensors.
#[test]
fn thousands_of_damaged_copies_of_a_file_of_cells_never_panic_or_load_other_weights() {
    damaged_copies(Kind::Cells);
}

/// The same with a manifest stored compressed: damage to its base64 text, or to the stream
/// it encodes, is refused or reads back the manifest that was saved.
#[test]
fn thousands_of_damaged_copies_of_a_file_with_a_compressed_manifest_never_load_other_weights() {
    damaged_copies(Kind::Compressed);
}

fn damaged_copies(kind: Kind) {
    let dir = temp_dir("integrity");
    let saved = saved(dir.path(), kind);
    let original = &saved.original;
    let (want, base_bytes) = (bytes(&saved.trained), bytes(&saved.base));
    let chosen = saved.selection.chosen_paths();
    // What the file stores: whole tensors and the cell values of partial ones.
    let stored: Vec<String> = chosen
        .iter()
        .cloned()
        .chain(
            saved
                .selection
                .partial()
                .into_keys()
                .map(|p| format!("{p}{CELLS_SUFFIX}")),
        )
        .collect();
    // The manifest as the file stores it (compact), and the selection as it reads back.
    let json = saved.selection.to_json_compact();
    // What the undamaged file loads: for whole tensors, checked here against the trained and
    // the base model; the cells' entries are checked in `tests/units.rs`.
    let reference = {
        let file = dir.path().join("undamaged.safetensors");
        std::fs::write(&file, original).unwrap();
        let (model, _) = load_trained(saved.base.clone(), &file).unwrap();
        bytes(&model)
    };
    let partial = saved.selection.partial();
    for (path, value) in &reference {
        if let Some(cells) = partial.get(path) {
            assert_ne!(value, &base_bytes[path], "`{path}`: its cells loaded");
            if cells.len() < saved.selection.tilings()[path].cells() {
                assert_ne!(value, &want[path], "`{path}`: only its cells loaded");
            }
        } else if chosen.contains(path) {
            assert_eq!(value, &want[path], "`{path}` loaded");
        } else {
            assert_eq!(value, &base_bytes[path], "`{path}` kept");
        }
    }
    let split = data_start(original);
    let variants = [
        (Damage::Truncate, Region::File),
        (Damage::FlipBit, Region::Header),
        (Damage::FlipBit, Region::Data),
        (Damage::Overwrite, Region::Header),
        (Damage::Overwrite, Region::Data),
        (Damage::Append, Region::File),
        (Damage::Replace, Region::File),
    ];
    const PER_VARIANT: usize = 400;

    let file = dir.path().join("damaged.safetensors");
    let mut rng = StdRng::seed_from_u64(2026);
    // (variant, outcome) -> copies.
    let mut outcomes: BTreeMap<(Damage, Region, String), usize> = BTreeMap::new();
    let mut reached_manifest = 0usize;
    for i in 0..PER_VARIANT * variants.len() {
        let (kind, region) = variants[i % variants.len()];
        let range = match region {
            Region::Header => 0..split,
            Region::Data => split..original.len(),
            Region::File => 0..original.len(),
        };
        let copy = damage(original, range, kind, &mut rng);
        if &copy == original {
            *outcomes
                .entry((kind, region, "same bytes".into()))
                .or_default() += 1;
            continue;
        }
        std::fs::write(&file, &copy).unwrap();

        let manifest = catch_unwind(AssertUnwindSafe(|| read_manifest(&file)))
            .unwrap_or_else(|_| panic!("read_manifest panicked on damaged copy {i}"));
        if let Ok(m) = manifest {
            assert_eq!(m, json, "copy {i}: read_manifest returned another manifest");
        }
        let loaded = catch_unwind(AssertUnwindSafe(|| load_trained(saved.base.clone(), &file)))
            .unwrap_or_else(|_| panic!("load_trained panicked on damaged copy {i}"));
        // Damage that reached the compressed manifest itself: it did not inflate, or inflated
        // to another text than its checksum's.
        if let Err(AdaPeftError::Store(StoreError::Integrity(e))) = &loaded {
            match e {
                IntegrityError::Corrupt { reason, .. }
                    if reason.contains("compressed manifest") =>
                {
                    reached_manifest += 1;
                }
                IntegrityError::Mismatch { item, .. } if item == "(manifest)" => {
                    reached_manifest += 1;
                }
                _ => {}
            }
        }
        let outcome = match loaded {
            Ok((model, selection)) => {
                // Loaded, so verified: the copy still holds its checksum record. (The first
                // builds loaded a copy whose record key was damaged without any check.)
                let (metadata, _) = header(&copy);
                assert!(
                    metadata.contains_key(INTEGRITY_KEY),
                    "copy {i} ({kind:?} in {region:?}) loaded without its checksum record"
                );
                assert_eq!(
                    selection.to_json_compact(),
                    json,
                    "copy {i}: another selection loaded"
                );
                for (path, value) in &bytes(&model) {
                    assert_eq!(
                        value, &reference[path],
                        "copy {i} ({kind:?} in {region:?}): `{path}` loaded changed"
                    );
                }
                "loaded unchanged".to_string()
            }
            Err(AdaPeftError::Store(StoreError::Integrity(IntegrityError::Mismatch {
                item,
                ..
            }))) if region == Region::Data => {
                assert!(
                    stored.contains(&item),
                    "copy {i}: the mismatch names `{item}`, not a stored tensor"
                );
                "checksum mismatch (tensor)".to_string()
            }
            Err(e) => {
                let variant = format!("{e:?}");
                let words: Vec<&str> = variant
                    .split(['(', ' ', '{'])
                    .filter(|w| !w.is_empty())
                    .take(3)
                    .collect();
                words.join(" ")
            }
        };
        *outcomes.entry((kind, region, outcome)).or_default() += 1;
    }
    eprintln!("copies refused at the manifest's own checks: {reached_manifest}");
    if kind == Kind::Compressed {
        assert!(
            reached_manifest > 50,
            "only {reached_manifest} damaged copies reached the compressed manifest"
        );
    }
    for ((kind, region, outcome), n) in &outcomes {
        eprintln!("{kind:?} in {region:?}: {outcome}: {n}");
    }

    let count = |kind: Damage, region: Region, outcome: &str| {
        outcomes
            .get(&(kind, region, outcome.to_string()))
            .copied()
            .unwrap_or(0)
    };
    for (kind, region) in variants {
        let total: usize = outcomes
            .iter()
            .filter(|((k, r, o), _)| (*k, *r) == (kind, region) && o != "same bytes")
            .map(|(_, n)| n)
            .sum();
        assert!(
            total > PER_VARIANT / 2,
            "{kind:?} in {region:?}: only {total} damaged copies"
        );
        let unchanged = count(kind, region, "loaded unchanged");
        // A file cut short, replaced, or whose tensor bytes changed can never load.
        if kind.always_refused() || region == Region::Data {
            assert_eq!(
                unchanged, 0,
                "{kind:?} in {region:?}: {unchanged} copies loaded"
            );
        }
        // Every change to the tensor data is a checksum mismatch naming the tensor.
        if region == Region::Data {
            assert_eq!(
                count(kind, region, "checksum mismatch (tensor)"),
                total,
                "{kind:?} in the data: {outcomes:?}"
            );
        }
    }
}

/// The door the first builds left open: "no record: load unverified". A bit flipped in the
/// record's key (`adapeft.integrity` -> `adapeft.integritx`) hid the record, and the file then
/// loaded without any check. (With those builds this test fails: the copy loads.)
#[test]
fn a_damaged_record_key_is_refused_not_loaded_unverified() {
    let dir = temp_dir("integrity");
    let saved = saved(dir.path(), Kind::Whole);
    let file = dir.path().join("damaged.safetensors");
    let expect_missing = |bytes: &[u8], what: &str| {
        std::fs::write(&file, bytes).unwrap();
        match load_tensors(saved.base.clone(), &file) {
            Err(StoreError::Integrity(IntegrityError::Missing { file: f, .. })) => {
                assert_eq!(f, file, "{what}")
            }
            other => panic!("{what}: expected a missing record, got {other:?}"),
        }
        assert!(
            matches!(
                read_manifest(&file),
                Err(StoreError::Integrity(IntegrityError::Missing { .. }))
            ),
            "{what}: read_manifest"
        );
    };

    // One flipped bit in the key, the rest of the file intact.
    let key = INTEGRITY_KEY.as_bytes();
    let at = saved
        .original
        .windows(key.len())
        .position(|w| w == key)
        .expect("the record key is in the header");
    let mut flipped = saved.original.clone();
    flipped[at + key.len() - 1] ^= 0x01; // `y` -> `x`
    assert_eq!(&flipped[at..at + key.len()], b"adapeft.integritx");
    expect_missing(&flipped, "record key damaged");

    // The same with the version entry gone too: still not a file of the first builds,
    // whose metadata held only the manifest and burn-store's entries.
    let (mut metadata, entries) = header(&flipped);
    // A file without cells is format version 2, which builds before cells read too.
    assert_eq!(metadata.remove(VERSION_KEY), Some("2".to_string()));
    expect_missing(
        &with_header(&flipped, (metadata, entries)),
        "record key damaged, no version",
    );

    // A version that records checksums, without them.
    let (mut metadata, entries) = header(&saved.original);
    metadata.remove(INTEGRITY_KEY);
    expect_missing(
        &with_header(&saved.original, (metadata, entries)),
        "no record at version 2",
    );

    // A version this build does not know, one that is no version, the version of files
    // with cells on a file without them, and that of compressed manifests on a plain one.
    assert_eq!(STORE_VERSION, 4);
    for (version, newer) in [("5", true), ("2x", false), ("3", false), ("4", false)] {
        let (mut metadata, entries) = header(&saved.original);
        metadata.insert(VERSION_KEY.into(), version.into());
        std::fs::write(&file, with_header(&saved.original, (metadata, entries))).unwrap();
        match (load_tensors(saved.base.clone(), &file), newer) {
            (Err(StoreError::UnsupportedVersion { found: 5, .. }), true) => {}
            (Err(StoreError::Integrity(IntegrityError::Corrupt { .. })), false) => {}
            (other, _) => panic!("version `{version}`: got {other:?}"),
        }
    }
}

/// The entries of a file with a compressed manifest, moved: each way the version, the two
/// manifest keys and the cell layout can disagree is refused as corrupt, never read as
/// another manifest or loaded without its cells.
#[test]
fn a_compressed_manifest_where_the_version_says_otherwise_is_refused() {
    let dir = temp_dir("integrity");
    let compressed = saved(dir.path(), Kind::Compressed);
    let plain = saved(dir.path(), Kind::Cells);
    let file = dir.path().join("moved.safetensors");
    let (packed_meta, _) = header(&compressed.original);
    assert_eq!(packed_meta[VERSION_KEY], "4");
    let packed = packed_meta[MANIFEST_DEFLATE_KEY].clone();
    let text = compressed.selection.to_json_compact();
    let corrupt = |bytes: Vec<u8>, base: &Mlp, words: &str, what: &str| {
        std::fs::write(&file, bytes).unwrap();
        match load_tensors(base.clone(), &file) {
            Err(StoreError::Integrity(IntegrityError::Corrupt { reason, .. })) => {
                assert!(reason.contains(words), "{what}: {reason}");
            }
            other => panic!("{what}: got {other:?}"),
        }
        assert!(read_manifest(&file).is_err(), "{what}: read_manifest");
    };
    let edit = |saved: &Saved, change: &dyn Fn(&mut BTreeMap<String, String>)| {
        let (mut metadata, entries) = header(&saved.original);
        change(&mut metadata);
        with_header(&saved.original, (metadata, entries))
    };
    // Version 4, the manifest put back plain (its checksum would match).
    let bytes = edit(&compressed, &|m| {
        m.remove(MANIFEST_DEFLATE_KEY);
        m.insert(MANIFEST_KEY.into(), text.clone());
    });
    corrupt(
        bytes,
        &compressed.base,
        "plain",
        "plain manifest at version 4",
    );
    // Both entries.
    let bytes = edit(&compressed, &|m| {
        m.insert(MANIFEST_KEY.into(), text.clone());
    });
    corrupt(bytes, &compressed.base, "both", "both manifests");
    // Version 3, the manifest compressed.
    let bytes = edit(&compressed, &|m| {
        m.insert(VERSION_KEY.into(), "3".into());
    });
    corrupt(
        bytes,
        &compressed.base,
        "does not store",
        "compressed at version 3",
    );
    // A plain file (version 3) given a compressed manifest (another file's: its own text,
    // deflated, is `store`'s unit test): its version does not store one.
    let plain_text = plain.selection.to_json_compact();
    let bytes = edit(&plain, &|m| {
        let text = m.remove(MANIFEST_KEY).unwrap();
        assert_eq!(text, plain_text);
        m.insert(MANIFEST_DEFLATE_KEY.into(), packed.clone());
    });
    corrupt(
        bytes,
        &plain.base,
        "does not store",
        "compressed at version 3 (cells)",
    );
    // Version 4 without its cell layout: the checksum record lists it.
    let bytes = edit(&compressed, &|m| {
        assert!(m.remove(adapeft_selection::CELLS_KEY).is_some());
    });
    corrupt(
        bytes,
        &compressed.base,
        "lists a cell layout",
        "no cell layout at version 4",
    );
    // The compressed text cut short by whole base64 quanta: it still decodes, but the
    // stream is incomplete.
    let bytes = edit(&compressed, &|m| {
        let cut = packed[..packed.len() / 8 * 4].to_string();
        m.insert(MANIFEST_DEFLATE_KEY.into(), cut);
    });
    corrupt(bytes, &compressed.base, "inflate", "stream cut short");
    // And the undamaged file loads the selection and the trained cells.
    std::fs::write(&file, &compressed.original).unwrap();
    let (_, selection) = load_trained(compressed.base.clone(), &file).unwrap();
    assert_eq!(selection.to_json_compact(), text);
}

/// A file written before checksums existed: the manifest and burn-store's own metadata, no
/// record, no version. It loads, unverified, as it always did.
#[test]
fn files_without_checksums_still_load() {
    let device = Device::flex();
    let dir = temp_dir("integrity");
    let file = dir.path().join("old.safetensors");
    let trained = Mlp::new(6, 8, 3, &device);
    let paths = vec!["hidden.weight".to_string(), "out.bias".to_string()];
    let mut store = SafetensorsStore::from_file(&file)
        .with_full_paths(paths.clone())
        .metadata(MANIFEST_KEY, "{}");
    trained.save_into(&mut store).unwrap();
    let (metadata, _) = header(&std::fs::read(&file).unwrap());
    let mut keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, [MANIFEST_KEY, "format", "producer", "version"]);

    let (loaded, manifest) = load_tensors(Mlp::new(6, 8, 3, &device), &file).unwrap();
    assert_eq!(manifest, "{}");
    let (want, got) = (bytes(&trained), bytes(&loaded));
    for path in &paths {
        assert_eq!(got[path], want[path], "{path}");
    }
}

/// A file of the builds that first recorded checksums: no version entry, the record with the
/// algorithm named once and bare hex digits. It is still verified.
#[test]
fn files_of_the_first_checksum_format_are_still_verified() {
    let device = Device::flex();
    let dir = temp_dir("integrity");
    let file = dir.path().join("first.safetensors");
    let trained = Mlp::new(6, 8, 3, &device);
    let paths = vec!["hidden.weight".to_string(), "out.bias".to_string()];
    save_tensors(&trained, &paths, "{}", &file).unwrap();
    let written = std::fs::read(&file).unwrap();
    let (mut metadata, entries) = header(&written);
    metadata.remove(VERSION_KEY);
    let record: serde_json::Value = serde_json::from_str(&metadata[INTEGRITY_KEY]).unwrap();
    let bare = |sum: &serde_json::Value| {
        sum.as_str()
            .unwrap()
            .trim_start_matches("xxh3-64:")
            .to_string()
    };
    let legacy = serde_json::json!({
        "algorithm": "xxh3-64",
        "manifest": bare(&record["manifest"]),
        "tensors": record["tensors"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, sum)| (path.clone(), serde_json::Value::String(bare(sum))))
            .collect::<serde_json::Map<_, _>>(),
    });
    metadata.insert(INTEGRITY_KEY.into(), legacy.to_string());
    let first = with_header(&written, (metadata, entries));
    std::fs::write(&file, &first).unwrap();
    let (loaded, _) = load_tensors(Mlp::new(6, 8, 3, &device), &file).unwrap();
    let (want, got) = (bytes(&trained), bytes(&loaded));
    for path in &paths {
        assert_eq!(got[path], want[path], "{path}");
    }

    // The stored tensors lie in order of their names: `hidden.weight` (48 floats) first.
    let mut damaged = first.clone();
    let at = data_start(&damaged) + 4 * 10 + 2;
    damaged[at] ^= 0x10;
    std::fs::write(&file, &damaged).unwrap();
    match load_tensors(Mlp::new(6, 8, 3, &device), &file) {
        Err(StoreError::Integrity(IntegrityError::Mismatch { item, file: f, .. })) => {
            assert_eq!(item, "hidden.weight");
            assert_eq!(f, file);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // The manifest alone is intact, so it still reads.
    assert_eq!(read_manifest(&file).unwrap(), "{}");
}
