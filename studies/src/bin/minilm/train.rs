//! The training loop every method shares (Adam, the same batches and steps; the new head at
//! its own learning rate) and the accuracy on a split (validation or test).

use std::time::Instant;

use adapeft::Selection;
use adapeft::importance::Objective;
use adapeft::optim::Masked;
use adapeft_bert::{BertClassifier, BertTokenizer, TextBatch};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use indicatif::ProgressBar;

use crate::data::Example;

/// Trains the parameters of `model` that require gradients for `steps` Adam steps on `batches`:
/// the head at `lr_head`, everything else at `lr` (`0`: the rest stays as it is). Returns the
/// model and the seconds taken.
///
/// With a selection of units below the tensor (`cells`), the rest trains through `Masked`:
/// the gradient outside the chosen cells is zeroed and every other entry of a partly trained
/// tensor stays bit-identical. Whole-tensor selections train exactly as before.
pub fn train(
    mut model: BertClassifier,
    batches: impl Iterator<Item = TextBatch>,
    steps: usize,
    lr: f64,
    lr_head: f64,
    bar: &ProgressBar,
    cells: Option<&Selection>,
) -> (BertClassifier, f64) {
    let start = Instant::now();
    let mut head_optim = AdamConfig::new().init();
    let mut optim = AdamConfig::new().init();
    let mut masked = cells.map(|s| Masked::new(AdamConfig::new().build(), s));
    let mut head_ids = vec![model.head.weight.id];
    head_ids.extend(model.head.bias.as_ref().map(|b| b.id));
    for batch in batches.take(steps) {
        let mut grads = model.loss(&batch).backward();
        let head = GradientsParams::from_params(&mut grads, &model, &head_ids);
        let rest = GradientsParams::from_grads(grads, &model);
        if !head.is_empty() {
            model = head_optim.step(lr_head, model, head);
        }
        if !rest.is_empty() && lr > 0.0 {
            model = match masked.as_mut() {
                Some(masked) => masked.step(lr, model, rest),
                None => optim.step(lr, model, rest),
            };
        }
        bar.inc(1);
    }
    (model, start.elapsed().as_secs_f64())
}

/// Accuracy on `rows` (a task's validation or test rows), in batches of 64 on the plain
/// device.
pub fn accuracy(
    model: &BertClassifier,
    rows: &[Example],
    tokenizer: &BertTokenizer,
    device: &Device,
) -> f64 {
    let model = model.valid();
    let device = device.clone().inner();
    let mut correct = 0;
    for chunk in rows.chunks(64) {
        let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
        let input = tokenizer
            .batch(&texts, &device)
            .expect("the definitions tokenize");
        let predicted = model
            .logits(&input)
            .expect("the tokenizer truncates to the encoder's positions")
            .argmax(1)
            .into_data();
        correct += predicted
            .iter::<i64>()
            .zip(chunk)
            .filter(|&(p, e)| p == e.label as i64)
            .count();
    }
    correct as f64 / rows.len() as f64
}
