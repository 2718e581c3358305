//! [`Masked`]: any burn optimizer, restricted to a set of parameters.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::grad_clipping::GradientClipping;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{
    GradientsParams, ModuleOptimizer, MultiGradientsParams, Optimizer, OptimizerRecord,
};
use burn::tensor::Tensor;

use adapeft_importance::{ParamMapper, ParamVisitor, map_params, visit_params};

use crate::mask::{CellMask, GradientMask, dropped_paths, keep_gradients};

/// Adds a fresh-state group for the given parameters (burn's documented way to drop state).
type ResetState =
    dyn Fn(ModuleOptimizer, ParamGroup, Option<GradientClipping>) -> ModuleOptimizer + Send + Sync;

/// Something that updates a module from its gradients at a learning rate: burn's
/// [`ModuleOptimizer`] and the adapters of this crate. [`Gen`](crate::Gen) wraps any of them.
pub trait StepOptimizer: Clone {
    /// One update of `module` with `grads` at `lr`.
    fn step_module<M: Module>(
        &mut self,
        lr: ModuleLearningRate,
        module: M,
        grads: GradientsParams,
    ) -> M;

    /// Whether a step may change the parameter `id` at `path` (when it has a gradient).
    /// Used to skip parameters that cannot move; `true` unless the optimizer knows better.
    fn may_update(&self, id: &ParamId, path: &str) -> bool {
        let _ = (id, path);
        true
    }
}

impl StepOptimizer for ModuleOptimizer {
    fn step_module<M: Module>(
        &mut self,
        lr: ModuleLearningRate,
        module: M,
        grads: GradientsParams,
    ) -> M {
        self.step(lr, module, grads)
    }
}

/// A burn optimizer that updates only the parameters in a [`GradientMask`] and creates no
/// optimizer state for the others.
///
/// It wraps a [`ModuleOptimizer`] built from any burn [`Optimizer`] (`AdamWConfig::build`,
/// `SgdConfig::build`, ... or your own), and removes the gradients of the parameters outside
/// the mask before every step. burn's `ModuleOptimizer` touches only parameters that have a
/// gradient, so the unselected parameters stay bit-identical: no update, no weight decay, no
/// gradient clipping, and no optimizer state, even when the model is not frozen and every
/// parameter has a gradient. (Freezing the model with [`Selection::apply`] as well saves the
/// backward pass the gradients of frozen parameters; `Masked` makes the optimizer safe either
/// way.)
///
/// **Units below the tensor.** A mask with cells ([`GradientMask::with_cells`],
/// [`GradientMask::from_groups`] for groups cut by `Groups::split`) trains only those cells of
/// a tensor: the tensor's gradient is zeroed outside them before the step, and after it every
/// other entry is put back to its value before the step, so it stays bit-identical whatever
/// the wrapped optimizer does there (AdamW's decoupled weight decay moves every entry of a
/// tensor with a gradient). burn's optimizers keep their state per tensor: a partially
/// trained tensor has the state of the whole (AdamW: two moments of its every entry), so a
/// selection of a few output neurons of a large matrix pays the matrix's optimizer state,
/// not the neurons'. Keeping state for the trained entries only would take a second
/// optimizer over gathered cells, which `Masked` does not do.
///
/// [`Masked::set_mask`] changes the trained set during training: parameters that leave the
/// mask lose their optimizer state, parameters that join it start from fresh state, the others
/// keep theirs. This is what [`Reselect`](crate::Reselect) uses.
///
/// ```
/// use adapeft_optim::Masked;
/// use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::{AdamWConfig, GradientsParams};
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::flex().autodiff();
/// let layer: Linear = LinearConfig::new(3, 2).init(&device);
/// let bias_before = layer.bias.as_ref().unwrap().val().into_data();
///
/// // Train the weight only, with AdamW and weight decay.
/// let mut optim = Masked::new(
///     AdamWConfig::new().with_weight_decay(0.1).build(),
///     ParamGroup::from_paths(vec!["weight"]),
/// );
/// let loss = layer.forward(Tensor::<2>::ones([4, 3], &device)).sum();
/// let grads = GradientsParams::from_grads(loss.backward(), &layer);
/// let layer = optim.step(1e-2, layer, grads);
///
/// assert_eq!(layer.bias.as_ref().unwrap().val().into_data(), bias_before);
/// assert_eq!(optim.state_tensors(), 2); // AdamW's two moments, for the weight only
/// ```
///
/// [`Selection::apply`]: adapeft_selection::Selection::apply
#[derive(Clone)]
pub struct Masked {
    inner: ModuleOptimizer,
    reset: Arc<ResetState>,
    clipping: Option<GradientClipping>,
    mask: GradientMask,
    /// The mask resolved against the module last stepped.
    resolved: Option<Resolved>,
    /// The wrapped optimizer's type name, which a checkpoint records (burn optimizers expose
    /// neither their settings nor a name).
    optimizer: &'static str,
    /// Paths that left the mask in [`Masked::set_mask`]: trained once, so a checkpoint must
    /// keep their values although they no longer train.
    retired: BTreeSet<String>,
}

/// A mask resolved against a module: every parameter id, and the trainable ids with ranks.
#[derive(Clone)]
struct Resolved {
    ids: Vec<ParamId>,
    keep: HashSet<ParamId>,
}

/// Every float parameter id of `module`, in order.
fn param_ids<M: Module>(module: &M) -> Vec<ParamId> {
    struct Ids(Vec<ParamId>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masked")
            .field("optimizer", &self.optimizer)
            .field("mask", &self.mask)
            .field("clipping", &self.clipping_name())
            .finish_non_exhaustive()
    }
}

impl Masked {
    /// `optimizer` restricted to `mask` (a [`Selection`](adapeft_selection::Selection), a burn
    /// `ParamGroup` or a [`GradientMask`]).
    pub fn new<O: Optimizer>(optimizer: O, mask: impl Into<GradientMask>) -> Self {
        let inner = ModuleOptimizer::from(optimizer.clone());
        let reset: Arc<ResetState> = Arc::new(move |optim, group, clipping| {
            optim.with_group(group, optimizer.clone(), clipping)
        });
        Masked {
            inner,
            reset,
            clipping: None,
            mask: mask.into(),
            resolved: None,
            optimizer: std::any::type_name::<O>(),
            retired: BTreeSet::new(),
        }
    }

    /// Clips every trained gradient (per tensor, as burn does); unselected parameters have no
    /// gradient left to clip.
    pub fn with_grad_clipping(mut self, clipping: GradientClipping) -> Self {
        self.inner = self.inner.with_grad_clipping(clipping.clone());
        self.clipping = Some(clipping);
        self
    }

    /// The parameters that train.
    pub fn mask(&self) -> &GradientMask {
        &self.mask
    }

    /// Updates the parameters of `module` inside the mask with their gradients; every other
    /// parameter is returned unchanged.
    ///
    /// # Panics
    ///
    /// burn's optimizers step parameters of rank 1 to
    /// [`MAX_TRAINABLE_RANK`](crate::MAX_TRAINABLE_RANK) and panic on a higher one inside the
    /// mask; [`GradientMask::check`] reports it beforehand as a typed error. Parameters outside
    /// the mask may have any rank.
    pub fn step<M: Module>(
        &mut self,
        lr: impl Into<ModuleLearningRate>,
        module: M,
        grads: GradientsParams,
    ) -> M {
        let grads = self.keep_trainable(grads, &module);
        let before = partial_values(&self.mask, &module);
        let module = self.inner.step(lr, module, grads);
        restore_untrained(module, before)
    }

    /// [`Masked::step`] with gradients from several devices, as burn-train's
    /// `MultiDevice` strategy with `MultiDeviceOptim::OptimSharded` gives them (through
    /// burn's `ModuleOptimizer::step_multi`, which applies each parameter's update on the
    /// device its gradient comes from): every device's gradients outside the mask are removed
    /// first, so a frozen parameter gets no update and no state on any device.
    pub fn step_multi<M: Module>(
        &mut self,
        lr: impl Into<ModuleLearningRate>,
        module: M,
        grads: MultiGradientsParams,
    ) -> M {
        let mut kept = MultiGradientsParams::default();
        for (g, device) in grads.grads {
            kept.grads.push((self.keep_trainable(g, &module), device));
        }
        let before = partial_values(&self.mask, &module);
        let module = self.inner.step_multi(lr, module, kept);
        restore_untrained(module, before)
    }

    /// The gradients of the trainable parameters of `module`, and nothing else.
    ///
    /// Matching paths against the mask costs string work per parameter, so the trainable ids
    /// are resolved once and reused while the module's parameter ids stay the same (burn keeps
    /// a parameter's id through optimizer steps); each step then only lists the ids.
    fn keep_trainable<M: Module>(
        &mut self,
        mut grads: GradientsParams,
        module: &M,
    ) -> GradientsParams {
        let ids = param_ids(module);
        let resolved = match self.resolved.take() {
            Some(r) if r.ids == ids => r,
            _ => Resolved {
                keep: self
                    .mask
                    .trainable(module)
                    .into_iter()
                    .map(|slot| slot.id)
                    .collect(),
                ids,
            },
        };
        let kept = keep_gradients(&mut grads, &resolved.keep, module);
        self.resolved = Some(resolved);
        if self.mask.has_cells() {
            // Zero the gradients of partially trained tensors outside their cells.
            self.mask.filter(kept, module)
        } else {
            kept
        }
    }

    /// Replaces the mask. Parameters of `module` that leave it lose their optimizer state,
    /// parameters that join it will start from fresh state, the others keep theirs. Returns
    /// the paths that left and joined.
    ///
    /// Freeing uses `ModuleOptimizer::with_group`, whose documented side effect is to reset
    /// the state of the parameters of the new group; each change adds one (same-optimizer)
    /// group to the wrapped optimizer.
    pub fn set_mask<M: Module>(&mut self, mask: impl Into<GradientMask>, module: &M) -> MaskChange {
        let mask = mask.into();
        let (dropped, added) = dropped_paths(&self.mask, &mask, module);
        if !dropped.is_empty() {
            self.retired.extend(dropped.iter().cloned());
            let group = ParamGroup::from_paths(dropped.clone());
            let inner = self.inner.clone();
            self.inner = (self.reset)(inner, group, self.clipping.clone());
        }
        self.mask = mask;
        self.resolved = None;
        MaskChange { dropped, added }
    }

    /// Replaces the mask without freeing any state (for a mask set before the first step).
    pub(crate) fn set_mask_unchecked(&mut self, mask: impl Into<GradientMask>) {
        self.mask = mask.into();
        self.resolved = None;
    }

    /// The number of optimizer state tensors held (for AdamW, two per trained parameter
    /// tensor). It serialises the state to count it: meant for reports and tests, not for
    /// every step.
    pub fn state_tensors(&self) -> usize {
        self.inner.to_record().len()
    }

    /// The wrapped burn optimizer.
    pub fn inner(&self) -> &ModuleOptimizer {
        &self.inner
    }

    /// The wrapped burn optimizer, by value (its state included).
    pub fn into_inner(self) -> ModuleOptimizer {
        self.inner
    }

    /// The type name of the wrapped burn optimizer (`burn_optim::optim::adamw::AdamW`).
    pub fn optimizer_name(&self) -> &'static str {
        self.optimizer
    }

    /// The gradient clipping in words (`norm 1`, `value 0.5`), if any.
    pub(crate) fn clipping_name(&self) -> Option<String> {
        self.clipping.as_ref().map(|c| match c {
            GradientClipping::Value(v) => format!("value {v}"),
            GradientClipping::Norm(n) => format!("norm {n}"),
        })
    }

    /// Paths that trained once and left the mask since (see [`Masked::set_mask`]).
    pub(crate) fn retired(&self) -> &BTreeSet<String> {
        &self.retired
    }

    /// A copy with the mask, retired paths and optimizer state of a checkpoint. `record` is
    /// routed through this optimizer's groups, so it must come from the same optimizer.
    pub(crate) fn restored(
        &self,
        mask: GradientMask,
        retired: BTreeSet<String>,
        record: OptimizerRecord,
    ) -> Masked {
        Masked {
            inner: self.inner.clone().load_record(record),
            mask,
            retired,
            resolved: None,
            ..self.clone()
        }
    }
}

impl StepOptimizer for Masked {
    fn step_module<M: Module>(
        &mut self,
        lr: ModuleLearningRate,
        module: M,
        grads: GradientsParams,
    ) -> M {
        self.step(lr, module, grads)
    }

    fn may_update(&self, id: &ParamId, path: &str) -> bool {
        self.mask.matches(id, path)
    }
}

/// The values before a step of the partially trained parameters of `module` (flattened,
/// without autodiff), with their cells: what [`restore_untrained`] puts back.
fn partial_values<M: Module>(
    mask: &GradientMask,
    module: &M,
) -> HashMap<ParamId, (Tensor<1>, CellMask)> {
    struct Values<'a> {
        mask: &'a GradientMask,
        out: HashMap<ParamId, (Tensor<1>, CellMask)>,
    }
    impl ParamVisitor for Values<'_> {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            if let Some(cells) = self.mask.cells(path) {
                let value = param.val().inner();
                let n = value.shape().num_elements();
                self.out
                    .insert(param.id, (value.reshape([n]), cells.clone()));
            }
        }
    }
    if !mask.has_cells() {
        return HashMap::new();
    }
    let mut values = Values {
        mask,
        out: HashMap::new(),
    };
    visit_params(module, &mut values);
    values.out
}

/// `module` with every entry outside the cells of a partially trained parameter put back to
/// its value in `before`, bit for bit (the optimizer's weight decay, or any update, undone
/// there), each parameter keeping its id and require-grad setting.
fn restore_untrained<M: Module>(module: M, before: HashMap<ParamId, (Tensor<1>, CellMask)>) -> M {
    struct Restore(HashMap<ParamId, (Tensor<1>, CellMask)>);
    impl ParamMapper for Restore {
        fn map<const D: usize>(&mut self, _: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let Some((old, cells)) = self.0.remove(&param.id) else {
                return param;
            };
            param.map(|w| {
                let autodiff = w.is_autodiff();
                let require_grad = autodiff && w.is_require_grad();
                let shape = w.shape();
                let w = w.inner();
                let frozen = cells.frozen(&w.device()).reshape(shape.clone());
                let restored = w.mask_where(frozen, old.reshape(shape));
                match (autodiff, require_grad) {
                    (false, _) => restored,
                    (true, false) => Tensor::from_inner(restored),
                    (true, true) => Tensor::from_inner(restored).require_grad(),
                }
            })
        }
    }
    if before.is_empty() {
        return module;
    }
    map_params(module, &mut Restore(before))
}

/// The parameter paths that left and joined a mask in [`Masked::set_mask`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaskChange {
    /// Paths that no longer train (their optimizer state was freed).
    pub dropped: Vec<String>,
    /// Paths that train from now on (with fresh optimizer state).
    pub added: Vec<String>,
}
