//! Saving and loading only the trained parameters, with the selection as the manifest.

use std::path::Path;

use adapeft_selection::{Selection, load_tensors, save_tensors};
use burn::module::Module;

use crate::error::AdaPeftError;

/// Writes the chosen parameters of `model` (and nothing else) to `path` as safetensors, with
/// `selection` as the file's JSON manifest. The file's size follows the trained parameters,
/// not the model's.
///
/// # Errors
/// The file cannot be written, or a chosen path is not a parameter of `model`; a selection
/// that trains some tensor only in part (units below the tensor) is refused with
/// [`SelectionError::PartialTensors`](adapeft_selection::SelectionError::PartialTensors)
/// until the file format stores cells.
pub fn save_trained<M: Module>(
    model: &M,
    selection: &Selection,
    path: impl AsRef<Path>,
) -> Result<(), AdaPeftError> {
    selection.refuse_partial("save the trained tensors")?;
    save_tensors(model, &selection.chosen_paths(), &selection.to_json(), path)?;
    Ok(())
}

/// Puts the tensors saved by [`save_trained`] back onto `base_model` (bit-exact), and returns
/// the model with the selection from the manifest. Parameters that were not saved keep the
/// base model's values. Call [`Selection::apply`] on the result to continue training the same
/// subset.
///
/// # Errors
/// The file cannot be read, has no selection manifest, or holds a tensor the model lacks.
pub fn load_trained<M: Module>(
    base_model: M,
    path: impl AsRef<Path>,
) -> Result<(M, Selection), AdaPeftError> {
    let (model, manifest) = load_tensors(base_model, path)?;
    let selection = Selection::from_json(&manifest)?;
    Ok((model, selection))
}
