//! Saving and loading only the trained parameters, with the selection as the manifest.

use std::collections::BTreeMap;
use std::path::Path;

use adapeft_selection::{
    Selection, SelectionError, StoredCells, load_tensors, save_tensors_and_cells,
};
use burn::module::Module;

use crate::error::AdaPeftError;

/// Writes the chosen parameters of `model` (and nothing else) to `path` as safetensors, with
/// `selection` as the file's JSON manifest ([`Selection::to_json_compact`]: every scored
/// group with its score, so a selection over many units below the tensor carries a few
/// hundred bytes of JSON per unit, scored or not; a manifest over
/// [`COMPRESS_ABOVE`](adapeft_selection::COMPRESS_ABOVE) bytes is stored deflated, about eight
/// times smaller, and reads back the same). The file's size follows the trained parameters,
/// not the model's: a tensor the selection trains only in part (units below the tensor:
/// output neurons, rows, blocks, heads) is written as its chosen cells' values alone, with
/// their tiling and cell numbers, checksummed like the values
/// ([`save_tensors_and_cells`](adapeft_selection::save_tensors_and_cells)).
///
/// # Errors
/// The file cannot be written, or a chosen path is not a parameter of `model` (or, for a
/// partially trained tensor, its cells do not fit the model's tensor).
pub fn save_trained<M: Module>(
    model: &M,
    selection: &Selection,
    path: impl AsRef<Path>,
) -> Result<(), AdaPeftError> {
    let tilings = selection.tilings();
    let mut cells = BTreeMap::new();
    for (tensor, chosen) in selection.partial() {
        // `Selection::from_json` and the selector both guarantee a tiling for every cell.
        let tiling = *tilings
            .get(&tensor)
            .ok_or_else(|| SelectionError::InvalidCell {
                path: tensor.clone(),
                cell: chosen[0],
                reason: "has no tiling",
            })?;
        cells.insert(
            tensor,
            StoredCells {
                tiling,
                cells: chosen,
            },
        );
    }
    save_tensors_and_cells(
        model,
        &selection.chosen_paths(),
        &cells,
        &selection.to_json_compact(),
        path,
    )?;
    Ok(())
}

/// Puts the tensors saved by [`save_trained`] back onto `base_model` (bit-exact), and returns
/// the model with the selection from the manifest. Parameters that were not saved keep the
/// base model's values; so do the entries of a partially trained tensor outside its saved
/// cells. Call [`Selection::apply`] on the result to continue training the same
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
