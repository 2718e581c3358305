//! The objective: the scalar loss of a model on a batch.

use burn::tensor::Tensor;

/// A model that can compute its own scalar training loss on a batch.
///
/// Implement this on your model to use the estimators (and `AdaPeft::select`) without passing a
/// closure. The returned tensor must hold one element; it is averaged over batches when several
/// are given.
///
/// ```
/// use adapeft_importance::Objective;
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
/// use burn::tensor::{Device, Tensor};
///
/// #[derive(Module, Debug)]
/// struct Regressor {
///     linear: Linear,
/// }
///
/// /// Inputs and targets.
/// struct Batch {
///     x: Tensor<2>,
///     y: Tensor<2>,
/// }
///
/// impl Objective<Batch> for Regressor {
///     fn loss(&self, batch: &Batch) -> Tensor<1> {
///         let err = self.linear.forward(batch.x.clone()) - batch.y.clone();
///         err.square().mean()
///     }
/// }
///
/// let device = Device::flex();
/// let model = Regressor { linear: LinearConfig::new(2, 1).init(&device) };
/// let batch = Batch { x: Tensor::ones([4, 2], &device), y: Tensor::zeros([4, 1], &device) };
/// let loss: f32 = model.loss(&batch).into_scalar();
/// assert!(loss.is_finite());
/// ```
pub trait Objective<B> {
    /// The scalar loss of `self` on `batch` (shape `[1]`).
    fn loss(&self, batch: &B) -> Tensor<1>;

    /// Whether `batch` is one this model can take (a sequence no longer than its position
    /// table, labels within its classes, ...): `Err(reason)` names what is wrong. Every
    /// estimator, and so every selection, checks each batch with it before the first pass, and
    /// turns a refusal into the typed [`EstimateError::InvalidBatch`](crate::EstimateError::InvalidBatch)
    /// instead of a panic inside the model. The default accepts every batch.
    fn check(&self, batch: &B) -> Result<(), String> {
        let _ = batch;
        Ok(())
    }
}

/// A loss function of a model and a batch: the closure form of [`Objective`].
///
/// Implemented for every `Fn(&M, &B) -> Tensor<1>`; [`ModelObjective`] adapts a model that
/// implements [`Objective`].
pub trait LossFn<M, B> {
    /// The scalar loss of `model` on `batch`.
    fn loss(&self, model: &M, batch: &B) -> Tensor<1>;

    /// Whether `model` can take `batch` (see [`Objective::check`]); closures accept every
    /// batch, [`ModelObjective`] asks the model.
    fn check(&self, model: &M, batch: &B) -> Result<(), String> {
        let _ = (model, batch);
        Ok(())
    }
}

impl<M, B, F> LossFn<M, B> for F
where
    F: Fn(&M, &B) -> Tensor<1>,
{
    fn loss(&self, model: &M, batch: &B) -> Tensor<1> {
        self(model, batch)
    }
}

/// The [`LossFn`] that calls the model's own [`Objective::loss`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelObjective;

impl<M: Objective<B>, B> LossFn<M, B> for ModelObjective {
    fn loss(&self, model: &M, batch: &B) -> Tensor<1> {
        model.loss(batch)
    }

    fn check(&self, model: &M, batch: &B) -> Result<(), String> {
        model.check(batch)
    }
}
