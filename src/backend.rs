//! The compute backends this build of adapeft was compiled with.
//!
//! burn 0.22 picks the backend from the [`Device`]; no adapeft code names a backend type. The
//! cargo features of this crate forward to burn's: `flex` (the default, pure-Rust CPU), `wgpu`,
//! `vulkan` and `cuda`. (The device-level tests choose their backends with
//! `ADAPEFT_TEST_BACKENDS`, through the workspace's unpublished test-support crate.)

use burn::tensor::Device;

/// A device of one enabled backend, with the backend's name.
#[derive(Debug, Clone)]
pub struct BackendDevice {
    /// The cargo feature that enabled it (`flex`, `wgpu`, `vulkan`, `cuda`).
    pub name: &'static str,
    /// Its default device.
    pub device: Device,
}

/// One default device per backend feature enabled in this build, in the order
/// `flex`, `wgpu`, `vulkan`, `cuda`.
///
/// ```
/// let names: Vec<_> = adapeft::backend::enabled().iter().map(|b| b.name).collect();
/// # #[cfg(feature = "flex")]
/// assert!(names.contains(&"flex"));
/// ```
// One conditional push per backend feature: `vec![..]` cannot hold `#[cfg]`'d elements.
#[allow(clippy::vec_init_then_push)]
pub fn enabled() -> Vec<BackendDevice> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(feature = "flex")]
    out.push(BackendDevice {
        name: "flex",
        device: Device::flex(),
    });
    #[cfg(feature = "wgpu")]
    out.push(BackendDevice {
        name: "wgpu",
        device: Device::wgpu(Default::default()),
    });
    #[cfg(feature = "vulkan")]
    out.push(BackendDevice {
        name: "vulkan",
        device: Device::vulkan(Default::default()),
    });
    #[cfg(feature = "cuda")]
    out.push(BackendDevice {
        name: "cuda",
        device: Device::cuda(0),
    });
    out
}
