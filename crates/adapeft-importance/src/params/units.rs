//! Groups below the tensor: output neurons, input rows, attention heads and blocks
//! (`docs/algorithm.md`, section 8).
//!
//! A tensor that is cut into units is **tiled**: its 2-D view (a matrix as it is, a vector as
//! a column `[n, 1]`, a higher rank as `[product of the leading sizes, last size]`) is cut
//! into bands of `band_rows` rows and `band_cols` columns, the last band of each possibly
//! shorter; a [`Part`] is one cell of that grid. A group may hold whole tensors
//! ([`Group::members`]) and cells of tiled ones ([`Group::parts`]) alike, so units mix with
//! whole tensors in one selection. In burn's `[d_in, d_out]` layout of a linear weight, an
//! output neuron is a column and an input unit a row.
//!
//! [`UnitRules`] say which modules are cut into which [`Unit`]s, and [`Groups::split`] cuts
//! them out of the groups a [`Grouping`](crate::Grouping) made.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use burn::tensor::{Bool, Device, Tensor, TensorData};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::discover::ParamInfo;
use super::grouping::{Group, Groups};
use crate::error::GroupingError;

/// How one tensor is cut into cells: its 2-D view `[rows, cols]` in bands of `band_rows` rows
/// and `band_cols` columns (see the module docs). Cells are numbered row-major over the grid.
///
/// ```
/// use adapeft_importance::Tiling;
///
/// // A [4, 6] weight cut into its 6 columns (output neurons).
/// let t = Tiling::new(&[4, 6], 4, 1).unwrap();
/// assert_eq!(t.grid(), (1, 6));
/// assert_eq!(t.cell_numel(5), 4);
/// // Blocks of 3 x 4: the last row and column of blocks are smaller.
/// let t = Tiling::new(&[4, 6], 3, 4).unwrap();
/// assert_eq!(t.grid(), (2, 2));
/// assert_eq!(t.cell_rect(3), (3..4, 4..6));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiling {
    /// Rows of the 2-D view.
    pub rows: usize,
    /// Columns of the 2-D view.
    pub cols: usize,
    /// Rows per band (the last band may have fewer).
    pub band_rows: usize,
    /// Columns per band (the last band may have fewer).
    pub band_cols: usize,
}

impl Tiling {
    /// The tiling of a tensor of `shape` in bands of `band_rows` x `band_cols` of its 2-D
    /// view; `None` when a band size is 0 or larger than the view, or the tensor is empty.
    pub fn new(shape: &[usize], band_rows: usize, band_cols: usize) -> Option<Tiling> {
        let (rows, cols) = view(shape);
        let fits = |band: usize, len: usize| band >= 1 && band <= len;
        (fits(band_rows, rows) && fits(band_cols, cols)).then_some(Tiling {
            rows,
            cols,
            band_rows,
            band_cols,
        })
    }

    /// Whether this tiling cuts a tensor of `shape` (its 2-D view is `[rows, cols]`).
    pub fn fits(&self, shape: &[usize]) -> bool {
        view(shape) == (self.rows, self.cols)
    }

    /// The number of bands along the rows and along the columns.
    pub fn grid(&self) -> (usize, usize) {
        (
            self.rows.div_ceil(self.band_rows),
            self.cols.div_ceil(self.band_cols),
        )
    }

    /// The number of cells.
    pub fn cells(&self) -> usize {
        let (r, c) = self.grid();
        r * c
    }

    /// The rows and columns of the 2-D view that cell `cell` covers.
    ///
    /// # Panics
    /// If `cell` is not below [`Tiling::cells`].
    pub fn cell_rect(&self, cell: usize) -> (Range<usize>, Range<usize>) {
        assert!(cell < self.cells(), "cell {cell} of {}", self.cells());
        let (_, nc) = self.grid();
        let (i, j) = (cell / nc, cell % nc);
        let r0 = i * self.band_rows;
        let c0 = j * self.band_cols;
        (
            r0..(r0 + self.band_rows).min(self.rows),
            c0..(c0 + self.band_cols).min(self.cols),
        )
    }

    /// The number of elements of cell `cell`.
    pub fn cell_numel(&self, cell: usize) -> u64 {
        let (r, c) = self.cell_rect(cell);
        (r.len() * c.len()) as u64
    }

    /// `true` at every entry outside the cells `cells`, flattened row-major (the tensor's
    /// 2-D view), on `device`: the cell grid, broadcast over each cell's rows and columns and
    /// cut to the view (the last bands may be shorter).
    ///
    /// # Panics
    /// If a cell is not below [`Tiling::cells`].
    pub fn outside(&self, cells: &[u32], device: &Device) -> Tensor<1, Bool> {
        let (nr, nc) = self.grid();
        let mut grid = vec![true; nr * nc];
        for &c in cells {
            grid[c as usize] = false;
        }
        Tensor::<2, Bool>::from_data(TensorData::new(grid, [nr, nc]), device)
            .reshape([nr, 1, nc, 1])
            .expand([nr, self.band_rows, nc, self.band_cols])
            .reshape([nr * self.band_rows, nc * self.band_cols])
            .slice([0..self.rows, 0..self.cols])
            .reshape([self.rows * self.cols])
    }
}

/// The 2-D view `[rows, cols]` of a tensor of `shape` (see the module docs).
pub(crate) fn view(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, 1),
        [lead @ .., last] => (lead.iter().product(), *last),
    }
}

/// One cell of a tiled parameter: parameter `param` (an index into
/// [`Groups::params`]) and the cell's number in its [`Tiling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Part {
    /// Index into [`Groups::params`].
    pub param: u32,
    /// The cell, row-major over the tiling's grid.
    pub cell: u32,
}

/// What a [`UnitRules`] rule cuts a module into. The module is the one whose path the rule
/// matched; its `weight` is a rank-2 tensor in burn's `[d_in, d_out]` layout (a linear
/// layer's, or an embedding table `[tokens, d]`), and its `bias`, if any, has `d_out` entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// Output neurons: column `j` of the weight with bias entry `j`, one unit per output,
    /// named `<module>.out[j]`.
    Outputs,
    /// Input units: row `i` of the weight (for an embedding table, token `i`), named
    /// `<module>.in[i]`. The bias stays whole, in the group it was in.
    Inputs,
    /// Blocks of `rows` x `cols` of the weight (the last ones smaller where the sizes do not
    /// divide), named `<module>.block[i,j]`. The bias stays whole.
    Blocks {
        /// Rows per block.
        rows: usize,
        /// Columns per block.
        cols: usize,
    },
    /// Attention heads: the rule matches an attention block, and head `h` is the `h`-th of
    /// `heads` equal column bands of each projection in `outputs` (query, key and value, with
    /// their bias bands) and the `h`-th row band of each projection in `inputs` (the output
    /// projection, whose bias stays whole), named `<block>.head[h]`. Projections are given by
    /// their paths relative to the block (`self.query`).
    Heads {
        /// The number of heads; it must divide every projection's cut dimension.
        heads: usize,
        /// Projections whose outputs are split by head.
        outputs: Vec<String>,
        /// Projections whose inputs are split by head.
        inputs: Vec<String>,
    },
}

/// Which modules [`Groups::split`] cuts into which [`Unit`]s: regular expressions over the
/// module path (the parameter path without its last segment), tried in order; a tensor is cut
/// by the first rule that reaches it, and every rule must match at least one module.
///
/// ```
/// use adapeft_importance::{discover, Grouping, Unit, UnitRules};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::module::Module;
/// use burn::tensor::Device;
///
/// #[derive(Module, Debug)]
/// struct Net {
///     hidden: Linear,
///     out: Linear,
/// }
/// let device = Device::flex();
/// let net = Net {
///     hidden: LinearConfig::new(4, 3).init(&device),
///     out: LinearConfig::new(3, 2).init(&device),
/// };
/// let groups = Grouping::PerTensor.group(discover(&net)).unwrap();
/// let rules = UnitRules::new().with(r"^hidden$", Unit::Outputs).unwrap();
/// let units = groups.split(&rules).unwrap();
/// let names: Vec<_> = units.groups().iter().map(|g| g.name.as_str()).collect();
/// assert_eq!(names, ["out.weight", "out.bias", "hidden.out[0]", "hidden.out[1]", "hidden.out[2]"]);
/// // An output neuron: its column of the [4, 3] weight and its bias entry.
/// assert_eq!(units.groups()[2].numel, 4 + 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct UnitRules {
    rules: Vec<(Regex, Unit)>,
}

impl UnitRules {
    /// No rule: [`Groups::split`] changes nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule, tried after the ones already there.
    ///
    /// # Errors
    /// [`GroupingError::InvalidRegex`] for a pattern that does not compile, and
    /// [`GroupingError::InvalidUnit`] for a unit of zero size (no heads, an empty block).
    pub fn with(mut self, pattern: &str, unit: Unit) -> Result<Self, GroupingError> {
        let regex = Regex::new(pattern).map_err(|e| GroupingError::InvalidRegex {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        let invalid = |reason: &str| {
            Err(GroupingError::InvalidUnit {
                pattern: pattern.to_string(),
                reason: reason.to_string(),
            })
        };
        match &unit {
            Unit::Blocks { rows, cols } if *rows == 0 || *cols == 0 => {
                return invalid("a block needs at least one row and one column");
            }
            Unit::Heads { heads: 0, .. } => return invalid("a head split needs at least one head"),
            Unit::Heads {
                outputs, inputs, ..
            } if outputs.is_empty() && inputs.is_empty() => {
                return invalid("a head split needs at least one projection");
            }
            _ => {}
        }
        self.rules.push((regex, unit));
        Ok(self)
    }

    /// True when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The rules in words, as a selection's settings record them: `` `^hidden$` -> Outputs``,
/// separated by `; `.
impl std::fmt::Display for UnitRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, (regex, unit)) in self.rules.iter().enumerate() {
            if k > 0 {
                f.write_str("; ")?;
            }
            write!(f, "`{}` -> {unit:?}", regex.as_str())?;
        }
        Ok(())
    }
}

/// One unit being built: its name and parts.
struct NewUnit {
    name: String,
    parts: Vec<Part>,
}

/// What [`Groups::split`] decides before touching any group.
struct Plan {
    tilings: Vec<Option<Tiling>>,
    units: Vec<NewUnit>,
}

impl Plan {
    /// Tiles `param` as `tiling`, unless a rule before already did (then `false`).
    fn tile(&mut self, param: usize, tiling: Tiling) -> bool {
        if self.tilings[param].is_some() {
            return false;
        }
        self.tilings[param] = Some(tiling);
        true
    }
}

/// The module paths of `params` and of all their ancestors, in order of first appearance.
fn module_paths(params: &[ParamInfo]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in params {
        let mut prefix = p.module_path();
        let mut chain = Vec::new();
        while !prefix.is_empty() {
            chain.push(prefix.to_string());
            prefix = prefix.rsplit_once('.').map_or("", |(m, _)| m);
        }
        for m in chain.into_iter().rev() {
            if seen.insert(m.clone()) {
                out.push(m);
            }
        }
    }
    out
}

impl Groups {
    /// These groups with the modules `rules` match cut into units (see [`UnitRules`] and
    /// [`Unit`]): each cut tensor leaves the group it was in (a group left empty is dropped,
    /// the others keep their order), and the units follow the remaining groups, in the order
    /// of the rules' matches in the model. A unit takes the learning rate of the group its
    /// first tensor was in ([`Groups::with_learning_rate`]). A tensor that is in no group is
    /// not cut.
    ///
    /// # Errors
    /// [`GroupingError::InvalidUnit`] naming the rule and the module when a rule matches no
    /// module or cuts nothing (no matched module has a rank-2 `weight` in some group that no
    /// earlier rule cut), a matched `weight` is not of rank 2, a bias does not have the
    /// weight's outputs, a head split names a projection the block does not have, or the
    /// heads do not divide a projection.
    pub fn split(&self, rules: &UnitRules) -> Result<Groups, GroupingError> {
        if rules.is_empty() {
            return Ok(self.clone());
        }
        let params = self.params();
        let index: BTreeMap<&str, usize> = params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.path.as_str(), i))
            .collect();
        let owner = self.group_of_params();
        let grouped = |path: &str| index.get(path).copied().filter(|&i| owner[i].is_some());
        let modules = module_paths(params);
        let mut plan = Plan {
            tilings: self.tilings().to_vec(),
            units: Vec::new(),
        };
        for (regex, unit) in &rules.rules {
            let fail = |module: &str, reason: String| GroupingError::InvalidUnit {
                pattern: regex.as_str().to_string(),
                reason: format!("module `{module}`: {reason}"),
            };
            let matched: Vec<&String> = modules.iter().filter(|m| regex.is_match(m)).collect();
            if matched.is_empty() {
                return Err(GroupingError::InvalidUnit {
                    pattern: regex.as_str().to_string(),
                    reason: "it matches no module of the model".to_string(),
                });
            }
            let units_before = plan.units.len();
            let modules_matched = matched.len();
            for module in matched {
                // The weight and bias of a linear module, or of a projection of a block.
                let linear =
                    |module: &str| -> Result<Option<(usize, Option<usize>)>, GroupingError> {
                        let weight = index.get(format!("{module}.weight").as_str()).copied();
                        let Some(w) = weight else {
                            return Ok(None);
                        };
                        if params[w].shape.len() != 2 {
                            return Err(fail(
                                module,
                                format!(
                                    "its weight has shape {:?}, not [d_in, d_out]",
                                    params[w].shape
                                ),
                            ));
                        }
                        let bias = index.get(format!("{module}.bias").as_str()).copied();
                        if let Some(b) = bias
                            && params[b].shape != [params[w].shape[1]]
                        {
                            return Err(fail(
                                module,
                                format!(
                                    "its bias has shape {:?}, the weight {:?}",
                                    params[b].shape, params[w].shape
                                ),
                            ));
                        }
                        Ok(Some((w, bias)))
                    };
                match unit {
                    Unit::Heads {
                        heads,
                        outputs,
                        inputs,
                    } => {
                        let mut parts: Vec<Vec<Part>> = vec![Vec::new(); *heads];
                        for (projections, by_output) in [(outputs, true), (inputs, false)] {
                            for rel in projections {
                                let path = format!("{module}.{rel}");
                                let Some((w, bias)) = linear(&path)? else {
                                    return Err(fail(
                                        &path,
                                        "no such projection with a `weight`".into(),
                                    ));
                                };
                                let [d_in, d_out] = [params[w].shape[0], params[w].shape[1]];
                                let cut = if by_output { d_out } else { d_in };
                                if cut % heads != 0 {
                                    return Err(fail(
                                        &path,
                                        format!(
                                            "{heads} heads do not divide its {} {cut}",
                                            if by_output { "outputs" } else { "inputs" }
                                        ),
                                    ));
                                }
                                let band = cut / heads;
                                if grouped(&params[w].path).is_none() {
                                    continue;
                                }
                                let tiling = if by_output {
                                    Tiling::new(&params[w].shape, d_in, band)
                                } else {
                                    Tiling::new(&params[w].shape, band, d_out)
                                }
                                .expect("bands within the view");
                                if !plan.tile(w, tiling) {
                                    continue;
                                }
                                for (h, p) in parts.iter_mut().enumerate() {
                                    p.push(Part {
                                        param: w as u32,
                                        cell: h as u32,
                                    });
                                }
                                if let Some(b) = bias
                                    .filter(|&b| by_output && grouped(&params[b].path).is_some())
                                {
                                    let tiling = Tiling::new(&params[b].shape, band, 1)
                                        .expect("bands within the view");
                                    if plan.tile(b, tiling) {
                                        for (h, p) in parts.iter_mut().enumerate() {
                                            p.push(Part {
                                                param: b as u32,
                                                cell: h as u32,
                                            });
                                        }
                                    }
                                }
                            }
                        }
                        for (h, parts) in parts.into_iter().enumerate() {
                            if !parts.is_empty() {
                                plan.units.push(NewUnit {
                                    name: format!("{module}.head[{h}]"),
                                    parts,
                                });
                            }
                        }
                    }
                    Unit::Outputs | Unit::Inputs | Unit::Blocks { .. } => {
                        let Some((w, bias)) = linear(module)? else {
                            // An ancestor of other modules (`layers.0`), not a layer: a rule
                            // meant for layers may match those too.
                            continue;
                        };
                        if grouped(&params[w].path).is_none() {
                            continue;
                        }
                        let shape = &params[w].shape;
                        let (d_in, d_out) = (shape[0], shape[1]);
                        let (tiling, kind) = match unit {
                            Unit::Outputs => (Tiling::new(shape, d_in, 1), "out"),
                            Unit::Inputs => (Tiling::new(shape, 1, d_out), "in"),
                            Unit::Blocks { rows, cols } => (
                                Tiling::new(shape, (*rows).min(d_in), (*cols).min(d_out)),
                                "block",
                            ),
                            Unit::Heads { .. } => unreachable!("matched above"),
                        };
                        let tiling = tiling.expect("bands within the view");
                        if !plan.tile(w, tiling) {
                            continue;
                        }
                        let bias = bias.filter(|&b| {
                            matches!(unit, Unit::Outputs)
                                && grouped(&params[b].path).is_some()
                                && plan
                                    .tile(b, Tiling::new(&params[b].shape, 1, 1).expect("a vector"))
                        });
                        let (_, nc) = tiling.grid();
                        for cell in 0..tiling.cells() {
                            let name = match unit {
                                Unit::Blocks { .. } => {
                                    format!("{module}.block[{},{}]", cell / nc, cell % nc)
                                }
                                _ => format!("{module}.{kind}[{cell}]"),
                            };
                            let mut parts = vec![Part {
                                param: w as u32,
                                cell: cell as u32,
                            }];
                            if let Some(b) = bias {
                                parts.push(Part {
                                    param: b as u32,
                                    cell: cell as u32,
                                });
                            }
                            plan.units.push(NewUnit { name, parts });
                        }
                    }
                }
            }
            if plan.units.len() == units_before {
                return Err(GroupingError::InvalidUnit {
                    pattern: regex.as_str().to_string(),
                    reason: format!(
                        "it matches {modules_matched} module(s) but cuts nothing: none has a rank-2 `weight` in a group that no earlier rule cut"
                    ),
                });
            }
        }
        self.with_units(plan, &owner)
    }

    /// Applies a plan: the tiled tensors leave their groups, the units are appended.
    fn with_units(&self, plan: Plan, owner: &[Option<usize>]) -> Result<Groups, GroupingError> {
        let Plan { tilings, units } = plan;
        let newly_tiled = |m: usize| tilings[m].is_some() && self.tilings()[m].is_none();
        let mut groups = Vec::new();
        let mut rates = Vec::new();
        for (g, group) in self.groups().iter().enumerate() {
            let members: Vec<usize> = group
                .members
                .iter()
                .copied()
                .filter(|&m| !newly_tiled(m))
                .collect();
            if members.is_empty() && group.parts.is_empty() {
                continue;
            }
            let numel = members.iter().map(|&m| self.params()[m].numel).sum::<u64>()
                + group.parts.iter().map(|p| self.part_numel(*p)).sum::<u64>();
            groups.push(Group {
                name: group.name.clone(),
                members,
                parts: group.parts.clone(),
                numel,
            });
            rates.push(self.learning_rate(g));
        }
        for unit in units {
            let first = unit.parts[0].param as usize;
            rates.push(owner[first].and_then(|g| self.learning_rate(g)));
            let numel = unit
                .parts
                .iter()
                .map(|p| {
                    tilings[p.param as usize]
                        .expect("tiled")
                        .cell_numel(p.cell as usize)
                })
                .sum();
            groups.push(Group {
                name: unit.name,
                members: Vec::new(),
                parts: unit.parts,
                numel,
            });
        }
        let mut out = Groups::new_tiled(self.params().to_vec(), tilings, groups)?;
        for (g, rate) in rates.into_iter().enumerate() {
            if let Some(rate) = rate {
                out = out.with_learning_rate(g, rate);
            }
        }
        Ok(out)
    }
}
