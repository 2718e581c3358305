//! [`GradientMask`]: which parameters train, as a filter on gradients.

use std::collections::HashSet;

use adapeft_mask::Selection;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// The set of parameters that train, matched by [`ParamId`] or path (a burn [`ParamGroup`]).
///
/// Built from a [`Selection`] (its chosen paths) or from any `ParamGroup`. It removes the
/// gradients of every other parameter from a [`GradientsParams`], so whatever optimizer runs
/// next never sees them: no update, no weight decay, no clipping, no optimizer state.
///
/// This is also the way to get the masking inside burn-train's `Learner`, which takes a plain
/// `ModuleOptimizer`: keep a mask in the model as a `#[module(skip)]` field and filter the
/// gradients in its `TrainStep::step`:
///
/// ```
/// use adapeft_optim::GradientMask;
/// use burn::module::{Module, ParamGroup};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
///
/// #[derive(Module, Debug)]
/// struct Net {
///     first: Linear,
///     second: Linear,
///     /// Which parameters train; not part of the weights.
///     #[module(skip)]
///     mask: GradientMask,
/// }
///
/// let device = Device::flex().autodiff();
/// let net = Net {
///     first: LinearConfig::new(3, 4).init(&device),
///     second: LinearConfig::new(4, 1).init(&device),
///     mask: GradientMask::from(ParamGroup::from_paths(vec!["second.weight", "second.bias"])),
/// };
/// let x = Tensor::<2>::ones([2, 3], &device);
/// let loss = net.second.forward(net.first.forward(x)).sum();
/// // In `TrainStep::step`: `TrainOutput { grads: self.mask.filter(grads, self), item }`.
/// let grads = GradientsParams::from_grads(loss.backward(), &net);
/// assert_eq!(grads.len(), 4);
/// let grads = net.mask.filter(grads, &net);
/// assert_eq!(grads.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct GradientMask {
    group: ParamGroup,
}

impl GradientMask {
    /// A mask of the parameters in `group`.
    pub fn new(group: ParamGroup) -> Self {
        GradientMask { group }
    }

    /// A mask that lets every parameter train.
    pub fn all() -> Self {
        GradientMask {
            group: ParamGroup::all(),
        }
    }

    /// The underlying burn group.
    pub fn group(&self) -> &ParamGroup {
        &self.group
    }

    /// Whether the parameter `id` at `path` trains.
    pub fn matches(&self, id: &ParamId, path: &str) -> bool {
        self.group.matches(id, Some(path))
    }

    /// Removes from `grads` the gradient of every parameter of `module` outside the mask, and
    /// returns the rest. Gradients of ids that are not parameters of `module` are kept.
    pub fn filter<M: Module>(&self, mut grads: GradientsParams, module: &M) -> GradientsParams {
        let mut visitor = Filter {
            mask: self,
            path: Vec::new(),
            grads: &mut grads,
        };
        module.visit(&mut visitor);
        grads
    }

    /// The parameters of `module` inside the mask: `(id, path, number of elements)`, in module
    /// order.
    pub fn trainable<M: Module>(&self, module: &M) -> Vec<(ParamId, String, usize)> {
        let mut visitor = Members {
            mask: self,
            path: Vec::new(),
            out: Vec::new(),
        };
        module.visit(&mut visitor);
        visitor
            .out
            .into_iter()
            .map(|(id, path, n, _)| (id, path, n))
            .collect()
    }

    /// The ids and ranks of `module`'s parameters inside the mask.
    pub(crate) fn trainable_ranked<M: Module>(&self, module: &M) -> Vec<(ParamId, usize)> {
        let mut visitor = Members {
            mask: self,
            path: Vec::new(),
            out: Vec::new(),
        };
        module.visit(&mut visitor);
        visitor
            .out
            .into_iter()
            .map(|(id, _, _, rank)| (id, rank))
            .collect()
    }

    /// The number of elements of `module`'s parameters inside the mask.
    pub fn trainable_params<M: Module>(&self, module: &M) -> usize {
        self.trainable(module).iter().map(|(_, _, n)| n).sum()
    }
}

impl From<&Selection> for GradientMask {
    /// The selection's chosen parameters, matched by path.
    fn from(selection: &Selection) -> Self {
        GradientMask::new(selection.param_group())
    }
}

impl From<ParamGroup> for GradientMask {
    fn from(group: ParamGroup) -> Self {
        GradientMask::new(group)
    }
}

/// The paths of the parameters of `module` that are in `before` but not in `after`.
pub(crate) fn dropped_paths<M: Module>(
    before: &GradientMask,
    after: &GradientMask,
    module: &M,
) -> (Vec<String>, Vec<String>) {
    let old: HashSet<String> = before
        .trainable(module)
        .into_iter()
        .map(|(_, p, _)| p)
        .collect();
    let new: HashSet<String> = after
        .trainable(module)
        .into_iter()
        .map(|(_, p, _)| p)
        .collect();
    let mut dropped: Vec<String> = old.difference(&new).cloned().collect();
    let mut added: Vec<String> = new.difference(&old).cloned().collect();
    dropped.sort();
    added.sort();
    (dropped, added)
}

struct Filter<'a> {
    mask: &'a GradientMask,
    path: Vec<String>,
    grads: &'a mut GradientsParams,
}

impl ModuleVisitor for Filter<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !self.mask.matches(&param.id, &self.path.join(".")) {
            self.grads.remove::<D>(param.id);
        }
    }
}

struct Members<'a> {
    mask: &'a GradientMask,
    path: Vec<String>,
    /// `(id, path, elements, rank)`.
    out: Vec<(ParamId, String, usize, usize)>,
}

impl ModuleVisitor for Members<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        if self.mask.matches(&param.id, &path) {
            // The shape is known without initialising a lazy parameter.
            let n = param.lazy_shape().num_elements();
            self.out.push((param.id, path, n, D));
        }
    }
}
