//! Training and evaluation: the task data on the device, the batch sampler, the Adam loop
//! shared by pretraining and every fine-tuning method, test accuracy, and the pretraining cache.

use std::path::{Path, PathBuf};
use std::time::Instant;

use adapeft_studies::progress::Progress;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::ProgressBar;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::{Dataset, PIXELS, Split};
use crate::models::{Batch, Classifier, ModelKind};
use crate::tasks::Task;

/// Images per training batch (pretraining, fine-tuning and selection).
pub const BATCH_SIZE: usize = 64;

/// One task's data: the training split on the training (autodiff) device, the test split on
/// the plain device for evaluation.
pub struct TaskData {
    train_images: Tensor<2>,
    train_labels: Tensor<1, Int>,
    n_train: usize,
    test_images: Tensor<2>,
    test_labels: Vec<usize>,
}

fn images_tensor(data: &Dataset, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(data.pixels.clone(), [data.len(), PIXELS]),
        device,
    )
}

fn labels_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}

impl TaskData {
    /// The task's version of the split; `device` is the training (autodiff) device.
    pub fn new(split: &Split, task: Task, device: &Device) -> Self {
        let train = task.apply(&split.train);
        let test = task.apply(&split.test);
        let eval_device = device.clone().inner();
        TaskData {
            train_images: images_tensor(&train, device),
            train_labels: labels_tensor(&train.labels, device),
            n_train: train.len(),
            test_images: images_tensor(&test, &eval_device),
            test_labels: test.labels,
        }
    }

    /// The training images at `indices`.
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let device = self.train_images.device();
        let v: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(v, [indices.len()]), &device);
        Batch {
            images: self.train_images.clone().select(0, idx.clone()),
            labels: self.train_labels.clone().select(0, idx),
        }
    }

    /// The whole training split as one batch.
    pub fn train_batch(&self) -> Batch {
        Batch {
            images: self.train_images.clone(),
            labels: self.train_labels.clone(),
        }
    }

    /// The number of training images.
    pub fn n_train(&self) -> usize {
        self.n_train
    }

    /// `count` batches drawn by a sampler seeded with `seed` (the selection batches).
    pub fn batches(&self, count: usize, seed: u64) -> Vec<Batch> {
        let mut sampler = Sampler::new(self.n_train, seed);
        (0..count)
            .map(|_| self.batch(&sampler.next_batch(BATCH_SIZE)))
            .collect()
    }
}

/// Shuffled passes over the training set, reshuffled every epoch, from a seed.
pub struct Sampler {
    order: Vec<usize>,
    next: usize,
    rng: StdRng,
}

impl Sampler {
    pub fn new(n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        Sampler {
            order,
            next: 0,
            rng,
        }
    }

    /// The next `size` indices (the batch never spans two epochs).
    pub fn next_batch(&mut self, size: usize) -> Vec<usize> {
        if self.next + size > self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.next = 0;
        }
        let batch = self.order[self.next..self.next + size].to_vec();
        self.next += size;
        batch
    }
}

/// Trains `model` on `objective` for `steps` Adam steps at `lr` on batches of the task's training split
/// (sampled from `seed`); only parameters that require gradients move. Returns the trained
/// model and the wall time in seconds.
pub fn train<M: Classifier>(
    model: M,
    objective: fn(&M, &Batch) -> Tensor<1>,
    data: &TaskData,
    steps: usize,
    lr: f64,
    seed: u64,
    bar: &ProgressBar,
) -> (M, f64) {
    let mut optim = AdamConfig::new().init();
    train_with(model, objective, data, steps, seed, bar, |model, grads| {
        optim.step(lr, model, grads)
    })
}

/// [`train`]'s loop with the optimizer step given: `step` takes the model and its gradients
/// on each batch and returns the updated model.
pub fn train_with<M: Classifier>(
    mut model: M,
    objective: fn(&M, &Batch) -> Tensor<1>,
    data: &TaskData,
    steps: usize,
    seed: u64,
    bar: &ProgressBar,
    mut step: impl FnMut(M, GradientsParams) -> M,
) -> (M, f64) {
    let start = Instant::now();
    let mut sampler = Sampler::new(data.n_train, seed);
    for _ in 0..steps {
        let batch = data.batch(&sampler.next_batch(BATCH_SIZE));
        let loss = objective(&model, &batch);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = step(model, grads);
        bar.inc(1);
    }
    (model, start.elapsed().as_secs_f64())
}

/// Accuracy on the task's test split.
pub fn accuracy<M: Classifier>(model: &M, data: &TaskData) -> f64 {
    let predictions = model.valid().logits(data.test_images.clone()).argmax(1);
    let correct = predictions
        .into_data()
        .iter::<i64>()
        .zip(&data.test_labels)
        .filter(|&(p, &l)| p == l as i64)
        .count();
    correct as f64 / data.test_labels.len() as f64
}

/// Pretraining settings (identical in `--quick` and full runs, so they share the cache).
pub struct Pretraining {
    pub steps: usize,
    pub lr: f64,
    pub seed: u64,
}

/// Bump when anything that changes pretrained weights changes (model code, data, loop).
pub const CACHE_VERSION: u32 = 2;

impl Pretraining {
    /// The study's pretraining: 1,000 Adam steps of 64 images (about 45 epochs) at `3e-3` on
    /// the source task, with label smoothing.
    pub const STUDY: Pretraining = Pretraining {
        steps: 1000,
        lr: 3e-3,
        seed: 7,
    };

    /// The cache file for a model described by `model`.
    pub fn cache_file(&self, dir: &Path, model: &str) -> PathBuf {
        dir.join(format!(
            "{model}-steps{}-lr{}-b{BATCH_SIZE}-seed{}-v{CACHE_VERSION}.bpk",
            self.steps, self.lr, self.seed
        ))
    }
}

/// How a pretrained model was obtained.
pub struct Pretrained<M> {
    pub model: M,
    /// `true` when read from the cache.
    pub cached: bool,
    /// Accuracy on the source task's test split.
    pub source_accuracy: f64,
    /// Seconds spent (training or loading).
    pub seconds: f64,
}

/// The pretrained model `kind` with the study's settings ([`Pretraining::STUDY`]): from the
/// cache in `cache_dir`, or trained on the source task of `split` (with a progress bar) and
/// written to the cache. The prologue of the study and of the oracle benchmark.
///
/// `fresh` builds a freshly initialised model on a device (after the device is seeded).
pub fn pretrain<M: Classifier>(
    kind: ModelKind,
    fresh: impl Fn(&Device) -> M,
    split: &Split,
    cache_dir: &Path,
    device: &Device,
    progress: &Progress,
) -> Result<Pretrained<M>, Box<dyn std::error::Error>> {
    let settings = Pretraining::STUDY;
    let source = TaskData::new(split, Task::Source, device);
    let bar = progress.bar(settings.steps as u64, &format!("pretrain {}", kind.name()));
    let pretrained = pretrain_with(
        fresh,
        &kind.to_string(),
        &source,
        &settings,
        cache_dir,
        device,
        &bar,
    );
    bar.finish_and_clear();
    pretrained
}

/// The pretrained model from the cache, or trained on `source` and written to the cache.
fn pretrain_with<M: Classifier>(
    fresh: impl Fn(&Device) -> M,
    describe: &str,
    source: &TaskData,
    settings: &Pretraining,
    cache_dir: &Path,
    device: &Device,
    bar: &ProgressBar,
) -> Result<Pretrained<M>, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let path = settings.cache_file(cache_dir, describe);
    device.seed(settings.seed);
    let init = fresh(device);
    if path.exists() {
        match init.clone().try_load_file(&path) {
            Ok(model) => {
                bar.inc(settings.steps as u64);
                let source_accuracy = accuracy(&model, source);
                return Ok(Pretrained {
                    model,
                    cached: true,
                    source_accuracy,
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
            Err(e) => bar.println(format!(
                "warning: ignoring unreadable cache {} ({e}); pretraining again",
                path.display()
            )),
        }
    }
    let (model, _) = train(
        init,
        M::pretraining_loss,
        source,
        settings.steps,
        settings.lr,
        settings.seed,
        bar,
    );
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| format!("cannot create {}: {e}", cache_dir.display()))?;
    model
        .clone()
        .save_file(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let source_accuracy = accuracy(&model, source);
    Ok(Pretrained {
        model,
        cached: false,
        source_accuracy,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_covers_each_epoch_once_and_is_seeded() {
        let mut s = Sampler::new(10, 3);
        let mut seen: Vec<usize> = (0..2).flat_map(|_| s.next_batch(5)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let a: Vec<_> = (0..3).map(|_| Sampler::new(10, 3).next_batch(4)).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
    }
}
