//! What the adapeft studies share: progress bars, peak memory, where the studies read their data and write
//! their results, the statistics of their tables, and writing and checking their output files.
//!
//! The studies themselves are the binaries of this package, one folder each:
//! `src/bin/digits/` (the digits study and its oracle benchmark) and `src/bin/minilm/` (the
//! MiniLM study). Run them from anywhere in the workspace:
//!
//! ```text
//! cargo run -p adapeft-studies --bin digits -- --quick
//! cargo run -p adapeft-studies --bin minilm -- --quick
//! ```
//!
//! Their unit tests run with `cargo test --workspace`.

#![warn(missing_docs)]

/// The peak resident set size (shared with the benches, so it lives in the test-support crate).
pub use adapeft_testing::memory;
pub mod outputs;
pub mod paths;
pub mod progress;
pub mod stats;
