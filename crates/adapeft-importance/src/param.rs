//! Parameter discovery and the one path-tracking walk over a burn module's float parameters:
//! [`discover`] and [`layout`] list them, [`visit_params`] and [`map_params`] run a
//! [`ParamVisitor`] or [`ParamMapper`] over them with their dotted paths, and
//! [`set_require_grad`] sets require-grad by a path rule.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

/// One float tensor parameter of a model, as found by [`discover`].
///
/// `require_grad` is the effective state of the tensor (reading it initialises a lazy
/// parameter, as any forward pass would).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Dotted module path, for example `encoder.layers.0.norm.gamma`. The base weight of a
    /// LoRA-adapted tensor keeps its own path (`fc.weight`); its factors are
    /// `fc.weight.lora.a` and `fc.weight.lora.b`.
    pub path: String,
    /// burn's identifier of the parameter (what optimizers and [`burn::module::ParamGroup`]s use).
    pub id: ParamId,
    /// The tensor's shape.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub numel: u64,
    /// Whether the parameter's tensor currently requires gradients. burn tracks gradients only
    /// on an autodiff device (`device.autodiff()`): on a plain device this is `false` for every
    /// parameter, whatever `Module::train` would later restore.
    pub require_grad: bool,
    /// Set for the factors of a LoRA adapter attached with `Module::apply_lora`; holds the path
    /// of the adapted base weight (`fc.weight`).
    pub lora_of: Option<String>,
}

impl ParamInfo {
    /// The last segment of the path (`weight`, `bias`, `gamma`, `a`, ...).
    pub fn leaf(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// The path without its last segment (the owning module), or `""` for a top-level tensor.
    pub fn module_path(&self) -> &str {
        self.path.rsplit_once('.').map(|(m, _)| m).unwrap_or("")
    }
}

/// Lists every float tensor parameter of `model`, in visiting order.
///
/// Integer and boolean parameters and module flags are not trainable and are skipped.
///
/// ```
/// use adapeft_importance::discover;
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// let device = Device::flex();
/// let model = LinearConfig::new(3, 2).init(&device);
/// let params = discover(&model);
/// assert_eq!(params.len(), 2);
/// assert_eq!(params[0].path, "weight");
/// assert_eq!(params[0].numel, 6);
/// assert_eq!(params[1].path, "bias");
/// ```
pub fn discover<M: Module>(model: &M) -> Vec<ParamInfo> {
    struct Discover(Vec<ParamInfo>);
    impl ParamVisitor for Discover {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            let shape = param.lazy_shape();
            self.0.push(ParamInfo {
                path: path.to_string(),
                id: param.id,
                numel: shape.num_elements() as u64,
                shape: shape.to_vec(),
                require_grad: param.val().is_require_grad(),
                lora_of: lora_base(path),
            });
        }
    }
    let mut discover = Discover(Vec::new());
    visit_params(model, &mut discover);
    discover.0
}

/// Where one float tensor parameter sits in a model, as listed by [`layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSlot {
    /// Dotted module path, as in [`ParamInfo::path`].
    pub path: String,
    /// burn's identifier of the parameter.
    pub id: ParamId,
    /// The tensor's shape (its length is the tensor's rank).
    pub shape: Vec<usize>,
}

impl ParamSlot {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Lists every float tensor parameter of `model` (path, id, shape) in visiting order, like
/// [`discover`] but **without initialising lazy parameters**: for code that must not touch the
/// weights (loading, matching a mask) and has no use for the require-grad state.
pub fn layout<M: Module>(model: &M) -> Vec<ParamSlot> {
    struct Layout(Vec<ParamSlot>);
    impl ParamVisitor for Layout {
        fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
            self.0.push(ParamSlot {
                path: path.to_string(),
                id: param.id,
                shape: param.lazy_shape().to_vec(),
            });
        }
    }
    let mut layout = Layout(Vec::new());
    visit_params(model, &mut layout);
    layout.0
}

/// Something that looks at every float parameter of a module with its dotted path
/// (`encoder.layers.0.norm.gamma`): the path-tracking [`ModuleVisitor`] written once. Pass it
/// to [`visit_params`].
pub trait ParamVisitor {
    /// Called once per float tensor parameter, in the module's visiting order.
    fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>);
}

/// Something that rebuilds every float parameter of a module, knowing its dotted path: the
/// path-tracking [`ModuleMapper`] written once. Pass it to [`map_params`].
pub trait ParamMapper {
    /// Called once per float tensor parameter, in the module's visiting order; returns the
    /// parameter to put in its place.
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>>;
}

/// Runs `visitor` over every float parameter of `model`, with its path.
///
/// ```
/// use adapeft_importance::{ParamVisitor, visit_params};
/// use burn::module::Param;
/// use burn::nn::LinearConfig;
/// use burn::tensor::{Device, Tensor};
///
/// struct Sizes(Vec<(String, usize)>);
/// impl ParamVisitor for Sizes {
///     fn visit<const D: usize>(&mut self, path: &str, param: &Param<Tensor<D>>) {
///         self.0.push((path.to_string(), param.lazy_shape().num_elements()));
///     }
/// }
/// let model = LinearConfig::new(3, 2).init(&Device::flex());
/// let mut sizes = Sizes(Vec::new());
/// visit_params(&model, &mut sizes);
/// assert_eq!(sizes.0, [("weight".to_string(), 6), ("bias".to_string(), 2)]);
/// ```
pub fn visit_params<M: Module, V: ParamVisitor>(model: &M, visitor: &mut V) {
    model.visit(&mut Walk {
        path: Vec::new(),
        inner: visitor,
    });
}

/// Returns `model` with every float parameter replaced by what `mapper` makes of it.
pub fn map_params<M: Module, P: ParamMapper>(model: M, mapper: &mut P) -> M {
    model.map(&mut Walk {
        path: Vec::new(),
        inner: mapper,
    })
}

/// Returns `model` with exactly the float parameters whose path satisfies `trains` requiring
/// gradients; every other float parameter stops requiring them.
///
/// Only gradients change: unlike burn's `Module::freeze`, the module's training flags are
/// left alone (dropout stays active, batch-norm statistics keep updating). On a device without
/// autodiff the setting is stored and takes effect when the model goes back to training
/// (`Module::train`). This is what `Selection::apply` does with the chosen paths; use it
/// directly for rules of your own (train the head and every bias, say).
///
/// ```
/// use adapeft_importance::{discover, set_require_grad};
/// use burn::nn::LinearConfig;
/// use burn::tensor::Device;
///
/// let model = LinearConfig::new(3, 2).init(&Device::flex().autodiff());
/// let model = set_require_grad(model, |path| path.ends_with("bias"));
/// let trains: Vec<_> = discover(&model).into_iter().map(|p| (p.path, p.require_grad)).collect();
/// assert_eq!(trains, [("weight".to_string(), false), ("bias".to_string(), true)]);
/// ```
pub fn set_require_grad<M: Module>(model: M, trains: impl Fn(&str) -> bool) -> M {
    struct ByPath<F>(F);
    impl<F: Fn(&str) -> bool> ParamMapper for ByPath<F> {
        fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let trains = (self.0)(path);
            param.set_require_grad(trains)
        }
    }
    map_params(model, &mut ByPath(trains))
}

/// The one path-tracking walker behind [`visit_params`] and [`map_params`].
struct Walk<'a, T> {
    path: Vec<String>,
    inner: &'a mut T,
}

impl<V: ParamVisitor> ModuleVisitor for Walk<'_, V> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.inner.visit(&self.path.join("."), param);
    }
}

impl<P: ParamMapper> ModuleMapper for Walk<'_, P> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        self.inner.map(&self.path.join("."), param)
    }
}

/// `"...weight.lora.a"` -> `Some("...weight")`.
fn lora_base(path: &str) -> Option<String> {
    let mut parts = path.rsplitn(3, '.');
    let (_leaf, lora, base) = (parts.next()?, parts.next()?, parts.next()?);
    (lora == "lora").then(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_base_recognises_adapter_factors() {
        assert_eq!(lora_base("fc.weight.lora.a").as_deref(), Some("fc.weight"));
        assert_eq!(
            lora_base("layers.0.fc.weight.lora.b").as_deref(),
            Some("layers.0.fc.weight")
        );
        assert_eq!(lora_base("fc.weight"), None);
        assert_eq!(lora_base("lora.a"), None);
    }
}
