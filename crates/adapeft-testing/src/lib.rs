//! Test support for the adapeft workspace (not published).
//!
//! - [`backends`]: the devices the device-level tests run on, chosen with the environment
//!   variable `ADAPEFT_TEST_BACKENDS` (`flex` by default; `wgpu`, or `flex,wgpu`);
//! - [`snapshot`] and friends: bit-exact views of a model's parameters, by path;
//! - [`problems`]: models whose curvature has a closed form, and a dense finite-difference
//!   Hessian of a small MLP, the independent truth the estimators are checked against;
//! - [`TempDir`]: the one temporary folder of the tests, removed when dropped, also when
//!   the test panics;
//! - [`damage`]: seeded damage to a file's bytes, for the integrity tests of adapter files
//!   and checkpoints;
//! - [`memory`]: the peak resident set size of the process, for the studies' and benches'
//!   memory figures;
//! - [`learner`]: the small regression model with a gradient mask that the tests of
//!   burn-train's `Learner` train (one device and several).

pub mod damage;
pub mod host;
pub mod learner;
pub mod memory;
pub mod problems;

pub use host::{
    Snap, flat_params, gradient_at, host, orthogonal_signs, per_tensor, random_signs, rel_err,
    snapshot, snapshot_base, tensor1, tensor2, with_params, with_random_params,
};
pub use problems::*;
pub use tempfile::TempDir;

use burn::tensor::Device;

/// A device the tests run on, with its backend's name.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `flex`, `wgpu` or `cuda`.
    pub name: &'static str,
    /// Its default device.
    pub device: Device,
}

/// The backends this test build can run on: `flex` and `wgpu` always (burn is built with both
/// for every test), `cuda` with this crate's `cuda` feature.
pub fn available() -> Vec<&'static str> {
    let mut names = vec!["flex", "wgpu"];
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

fn device_of(name: &str) -> Device {
    match name {
        "flex" => Device::flex(),
        "wgpu" => Device::wgpu(Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        other => unreachable!("`{other}` is not an available backend"),
    }
}

/// The backends device-level tests run on: those named in the comma-separated environment
/// variable `ADAPEFT_TEST_BACKENDS`, or `flex` alone when it is unset or empty. CI runs the
/// whole suite on flex, then the device-level tests again with `ADAPEFT_TEST_BACKENDS=wgpu`.
///
/// # Panics
/// When the variable names a backend this build cannot run (see [`available`]): a test run
/// that silently tested nothing would be worse.
pub fn backends() -> Vec<Backend> {
    let list = std::env::var("ADAPEFT_TEST_BACKENDS").unwrap_or_default();
    let wanted: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let wanted = if wanted.is_empty() {
        vec!["flex"]
    } else {
        wanted
    };
    let available = available();
    wanted
        .into_iter()
        .map(|w| {
            let name = available
                .iter()
                .copied()
                .find(|a| *a == w)
                .unwrap_or_else(|| {
                    panic!("ADAPEFT_TEST_BACKENDS names `{w}`, which this build cannot run (available: {available:?})")
                });
            Backend {
                name,
                device: device_of(name),
            }
        })
        .collect()
}

/// A fresh temporary folder whose name starts with `adapeft-{prefix}`, removed with
/// everything in it when the guard is dropped (also when a test panics).
pub fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("adapeft-{prefix}-"))
        .tempdir()
        .expect("a temporary folder")
}
