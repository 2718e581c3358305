//! The source task and the target tasks: deterministic transforms of the digits data set.
//!
//! Every model is pretrained on [`Task::Source`] (the plain ten-class problem) and fine-tuned on
//! each target task. The targets are chosen so that a *different* part of a pretrained network
//! has to change for each:
//!
//! - [`Task::PermutedLabels`]: the same images, the classes renamed by a fixed derangement. The
//!   features stay perfect; only the map from features to class (the head) is wrong.
//! - [`Task::Inverted`]: intensities `x -> 1 - x`. Every first-layer pre-activation becomes
//!   `W 1 + b - W x`: the input layer (and the biases after it) must adapt.
//! - [`Task::Rotated`]: images rotated by 90 degrees clockwise. For the transformer, which reads
//!   rows as tokens, every token now holds what was a column: the row embedding and the early
//!   layers must adapt. For the MLP the first layer's pixel wiring must change.

use crate::data::{CLASSES, Dataset, PIXELS, SIDE};

/// A fixed derangement of the ten labels (no label keeps its name): label `l` becomes
/// `PERMUTATION[l]`.
pub const PERMUTATION: [usize; CLASSES] = [3, 7, 9, 0, 8, 2, 5, 1, 6, 4];

/// A task: a deterministic transform of images and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// The plain ten-class digits (the pretraining task).
    Source,
    /// Labels renamed by [`PERMUTATION`].
    PermutedLabels,
    /// Intensities inverted, `x -> 1 - x`.
    Inverted,
    /// Images rotated by 90 degrees clockwise.
    Rotated,
}

impl Task {
    /// The target tasks of the study, in report order.
    pub const TARGETS: [Task; 3] = [Task::PermutedLabels, Task::Inverted, Task::Rotated];

    /// A short name for tables, file names and plots.
    pub fn name(self) -> &'static str {
        match self {
            Task::Source => "source",
            Task::PermutedLabels => "permuted-labels",
            Task::Inverted => "inverted",
            Task::Rotated => "rotated",
        }
    }

    /// Which part of the network the task is designed to exercise.
    pub fn needs(self) -> &'static str {
        match self {
            Task::Source => "everything (pretraining)",
            Task::PermutedLabels => "the head",
            Task::Inverted => "the input layer and biases",
            Task::Rotated => "the early layers and row embedding",
        }
    }

    /// The transformed label.
    pub fn label(self, label: usize) -> usize {
        match self {
            Task::PermutedLabels => PERMUTATION[label],
            _ => label,
        }
    }

    /// Writes the transformed image of `image` (row-major, `SIDE x SIDE`) into `out`.
    pub fn image(self, image: &[f32], out: &mut [f32]) {
        match self {
            Task::Source | Task::PermutedLabels => out.copy_from_slice(image),
            Task::Inverted => {
                for (o, &x) in out.iter_mut().zip(image) {
                    *o = 1.0 - x;
                }
            }
            Task::Rotated => {
                // Clockwise: the new row r, column c shows the old row SIDE-1-c, column r.
                for r in 0..SIDE {
                    for c in 0..SIDE {
                        out[r * SIDE + c] = image[(SIDE - 1 - c) * SIDE + r];
                    }
                }
            }
        }
    }

    /// The task's version of a data set.
    pub fn apply(self, data: &Dataset) -> Dataset {
        let mut pixels = vec![0.0; data.pixels.len()];
        for (i, out) in pixels.chunks_exact_mut(PIXELS).enumerate() {
            self.image(data.image(i), out);
        }
        Dataset {
            pixels,
            labels: data.labels.iter().map(|&l| self.label(l)).collect(),
        }
    }
}

/// Checks the transforms' invariants on `data` (run at every start of the study): each is
/// deterministic, labels stay in range and the label map is a bijection, pixels stay in
/// `[0, 1]`, and each image transform is invertible (inverting twice and rotating four times
/// give the original back, bit for bit, as does undoing the permutation).
pub fn check_transforms(data: &Dataset) -> Result<(), String> {
    let mut seen = [false; CLASSES];
    for l in 0..CLASSES {
        seen[Task::PermutedLabels.label(l)] = true;
        if Task::PermutedLabels.label(l) == l {
            return Err(format!("the permutation keeps label {l}"));
        }
    }
    if seen.iter().any(|s| !s) {
        return Err("the label permutation is not a bijection".into());
    }
    for task in [Task::Source].into_iter().chain(Task::TARGETS) {
        let once = task.apply(data);
        if once != task.apply(data) {
            return Err(format!("task {} is not deterministic", task.name()));
        }
        if once.pixels.iter().any(|p| !(0.0..=1.0).contains(p)) {
            return Err(format!("task {} leaves [0, 1]", task.name()));
        }
        if once.labels.iter().any(|&l| l >= CLASSES) {
            return Err(format!("task {} gives a label out of range", task.name()));
        }
    }
    let twice = Task::Inverted.apply(&Task::Inverted.apply(data));
    if twice.pixels != data.pixels {
        return Err("inverting twice does not give the images back".into());
    }
    let mut four = data.clone();
    for _ in 0..4 {
        four = Task::Rotated.apply(&four);
    }
    if four != *data {
        return Err("rotating four times does not give the images back".into());
    }
    if Task::Rotated.apply(data).pixels == data.pixels {
        return Err("rotation changes nothing".into());
    }
    let mut inverse = [0; CLASSES];
    for (l, &p) in PERMUTATION.iter().enumerate() {
        inverse[p] = l;
    }
    let permuted = Task::PermutedLabels.apply(data);
    if permuted
        .labels
        .iter()
        .map(|&l| inverse[l])
        .collect::<Vec<_>>()
        != data.labels
        || permuted.pixels != data.pixels
    {
        return Err("the permutation cannot be undone".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered() -> Dataset {
        Dataset {
            pixels: (0..2 * PIXELS)
                .map(|i| (i % PIXELS) as f32 / 64.0)
                .collect(),
            labels: vec![0, 7],
        }
    }

    #[test]
    fn transforms_are_deterministic_bijections() {
        check_transforms(&numbered()).unwrap();
    }

    #[test]
    fn rotation_moves_the_top_left_pixel_to_the_top_right() {
        let mut image = [0.0; PIXELS];
        image[0] = 1.0; // row 0, column 0
        let mut out = [0.0; PIXELS];
        Task::Rotated.image(&image, &mut out);
        assert_eq!(out[SIDE - 1], 1.0); // row 0, column 7
        assert_eq!(out.iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn permuted_labels_follow_the_table() {
        let d = Task::PermutedLabels.apply(&numbered());
        assert_eq!(d.labels, [3, 1]);
        assert_eq!(Task::Inverted.apply(&numbered()).image(0)[0], 1.0);
    }
}
