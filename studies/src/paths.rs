//! Where the studies read their data and write their results: the workspace root, found from
//! this package's folder at compile time, so that a study finds `data/` and `target/` whatever
//! the working directory it is started from.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding `data/` and, by default, `target/`).
pub fn workspace_root() -> &'static Path {
    // This package lives in `studies/`, one level below the root (an absolute path).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the package folder studies/ has a parent, the workspace root")
}

/// The vendored data set `name` (`digits` or `wordnet`): `data/<name>/` in the workspace root.
pub fn data_dir(name: &str) -> PathBuf {
    workspace_root().join("data").join(name)
}

/// The workspace's target folder: `CARGO_TARGET_DIR` if set (relative to the workspace root
/// when relative), else `target/` in the workspace root. The studies write their results to
/// `adapeft/<study>/` inside it.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_holds_the_workspace_manifest_and_the_vendored_data() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"), "{manifest}");
        assert!(data_dir("digits").join("digits.csv.gz").is_file());
        assert!(data_dir("wordnet").join("noun.tsv").is_file());
    }
}
