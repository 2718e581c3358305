//! Cells of partially trained tensors in an adapter file (units below the tensor).
//!
//! A tensor that trains only in some cells of its [`Tiling`] (output neurons, rows, blocks,
//! heads: `Groups::split`) is stored as those cells' values alone: one 1-D SafeTensors entry
//! named `<path>#cells` ([`CELLS_SUFFIX`]), in the tensor's own dtype, holding the chosen
//! cells in ascending order, each cell's rows in order and each row's entries in order (the
//! tensor's 2-D view, row-major). Where those values go, the tiling and the cell numbers, is
//! kept per path in the header metadata under [`CELLS_KEY`] as JSON, and its checksum in the
//! file's checksum record beside the tensors' ([`Checksums::cells`](crate::integrity::Checksums::cells)),
//! so the indices are checked like the values. Gathering and scattering work on the bytes,
//! whatever the dtype, so a round trip is exact bit for bit.

use std::collections::BTreeMap;
use std::sync::Arc;

use adapeft_importance::Tiling;
use burn::store::bridge::map_data;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleAdapter, ModuleContext};
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

/// Key under which the layout of the stored cells (tiling and cell numbers, by path) is kept
/// in the header metadata of an adapter file that stores cells.
pub const CELLS_KEY: &str = "adapeft.cells";

/// Suffix of the SafeTensors entry holding a partially trained tensor's cell values:
/// `fc.weight#cells`. `#` never occurs in a module path.
pub const CELLS_SUFFIX: &str = "#cells";

/// The trained cells of one partially trained tensor, as [`save_tensors_and_cells`](crate::save_tensors_and_cells)
/// stores them: the cells `cells` of `tiling` (the tensor's 2-D view cut in bands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCells {
    /// The tiling the cells are numbered in.
    pub tiling: Tiling,
    /// The stored cells, ascending, without repeats.
    pub cells: Vec<u32>,
}

impl StoredCells {
    /// What is wrong with these cells for a tensor of `shape`, if anything.
    pub(crate) fn problem(&self, shape: &[usize]) -> Option<String> {
        if !self.tiling.fits(shape) {
            return Some(format!(
                "its tiling is of a {} x {} view, which a tensor of shape {shape:?} does not have",
                self.tiling.rows, self.tiling.cols
            ));
        }
        if self.tiling.band_rows == 0 || self.tiling.band_cols == 0 {
            return Some("its tiling has an empty band".into());
        }
        if self.cells.is_empty() {
            return Some("it lists no cell".into());
        }
        if self.cells.windows(2).any(|w| w[0] >= w[1]) {
            return Some("its cells are not ascending without repeats".into());
        }
        let last = *self.cells.last().expect("not empty");
        if last as usize >= self.tiling.cells() {
            return Some(format!(
                "cell {last} lies outside its tiling of {} cells",
                self.tiling.cells()
            ));
        }
        None
    }

    /// The number of stored entries.
    pub(crate) fn numel(&self) -> u64 {
        self.cells
            .iter()
            .map(|&c| self.tiling.cell_numel(c as usize))
            .sum()
    }

    /// Calls `f(start, len)` for each run of contiguous entries of the cells, in storage
    /// order: `start` and `len` in entries of the tensor's flat (row-major) layout.
    fn runs(&self, mut f: impl FnMut(usize, usize)) {
        for &cell in &self.cells {
            let (rows, cols) = self.tiling.cell_rect(cell as usize);
            for row in rows {
                f(row * self.tiling.cols + cols.start, cols.len());
            }
        }
    }

    /// The cells' bytes out of a whole tensor's `bytes` (entries of `elem` bytes).
    pub(crate) fn gather(&self, bytes: &[u8], elem: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.numel() as usize * elem);
        self.runs(|start, len| out.extend_from_slice(&bytes[start * elem..(start + len) * elem]));
        out
    }

    /// Writes the cells' bytes `values` (as [`StoredCells::gather`] returns them) into a
    /// whole tensor's `bytes`.
    pub(crate) fn scatter(&self, bytes: &mut [u8], values: &[u8], elem: usize) {
        let mut at = 0;
        self.runs(|start, len| {
            let n = len * elem;
            bytes[start * elem..start * elem + n].copy_from_slice(&values[at..at + n]);
            at += n;
        });
    }
}

/// The layout record's JSON text, as stored under [`CELLS_KEY`].
pub(crate) fn layout_json(cells: &BTreeMap<String, StoredCells>) -> String {
    serde_json::to_string(cells).expect("a cell layout always serialises")
}

/// The adapter that writes a partially trained tensor as its cells: renamed to
/// `<path>#cells`, reshaped to 1-D, its bytes gathered when the writer draws them.
#[derive(Clone)]
pub(crate) struct GatherCells(pub(crate) Arc<BTreeMap<String, StoredCells>>);

impl ModuleAdapter for GatherCells {
    fn adapt(&self, tensor: PackTensor, _ctx: ModuleContext<'_>) -> PackTensor {
        let Some(cells) = self.0.get(&tensor.name).cloned() else {
            return tensor;
        };
        let name = format!("{}{CELLS_SUFFIX}", tensor.name);
        let dtype = tensor.dtype;
        let len = cells.numel() as usize;
        map_data(
            tensor,
            name,
            dtype,
            [len].into(),
            move |data: TensorData| {
                let elem = data.dtype().size();
                TensorData::from_bytes_vec(cells.gather(data.as_bytes(), elem), [len], data.dtype())
            },
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_and_scatter_follow_the_cell_rectangles() {
        // A 3 x 5 tensor of 2-byte entries, blocks of 2 x 2: cells 0..6 on a 2 x 3 grid.
        let tiling = Tiling::new(&[3, 5], 2, 2).unwrap();
        let cells = StoredCells {
            tiling,
            cells: vec![1, 5],
        };
        let bytes: Vec<u8> = (0..30).collect();
        let entry = |i: usize, j: usize| {
            let k = (i * 5 + j) * 2;
            [bytes[k], bytes[k + 1]]
        };
        // Cell 1: rows 0..2, cols 2..4; cell 5: row 2, col 4.
        let expected: Vec<u8> = [(0, 2), (0, 3), (1, 2), (1, 3), (2, 4)]
            .iter()
            .flat_map(|&(i, j)| entry(i, j))
            .collect();
        let gathered = cells.gather(&bytes, 2);
        assert_eq!(gathered, expected);
        assert_eq!(cells.numel(), 5);

        let mut zero = vec![0u8; 30];
        cells.scatter(&mut zero, &gathered, 2);
        for i in 0..3 {
            for j in 0..5 {
                let inside = matches!((i, j), (0 | 1, 2 | 3) | (2, 4));
                let k = (i * 5 + j) * 2;
                let want = if inside { entry(i, j) } else { [0, 0] };
                assert_eq!([zero[k], zero[k + 1]], want, "({i}, {j})");
            }
        }
    }

    #[test]
    fn problems_name_what_is_wrong() {
        let tiling = Tiling::new(&[4, 6], 4, 1).unwrap();
        let ok = StoredCells {
            tiling,
            cells: vec![0, 5],
        };
        assert_eq!(ok.problem(&[4, 6]), None);
        assert!(ok.problem(&[6, 4]).unwrap().contains("4 x 6 view"));
        let with = |cells: Vec<u32>| StoredCells { tiling, cells };
        assert!(with(vec![]).problem(&[4, 6]).unwrap().contains("no cell"));
        assert!(
            with(vec![2, 2])
                .problem(&[4, 6])
                .unwrap()
                .contains("ascending")
        );
        assert!(
            with(vec![3, 1])
                .problem(&[4, 6])
                .unwrap()
                .contains("ascending")
        );
        assert!(with(vec![6]).problem(&[4, 6]).unwrap().contains("cell 6"));
    }
}
