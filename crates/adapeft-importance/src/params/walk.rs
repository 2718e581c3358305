//! The one path-tracking walk over a burn module's float parameters: [`visit_params`] and
//! [`map_params`] run a [`ParamVisitor`] or [`ParamMapper`] over them with their dotted paths
//! (`encoder.layers.0.norm.gamma`), and [`set_require_grad`] sets require-grad by a path
//! rule. Every adapeft crate, test and example walks parameters through here.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

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
