//! Groupings: how the parameters of a model are split into the disjoint groups that AdaPEFT
//! scores and selects.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::ParamGroup;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::discover::ParamInfo;
use super::units::{Part, Tiling};
use crate::error::GroupingError;

/// A named, disjoint set of parameters: the unit AdaPEFT trains or freezes as a whole.
///
/// It holds whole tensors ([`Group::members`]) and cells of tiled ones ([`Group::parts`]: an
/// output neuron, an attention head, a block; see [`Groups::split`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Name of the group (a tensor path, a module path, a kind, `hidden.out[3]`, ...).
    pub name: String,
    /// Whole tensors: indices into [`Groups::params`].
    pub members: Vec<usize>,
    /// Cells of tiled tensors (empty unless the groups were [`Groups::split`]).
    pub parts: Vec<Part>,
    /// Total number of elements of the members and parts.
    pub numel: u64,
}

/// The parameters of a model and their partition into groups.
///
/// Built by [`Grouping::group`], or checked by [`Groups::new`] from groups made elsewhere;
/// [`Groups::subset`] and [`Groups::retain`] keep some of the groups. Every parameter
/// belongs to at most one group, every group has at least one member and its `numel` is its
/// members' total; parameters in no group (see [`Unmatched::Exclude`]) are never perturbed and
/// never selected. Read it through [`Groups::params`] and [`Groups::groups`]; build one with a
/// [`Grouping`], or with [`Groups::new`], which checks what it is given.
///
/// ```
/// use adapeft_importance::{discover, Grouping, Groups};
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// let model = LinearConfig::new(3, 2).init(&Device::flex());
/// let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
/// // The bias alone, as a group set of its own, checked.
/// let bias = groups.subset(&[1]);
/// assert_eq!(bias.groups()[0].name, "bias");
/// assert_eq!(Groups::new(bias.params().to_vec(), bias.groups().to_vec()), Ok(bias));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Every float parameter of the model, as [`crate::discover`] returned them.
    pub(crate) params: Vec<ParamInfo>,
    /// The groups, in order of first appearance in the model.
    pub(crate) groups: Vec<Group>,
    /// Each parameter's tiling when it is cut into cells ([`Group::parts`] index them), one
    /// entry per parameter.
    tilings: Vec<Option<Tiling>>,
    /// Each group's own learning rate in the runs of run-based estimators (`None`: the
    /// estimator's), one entry per group.
    learning_rates: Vec<Option<f64>>,
}

impl Groups {
    /// Groups of `params` made by the caller, checked: every member index is in range, no
    /// parameter is in two groups (or twice in one), no group is empty, and each group's
    /// `numel` is the sum of its members' `numel`. The groups keep the given order.
    ///
    /// # Errors
    /// [`GroupingError::MemberOutOfRange`], [`GroupingError::Overlap`],
    /// [`GroupingError::RepeatedMember`], [`GroupingError::EmptyGroup`] or
    /// [`GroupingError::Numel`], each naming the first group at fault.
    pub fn new(params: Vec<ParamInfo>, groups: Vec<Group>) -> Result<Self, GroupingError> {
        let tilings = vec![None; params.len()];
        Groups::new_tiled(params, tilings, groups)
    }

    /// [`Groups::new`] for groups that may hold cells of tiled tensors: `tilings` has one
    /// entry per parameter. Also checked: each part is a cell of a tiled parameter, no cell is
    /// in two groups (or twice in one), no tiled parameter is also a whole member, and the
    /// `numel` counts each part's cell.
    ///
    /// # Errors
    /// As [`Groups::new`]; a part outside its tensor's cells, or of an untiled tensor, is
    /// [`GroupingError::InvalidPart`]; a cell in two groups [`GroupingError::Overlap`] (or
    /// [`GroupingError::RepeatedMember`]), naming the tensor and the cell; `tilings` of the
    /// wrong length [`GroupingError::InvalidPart`].
    pub fn new_tiled(
        params: Vec<ParamInfo>,
        tilings: Vec<Option<Tiling>>,
        groups: Vec<Group>,
    ) -> Result<Self, GroupingError> {
        if tilings.len() != params.len() {
            return Err(GroupingError::InvalidPart {
                group: String::new(),
                reason: format!("{} tilings for {} parameters", tilings.len(), params.len()),
            });
        }
        for (p, t) in params.iter().zip(&tilings) {
            if let Some(t) = t
                && !t.fits(&p.shape)
            {
                return Err(GroupingError::InvalidPart {
                    group: String::new(),
                    reason: format!(
                        "tensor `{}` of shape {:?} has a tiling of a [{}, {}] view",
                        p.path, p.shape, t.rows, t.cols
                    ),
                });
            }
        }
        let mut owner: Vec<Option<usize>> = vec![None; params.len()];
        let mut cell_owner: BTreeMap<Part, usize> = BTreeMap::new();
        for (g, group) in groups.iter().enumerate() {
            if group.members.is_empty() && group.parts.is_empty() {
                return Err(GroupingError::EmptyGroup {
                    group: group.name.clone(),
                });
            }
            let mut actual = 0;
            for &m in &group.members {
                let Some(slot) = owner.get_mut(m) else {
                    return Err(GroupingError::MemberOutOfRange {
                        group: group.name.clone(),
                        member: m,
                        params: params.len(),
                    });
                };
                if tilings[m].is_some() {
                    return Err(GroupingError::InvalidPart {
                        group: group.name.clone(),
                        reason: format!(
                            "tensor `{}` is tiled, so it can only be in groups by its cells",
                            params[m].path
                        ),
                    });
                }
                match *slot {
                    Some(first) if first == g => {
                        return Err(GroupingError::RepeatedMember {
                            group: group.name.clone(),
                            param: params[m].path.clone(),
                        });
                    }
                    Some(first) => {
                        return Err(GroupingError::Overlap {
                            param: params[m].path.clone(),
                            first: groups[first].name.clone(),
                            second: group.name.clone(),
                        });
                    }
                    None => *slot = Some(g),
                }
                actual += params[m].numel;
            }
            for &part in &group.parts {
                let tiling = tilings.get(part.param as usize).copied().flatten();
                let Some(tiling) = tiling.filter(|t| (part.cell as usize) < t.cells()) else {
                    return Err(GroupingError::InvalidPart {
                        group: group.name.clone(),
                        reason: match params.get(part.param as usize) {
                            None => format!(
                                "parameter {} out of range: there are {}",
                                part.param,
                                params.len()
                            ),
                            Some(p) => format!(
                                "cell {} of tensor `{}`, which is not tiled or has fewer cells",
                                part.cell, p.path
                            ),
                        },
                    });
                };
                let cell = || format!("{}[cell {}]", params[part.param as usize].path, part.cell);
                match cell_owner.insert(part, g) {
                    Some(first) if first == g => {
                        return Err(GroupingError::RepeatedMember {
                            group: group.name.clone(),
                            param: cell(),
                        });
                    }
                    Some(first) => {
                        return Err(GroupingError::Overlap {
                            param: cell(),
                            first: groups[first].name.clone(),
                            second: group.name.clone(),
                        });
                    }
                    None => {}
                }
                actual += tiling.cell_numel(part.cell as usize);
            }
            if actual != group.numel {
                return Err(GroupingError::Numel {
                    group: group.name.clone(),
                    stated: group.numel,
                    actual,
                });
            }
        }
        let learning_rates = vec![None; groups.len()];
        Ok(Groups {
            params,
            groups,
            tilings,
            learning_rates,
        })
    }

    /// Every float parameter of the model, grouped or not; [`Group::members`] index it.
    pub fn params(&self) -> &[ParamInfo] {
        &self.params
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Group `g` trains at `rate` in the runs of run-based estimators
    /// ([`ShortRun`](crate::ShortRun), [`ProbeRun`](crate::ProbeRun)) instead of the
    /// estimator's own rate: a new head trained at `1e-2` beside an encoder at `1e-4`, say.
    /// The other estimators take no steps and ignore it.
    ///
    /// # Panics
    /// If `g` is out of range, or `rate` is not finite and positive (both are the caller's
    /// own values).
    pub fn with_learning_rate(mut self, g: usize, rate: f64) -> Self {
        assert!(
            g < self.groups.len(),
            "group index {g} out of range: there are {} groups",
            self.groups.len()
        );
        assert!(
            rate.is_finite() && rate > 0.0,
            "a learning rate must be finite and positive, got {rate}"
        );
        self.learning_rates[g] = Some(rate);
        self
    }

    /// Group `g`'s own learning rate ([`Groups::with_learning_rate`]), if it has one.
    pub fn learning_rate(&self, g: usize) -> Option<f64> {
        self.learning_rates.get(g).copied().flatten()
    }

    /// The same parameters with only the groups at indices `keep`, in that order (for
    /// scoring a few candidates, say).
    ///
    /// # Panics
    /// If an index is out of range or given twice: the indices are this value's own, so
    /// either is a bug of the caller, and a repeated group would break disjointness.
    pub fn subset(&self, keep: &[usize]) -> Groups {
        let mut taken = vec![false; self.groups.len()];
        let groups = keep
            .iter()
            .map(|&g| {
                assert!(
                    g < self.groups.len(),
                    "group index {g} out of range: there are {} groups",
                    self.groups.len()
                );
                assert!(!taken[g], "group index {g} given twice");
                taken[g] = true;
                (self.groups[g].clone(), self.learning_rates[g])
            })
            .collect::<Vec<_>>();
        let (groups, learning_rates) = groups.into_iter().unzip();
        Groups {
            params: self.params.clone(),
            groups,
            tilings: self.tilings.clone(),
            learning_rates,
        }
    }

    /// Keeps only the groups for which `keep(group, params)` is true, in their order; the
    /// parameters stay (`params` is [`Groups::params`], what the members index).
    pub fn retain(&mut self, mut keep: impl FnMut(&Group, &[ParamInfo]) -> bool) {
        let params = &self.params;
        let kept: Vec<bool> = self.groups.iter().map(|g| keep(g, params)).collect();
        let mut flags = kept.iter();
        self.groups
            .retain(|_| *flags.next().expect("one flag per group"));
        let mut flags = kept.iter();
        self.learning_rates
            .retain(|_| *flags.next().expect("one flag per group"));
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True when there is no group.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Total number of elements over all the model's float parameters (grouped or not).
    pub fn total_params(&self) -> u64 {
        self.params.iter().map(|p| p.numel).sum()
    }

    /// Each parameter's tiling, if it is cut into cells (one entry per parameter).
    pub fn tilings(&self) -> &[Option<Tiling>] {
        &self.tilings
    }

    /// True when some parameter is cut into cells (the groups were [`Groups::split`]).
    pub fn has_parts(&self) -> bool {
        self.groups.iter().any(|g| !g.parts.is_empty())
    }

    /// The number of elements of one part.
    pub fn part_numel(&self, part: Part) -> u64 {
        self.tilings[part.param as usize]
            .expect("a part of a tiled parameter")
            .cell_numel(part.cell as usize)
    }

    /// Whether each parameter takes part in some group, whole or by some of its cells.
    pub fn grouped_params(&self) -> Vec<bool> {
        let mut grouped: Vec<bool> = self.group_of_params().iter().map(Option::is_some).collect();
        for part in self.groups.iter().flat_map(|g| &g.parts) {
            grouped[part.param as usize] = true;
        }
        grouped
    }

    /// For each tiled parameter some of whose cells are in no group (after
    /// [`Groups::subset`] or [`Groups::retain`]), its tiling and the cells that are, ascending;
    /// `None` for every other parameter. A run that trains these groups must leave the other
    /// cells alone.
    pub(crate) fn partly_grouped(&self) -> Vec<Option<(Tiling, Vec<u32>)>> {
        let mut cells: Vec<Vec<u32>> = vec![Vec::new(); self.params.len()];
        for part in self.groups.iter().flat_map(|g| &g.parts) {
            cells[part.param as usize].push(part.cell);
        }
        cells
            .into_iter()
            .zip(&self.tilings)
            .map(|(mut cells, tiling)| {
                let tiling = (*tiling)?;
                cells.sort_unstable();
                cells.dedup();
                (!cells.is_empty() && cells.len() < tiling.cells()).then_some((tiling, cells))
            })
            .collect()
    }

    /// The group of each parameter's first cell in group order, for a tiled one (`None` when
    /// untiled or in no group).
    pub(crate) fn first_part_owner(&self) -> Vec<Option<usize>> {
        let mut of = vec![None; self.params.len()];
        for (g, group) in self.groups.iter().enumerate() {
            for part in &group.parts {
                of[part.param as usize].get_or_insert(g);
            }
        }
        of
    }

    /// The group index of every parameter that is a whole member of one (`None` when the
    /// parameter is in no group, or tiled: see [`Groups::grouped_params`]).
    pub fn group_of_params(&self) -> Vec<Option<usize>> {
        let mut of = vec![None; self.params.len()];
        for (g, group) in self.groups.iter().enumerate() {
            for &m in &group.members {
                of[m] = Some(g);
            }
        }
        of
    }

    /// The parameters of group `g` as a burn [`ParamGroup`] (matched by [`burn::module::ParamId`]):
    /// its members, and the tensors its parts are cells of.
    pub fn param_group(&self, g: usize) -> ParamGroup {
        let group = &self.groups[g];
        let mut ids: Vec<_> = group.members.iter().map(|&m| self.params[m].id).collect();
        for part in &group.parts {
            let id = self.params[part.param as usize].id;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ParamGroup::from_ids(ids)
    }

    /// Builds groups from `(name, member indices)` pairs, in the given order, dropping empty ones.
    fn from_assignment(params: Vec<ParamInfo>, assignment: Vec<Option<String>>) -> Self {
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for (i, name) in assignment.into_iter().enumerate() {
            let Some(name) = name else { continue };
            let g = *index.entry(name.clone()).or_insert_with(|| {
                groups.push(Group {
                    name,
                    members: Vec::new(),
                    parts: Vec::new(),
                    numel: 0,
                });
                groups.len() - 1
            });
            groups[g].members.push(i);
            groups[g].numel += params[i].numel;
        }
        let learning_rates = vec![None; groups.len()];
        let tilings = vec![None; params.len()];
        Groups {
            params,
            groups,
            tilings,
            learning_rates,
        }
    }
}

/// What happens to parameters that a [`Grouping::Regex`] or [`Grouping::Custom`] does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Unmatched {
    /// They form one extra group named `other` (the default), so the knapsack can still pick them.
    #[default]
    Other,
    /// They are left out: never scored, never trained.
    Exclude,
}

/// How parameters are split into groups.
///
/// Every grouping keeps the two factors of a LoRA adapter (attached with burn's
/// `Module::apply_lora`, paths `<base>.lora.a` and `<base>.lora.b`) together, so an adapter is
/// one candidate that competes in the knapsack with plain tensors (including its own base
/// weight, which stays a candidate for full training).
#[derive(Debug, Clone, Default)]
pub enum Grouping {
    /// One group per tensor, named by its path (the default). A LoRA adapter is one group named
    /// `<base>.lora`.
    #[default]
    PerTensor,
    /// One group per module: the path without its last segment (`layers.0.mha.query` holds its
    /// `weight` and `bias`). A LoRA adapter is its own group `<base>.lora`. Top-level tensors
    /// form the group named by their own path.
    PerModule,
    /// One group per [`ParamKind`], assigned by [`KindRules`].
    ByKind(KindRules),
    /// Regular expressions over the path, tried in order; the first that matches names the
    /// parameter's group by the text it matched. `^layers\.\d+` groups by layer
    /// (`layers.0`, `layers.1`, ...), `bias$` puts every bias in one group `bias`.
    Regex {
        /// The patterns, in priority order.
        patterns: Vec<String>,
        /// What to do with the parameters no pattern matches.
        unmatched: Unmatched,
    },
    /// Named burn [`ParamGroup`]s (matched by id or path). They must not overlap.
    Custom {
        /// `(name, group)` pairs.
        groups: Vec<(String, ParamGroup)>,
        /// What to do with the parameters no group matches.
        unmatched: Unmatched,
    },
}

/// `per-tensor`, `per-module`, `by-kind`, `regex [..]`, `custom [names]`: what a selection
/// records of its grouping (a custom grouping's `ParamGroup`s and the compiled rules of
/// [`KindRules`] have no serialised form).
impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grouping::PerTensor => f.write_str("per-tensor"),
            Grouping::PerModule => f.write_str("per-module"),
            Grouping::ByKind(_) => f.write_str("by-kind"),
            Grouping::Regex { patterns, .. } => write!(f, "regex {patterns:?}"),
            Grouping::Custom { groups, .. } => {
                let names: Vec<&str> = groups.iter().map(|(n, _)| n.as_str()).collect();
                write!(f, "custom [{}]", names.join(", "))
            }
        }
    }
}

impl Grouping {
    /// A [`Grouping::Regex`] whose unmatched parameters form the `other` group.
    pub fn regex<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Grouping::Regex {
            patterns: patterns.into_iter().map(Into::into).collect(),
            unmatched: Unmatched::Other,
        }
    }

    /// A [`Grouping::Custom`] whose unmatched parameters form the `other` group.
    pub fn custom<S: Into<String>>(groups: impl IntoIterator<Item = (S, ParamGroup)>) -> Self {
        Grouping::Custom {
            groups: groups.into_iter().map(|(n, g)| (n.into(), g)).collect(),
            unmatched: Unmatched::Other,
        }
    }

    /// [`Grouping::ByKind`] with the default rules.
    pub fn by_kind() -> Self {
        Grouping::ByKind(KindRules::default())
    }

    /// Splits `params` (from [`crate::discover`]) into groups.
    ///
    /// # Errors
    /// An invalid regular expression, or two custom groups that both match a parameter.
    ///
    /// ```
    /// use adapeft_importance::{discover, Grouping};
    /// use burn::nn::LinearConfig;
    /// use burn::tensor::Device;
    ///
    /// let model = LinearConfig::new(3, 2).init(&Device::flex());
    /// let groups = Grouping::regex(["bias$"]).group(discover(&model)).unwrap();
    /// let names: Vec<_> = groups.groups().iter().map(|g| g.name.as_str()).collect();
    /// assert_eq!(names, ["other", "bias"]);
    /// ```
    pub fn group(&self, params: Vec<ParamInfo>) -> Result<Groups, GroupingError> {
        let assignment: Vec<Option<String>> = match self {
            Grouping::PerTensor => params
                .iter()
                .map(|p| {
                    Some(match &p.lora_of {
                        Some(base) => format!("{base}.lora"),
                        None => p.path.clone(),
                    })
                })
                .collect(),
            Grouping::PerModule => params
                .iter()
                .map(|p| {
                    Some(match &p.lora_of {
                        Some(base) => format!("{base}.lora"),
                        None if p.module_path().is_empty() => p.path.clone(),
                        None => p.module_path().to_string(),
                    })
                })
                .collect(),
            Grouping::ByKind(rules) => params
                .iter()
                .map(|p| Some(rules.kind_of(p).name().to_string()))
                .collect(),
            Grouping::Regex {
                patterns,
                unmatched,
            } => {
                let regexes = patterns
                    .iter()
                    .map(|p| {
                        Regex::new(p).map_err(|e| GroupingError::InvalidRegex {
                            pattern: p.clone(),
                            reason: e.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                params
                    .iter()
                    .map(|p| {
                        regexes
                            .iter()
                            .find_map(|r| r.find(&p.path).map(|m| m.as_str().to_string()))
                            .or_else(|| unmatched_name(*unmatched))
                    })
                    .collect()
            }
            Grouping::Custom { groups, unmatched } => {
                let mut out = Vec::with_capacity(params.len());
                for p in &params {
                    let mut found: Option<&str> = None;
                    for (name, group) in groups {
                        if group.matches(&p.id, Some(&p.path)) {
                            if let Some(first) = found {
                                return Err(GroupingError::Overlap {
                                    param: p.path.clone(),
                                    first: first.to_string(),
                                    second: name.clone(),
                                });
                            }
                            found = Some(name);
                        }
                    }
                    out.push(
                        found
                            .map(str::to_string)
                            .or_else(|| unmatched_name(*unmatched)),
                    );
                }
                out
            }
        };
        Ok(Groups::from_assignment(params, assignment))
    }
}

fn unmatched_name(unmatched: Unmatched) -> Option<String> {
    match unmatched {
        Unmatched::Other => Some("other".to_string()),
        Unmatched::Exclude => None,
    }
}

/// The kind of a parameter, as [`KindRules`] classify it. The fixed-rule PEFT methods map to
/// kinds: BitFit trains [`ParamKind::Bias`], LayerNorm tuning [`ParamKind::Norm`], linear probing
/// [`ParamKind::Head`], LoRA [`ParamKind::Lora`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ParamKind {
    /// LoRA adapter factors.
    Lora,
    /// Normalisation scales and shifts (LayerNorm, BatchNorm, RMSNorm, ...).
    Norm,
    /// Biases of linear and convolution layers.
    Bias,
    /// Embedding tables.
    Embedding,
    /// The output head.
    Head,
    /// Attention projections.
    Attention,
    /// Feed-forward (MLP) blocks.
    FeedForward,
    /// Anything else.
    Other,
}

impl ParamKind {
    /// The group name used by [`Grouping::ByKind`].
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Lora => "lora",
            ParamKind::Norm => "norm",
            ParamKind::Bias => "bias",
            ParamKind::Embedding => "embedding",
            ParamKind::Head => "head",
            ParamKind::Attention => "attention",
            ParamKind::FeedForward => "feed-forward",
            ParamKind::Other => "other",
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ordered rules that assign a [`ParamKind`] to a parameter from its path; the first rule whose
/// regular expression matches the path wins, and a parameter no rule matches is
/// [`ParamKind::Other`].
///
/// The default rules, in order (patterns are matched against the dotted path, case-insensitively):
///
/// | kind | matches | example |
/// |---|---|---|
/// | lora | `.lora.a` / `.lora.b` at the end | `fc.weight.lora.a` |
/// | norm | a segment named like a normalisation layer (`norm`, `norm_1`, `ln_f`, `layer_norm`, `bn2`, ...) | `layers.0.norm_1.gamma` |
/// | bias | the last segment is `bias` | `layers.0.mha.query.bias` |
/// | embedding | a segment containing `embed` | `embedding.weight` |
/// | head | the first segment is `head`, `lm_head`, `classifier`, `output` or `fc_out` | `head.weight` |
/// | attention | a segment containing `attn`, `attention` or `mha` | `layers.0.mha.query.weight` |
/// | feed-forward | a segment containing `ffn`, `pwff`, `mlp` or `feed_forward` | `layers.0.pwff.linear_inner.weight` |
///
/// Rules added with [`KindRules::with_rule`] are tried before the defaults.
#[derive(Debug, Clone)]
pub struct KindRules {
    rules: Vec<(ParamKind, Regex)>,
}

impl Default for KindRules {
    fn default() -> Self {
        let defaults = [
            (ParamKind::Lora, r"\.lora\.(a|b)$"),
            (
                ParamKind::Norm,
                r"(?i)(^|\.)([a-z_]*_)?(norm|ln|layernorm|layer_norm|batchnorm|batch_norm|rmsnorm|rms_norm|groupnorm|group_norm|bn)(_?[a-z0-9]+)?\.[^.]+$",
            ),
            (ParamKind::Bias, r"(^|\.)bias$"),
            (ParamKind::Embedding, r"(?i)(^|\.)[^.]*embed[^.]*\."),
            (
                ParamKind::Head,
                r"(?i)^(head|lm_head|classifier|output|fc_out)(\.|$)",
            ),
            (
                ParamKind::Attention,
                r"(?i)(^|\.)[^.]*(attn|attention|mha)[^.]*\.",
            ),
            (
                ParamKind::FeedForward,
                r"(?i)(^|\.)[^.]*(ffn|pwff|mlp|feed_forward)[^.]*\.",
            ),
        ];
        KindRules {
            rules: defaults
                .into_iter()
                .map(|(k, p)| (k, Regex::new(p).expect("default kind rules are valid")))
                .collect(),
        }
    }
}

impl KindRules {
    /// The default rules (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule tried before every rule already present: parameters whose path matches
    /// `pattern` are of kind `kind`.
    ///
    /// # Errors
    /// When `pattern` is not a valid regular expression.
    pub fn with_rule(mut self, kind: ParamKind, pattern: &str) -> Result<Self, GroupingError> {
        let regex = Regex::new(pattern).map_err(|e| GroupingError::InvalidRegex {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        self.rules.insert(0, (kind, regex));
        Ok(self)
    }

    /// The kind of one parameter.
    pub fn kind_of(&self, param: &ParamInfo) -> ParamKind {
        self.rules
            .iter()
            .find(|(_, r)| r.is_match(&param.path))
            .map(|(k, _)| *k)
            .unwrap_or(ParamKind::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::ParamId;

    fn param(path: &str, numel: u64) -> ParamInfo {
        let segs: Vec<&str> = path.split('.').collect();
        let n = segs.len();
        ParamInfo {
            path: path.to_string(),
            id: ParamId::new(),
            shape: vec![numel as usize],
            numel,
            require_grad: true,
            lora_of: (n >= 3 && segs[n - 2] == "lora").then(|| segs[..n - 2].join(".")),
        }
    }

    fn transformer_params() -> Vec<ParamInfo> {
        [
            "embedding.weight",
            "layers.0.mha.query.weight",
            "layers.0.mha.query.bias",
            "layers.0.mha.output.weight",
            "layers.0.pwff.linear_inner.weight",
            "layers.0.pwff.linear_inner.bias",
            "layers.0.norm_1.gamma",
            "layers.0.norm_1.beta",
            "layers.1.norm_2.gamma",
            "layers.0.mha.query.weight.lora.a",
            "layers.0.mha.query.weight.lora.b",
            "head.weight",
            "head.bias",
            "scale",
        ]
        .iter()
        .map(|p| param(p, 4))
        .collect()
    }

    fn names(groups: &Groups) -> Vec<&str> {
        groups.groups().iter().map(|g| g.name.as_str()).collect()
    }

    #[test]
    fn by_kind_default_rules_classify_transformer_paths() {
        let rules = KindRules::default();
        let kinds: Vec<ParamKind> = transformer_params()
            .iter()
            .map(|p| rules.kind_of(p))
            .collect();
        use ParamKind::*;
        assert_eq!(
            kinds,
            [
                Embedding,
                Attention,
                Bias,
                Attention,
                FeedForward,
                Bias,
                Norm,
                Norm,
                Norm,
                Lora,
                Lora,
                Head,
                Bias,
                Other
            ]
        );
    }

    #[test]
    fn kind_rules_can_be_overridden() {
        let rules = KindRules::default()
            .with_rule(ParamKind::Head, r"^scale$")
            .unwrap();
        assert_eq!(rules.kind_of(&param("scale", 1)), ParamKind::Head);
        assert!(matches!(
            KindRules::default().with_rule(ParamKind::Head, "("),
            Err(GroupingError::InvalidRegex { .. })
        ));
    }

    #[test]
    fn per_tensor_keeps_lora_factors_together() {
        let groups = Grouping::PerTensor.group(transformer_params()).unwrap();
        assert_eq!(groups.len(), 13);
        let lora = groups
            .groups()
            .iter()
            .find(|g| g.name == "layers.0.mha.query.weight.lora")
            .unwrap();
        assert_eq!(lora.members, [9, 10]);
        assert_eq!(lora.numel, 8);
    }

    #[test]
    fn per_module_drops_the_last_segment() {
        let groups = Grouping::PerModule.group(transformer_params()).unwrap();
        assert_eq!(
            names(&groups),
            [
                "embedding",
                "layers.0.mha.query",
                "layers.0.mha.output",
                "layers.0.pwff.linear_inner",
                "layers.0.norm_1",
                "layers.1.norm_2",
                "layers.0.mha.query.weight.lora",
                "head",
                "scale"
            ]
        );
    }

    #[test]
    fn regex_groups_by_matched_text_and_handles_unmatched() {
        let groups = Grouping::regex([r"^layers\.\d+", r"bias$"])
            .group(transformer_params())
            .unwrap();
        assert_eq!(names(&groups), ["other", "layers.0", "layers.1", "bias"]);
        let excluded = Grouping::Regex {
            patterns: vec![r"^layers\.\d+".into()],
            unmatched: Unmatched::Exclude,
        }
        .group(transformer_params())
        .unwrap();
        assert_eq!(names(&excluded), ["layers.0", "layers.1"]);
        // layers.0: 7 tensors and the 2 LoRA factors; layers.1: 1 tensor.
        let all: usize = excluded.groups().iter().map(|g| g.members.len()).sum();
        assert_eq!(all, 10);
    }

    #[test]
    fn invalid_regex_is_an_error_naming_the_pattern() {
        let err = Grouping::regex(["("])
            .group(transformer_params())
            .unwrap_err();
        assert!(err.to_string().contains("`(`"), "{err}");
    }

    #[test]
    fn custom_groups_and_their_overlap_error() {
        let params = transformer_params();
        let heads = ParamGroup::from_predicate("head");
        let biases = ParamGroup::from_regex(r"bias$").unwrap();
        let err = Grouping::custom([("head", heads.clone()), ("biases", biases.clone())])
            .group(params.clone())
            .unwrap_err();
        assert_eq!(
            err,
            GroupingError::Overlap {
                param: "head.bias".into(),
                first: "head".into(),
                second: "biases".into()
            }
        );
        assert!(err.to_string().contains("head.bias"));

        let by_id = ParamGroup::from_ids(vec![params[0].id]);
        let groups = Grouping::Custom {
            groups: vec![
                ("emb".into(), by_id),
                ("norms".into(), ParamGroup::from_predicate("norm")),
            ],
            unmatched: Unmatched::Exclude,
        }
        .group(params)
        .unwrap();
        assert_eq!(names(&groups), ["emb", "norms"]);
        assert_eq!(groups.groups()[1].members, [6, 7, 8]);
    }

    #[test]
    fn groups_are_disjoint_and_cover_everything_by_default() {
        for grouping in [
            Grouping::PerTensor,
            Grouping::PerModule,
            Grouping::by_kind(),
            Grouping::regex([r"^layers\.\d+"]),
        ] {
            let groups = grouping.group(transformer_params()).unwrap();
            let mut seen: Vec<usize> = groups
                .groups()
                .iter()
                .flat_map(|g| g.members.clone())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..14).collect::<Vec<_>>(), "{}", grouping);
            assert_eq!(
                groups.groups().iter().map(|g| g.numel).sum::<u64>(),
                groups.total_params()
            );
        }
    }

    fn group(name: &str, members: &[usize], numel: u64) -> Group {
        Group {
            name: name.to_string(),
            members: members.to_vec(),
            parts: Vec::new(),
            numel,
        }
    }

    #[test]
    fn new_accepts_what_a_grouping_builds_and_keeps_the_order() {
        for grouping in [
            Grouping::PerTensor,
            Grouping::PerModule,
            Grouping::by_kind(),
        ] {
            let built = grouping.group(transformer_params()).unwrap();
            let checked = Groups::new(built.params().to_vec(), built.groups().to_vec()).unwrap();
            assert_eq!(checked, built, "{grouping}");
        }
        // Any order and any subset of the parameters (the rest ungrouped).
        let params = transformer_params();
        let groups = Groups::new(
            params.clone(),
            vec![group("late", &[13, 0], 8), group("early", &[2], 4)],
        )
        .unwrap();
        assert_eq!(names(&groups), ["late", "early"]);
        let of = groups.group_of_params();
        assert_eq!(
            (of[13], of[0], of[2], of[1]),
            (Some(0), Some(0), Some(1), None)
        );
    }

    #[test]
    fn new_names_the_group_at_fault() {
        let params = transformer_params();
        let check = |groups: Vec<Group>| Groups::new(params.clone(), groups).unwrap_err();
        assert_eq!(
            check(vec![group("a", &[0], 4), group("b", &[14], 4)]),
            GroupingError::MemberOutOfRange {
                group: "b".into(),
                member: 14,
                params: 14
            }
        );
        assert_eq!(
            check(vec![group("a", &[0, 1], 8), group("b", &[2, 1], 8)]),
            GroupingError::Overlap {
                param: "layers.0.mha.query.weight".into(),
                first: "a".into(),
                second: "b".into()
            }
        );
        assert_eq!(
            check(vec![group("a", &[3, 3], 8)]),
            GroupingError::RepeatedMember {
                group: "a".into(),
                param: "layers.0.mha.output.weight".into()
            }
        );
        assert_eq!(
            check(vec![group("a", &[0], 4), group("none", &[], 0)]),
            GroupingError::EmptyGroup {
                group: "none".into()
            }
        );
        let err = check(vec![group("a", &[0, 1], 4)]);
        assert_eq!(
            err,
            GroupingError::Numel {
                group: "a".into(),
                stated: 4,
                actual: 8
            }
        );
        assert!(err.to_string().contains("`a`"), "{err}");
    }

    #[test]
    fn subset_keeps_the_params_and_the_chosen_groups_in_the_given_order() {
        let all = Grouping::PerModule.group(transformer_params()).unwrap();
        let some = all.subset(&[7, 0, 4]);
        assert_eq!(some.params(), all.params());
        assert_eq!(names(&some), ["head", "embedding", "layers.0.norm_1"]);
        assert_eq!(some.groups()[0], all.groups()[7]);
        // Still a valid set of groups.
        assert_eq!(
            Groups::new(some.params().to_vec(), some.groups().to_vec()).as_ref(),
            Ok(&some)
        );
        assert!(all.subset(&[]).is_empty());
    }

    #[test]
    fn own_learning_rates_follow_their_groups_through_subset_and_retain() {
        let all = Grouping::PerModule
            .group(transformer_params())
            .unwrap()
            .with_learning_rate(7, 0.5)
            .with_learning_rate(4, 0.25);
        let rates = |g: &Groups| -> Vec<(String, Option<f64>)> {
            (0..g.len())
                .map(|k| (g.groups()[k].name.clone(), g.learning_rate(k)))
                .collect()
        };
        let some = all.subset(&[7, 0, 4]);
        assert_eq!(
            rates(&some),
            [
                ("head".to_string(), Some(0.5)),
                ("embedding".to_string(), None),
                ("layers.0.norm_1".to_string(), Some(0.25)),
            ]
        );
        let mut kept = all.clone();
        kept.retain(|g, _| g.name != "embedding");
        let want: Vec<(String, Option<f64>)> = rates(&all)
            .into_iter()
            .filter(|(name, _)| name != "embedding")
            .collect();
        assert_eq!(rates(&kept), want);
        assert_eq!(kept.len() + 1, all.len());
    }

    #[test]
    #[should_panic(expected = "given twice")]
    fn subset_refuses_a_repeated_index() {
        let all = Grouping::PerTensor.group(transformer_params()).unwrap();
        let _ = all.subset(&[1, 1]);
    }

    #[test]
    fn retain_sees_the_params_and_keeps_the_order() {
        let mut groups = Grouping::PerModule.group(transformer_params()).unwrap();
        let before = groups.clone();
        // Keep the modules that hold a bias.
        groups.retain(|g, params| g.members.iter().any(|&m| params[m].leaf() == "bias"));
        assert_eq!(
            names(&groups),
            ["layers.0.mha.query", "layers.0.pwff.linear_inner", "head"]
        );
        assert_eq!(groups.params(), before.params());
        groups.retain(|_, _| false);
        assert!(groups.is_empty());
    }
}
