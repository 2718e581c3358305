//! Sentence classification on top of the encoder: mean pooling and a linear head, with the
//! cross-entropy adapeft scores ([`Objective`]).

use adapeft_importance::Objective;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::BertError;
use crate::model::{Bert, BertInput};

/// A labelled batch of texts: the tokenized input and one class index per text.
#[derive(Debug, Clone)]
pub struct TextBatch {
    pub input: BertInput,
    /// Class indices `[n]`.
    pub labels: Tensor<1, Int>,
}

impl TextBatch {
    /// `input` with `labels` (one per sequence) on `input`'s device.
    pub fn new(input: BertInput, labels: &[usize]) -> Result<Self, BertError> {
        let [n, _] = input.dims();
        if labels.len() != n {
            return Err(BertError::Input(format!(
                "{} labels for {n} sequences",
                labels.len()
            )));
        }
        let device = input.token_ids.device();
        let data = TensorData::new(labels.iter().map(|&l| l as i64).collect(), [n]);
        Ok(TextBatch {
            labels: Tensor::from_data(data, &device),
            input,
        })
    }

    /// The same batch on another device.
    pub fn to_device(&self, device: &Device) -> Self {
        TextBatch {
            input: self.input.to_device(device),
            labels: self.labels.clone().to_device(device),
        }
    }
}

/// The encoder, mean pooling and a linear head: `logits = head(mean_pool(bert(x)))`.
///
/// Parameter paths are the encoder's under `bert.` and `head.{weight,bias}`, so adapeft's
/// kind rules see the head as the head and `transfer_to` maps `bert.layers.{i}` across depths.
///
/// ```
/// use adapeft_bert::{BertClassifier, BertConfig, BertInput, TextBatch};
/// use adapeft_importance::Objective;
/// use burn::tensor::Device;
///
/// let device = Device::flex();
/// let bert = BertConfig::new(20, 8, 1, 2, 16).with_dropout(0.0).init(&device);
/// let model = BertClassifier::new(bert, 3, &device);
/// let input = BertInput::pad(&[(vec![1, 5, 2], vec![0; 3]), (vec![1, 2], vec![0; 2])], 0, &device)?;
/// let batch = TextBatch::new(input, &[2, 0])?;
/// let loss: f32 = model.loss(&batch).into_scalar();
/// assert!(loss > 0.0);
/// # Ok::<(), adapeft_bert::BertError>(())
/// ```
#[derive(Module, Debug)]
pub struct BertClassifier {
    pub bert: Bert,
    pub head: Linear,
}

impl BertClassifier {
    /// `bert` with a freshly initialised head for `classes` classes.
    pub fn new(bert: Bert, classes: usize, device: &Device) -> Self {
        let head = LinearConfig::new(bert.hidden_size(), classes).init(device);
        BertClassifier { bert, head }
    }

    /// Class logits `[n, classes]`.
    ///
    /// # Errors
    /// As [`Bert::forward`]: a batch longer than the encoder's position table.
    pub fn logits(&self, input: &BertInput) -> Result<Tensor<2>, BertError> {
        Ok(self.head.forward(self.bert.mean_pooled(input)?))
    }

    /// Whether this classifier can take `batch`: what [`Bert::check`] asks of its input, one
    /// label per sequence, and every label below [`BertClassifier::classes`] (reads the ids
    /// and labels from the device).
    ///
    /// # Errors
    /// [`BertError::TooLong`], or [`BertError::Input`] naming the first id or label out of
    /// range, or the counts that differ.
    pub fn check_batch(&self, batch: &TextBatch) -> Result<(), BertError> {
        self.bert.check(&batch.input)?;
        let [n, _] = batch.input.dims();
        if batch.labels.dims()[0] != n {
            return Err(BertError::Input(format!(
                "{} labels for {n} sequences",
                batch.labels.dims()[0]
            )));
        }
        let labels = batch.labels.clone().into_data().convert::<i64>();
        let labels = labels
            .as_slice::<i64>()
            .map_err(|e| BertError::Input(format!("unreadable labels: {e:?}")))?;
        let classes = self.classes();
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l < 0 || l as usize >= classes)
        {
            return Err(BertError::Input(format!(
                "label {l} of sequence {i} is not one of the head's {classes} classes"
            )));
        }
        Ok(())
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.head.weight.dims()[1]
    }
}

/// The mean cross-entropy of the batch (the fine-tuning loss). Selections check every batch
/// with [`BertClassifier::check_batch`] first and refuse a bad one with a typed error.
impl Objective<TextBatch> for BertClassifier {
    /// # Panics
    /// On a batch [`BertClassifier::check_batch`] refuses (the trait's loss cannot fail).
    fn loss(&self, batch: &TextBatch) -> Tensor<1> {
        let logits = self
            .logits(&batch.input)
            .unwrap_or_else(|e| panic!("{e} (check batches with `check_batch`)"));
        CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, batch.labels.clone())
    }

    fn check(&self, batch: &TextBatch) -> Result<(), String> {
        self.check_batch(batch).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use adapeft_importance::{KindRules, ParamKind, discover};

    use super::*;
    use crate::config::BertConfig;

    fn model(device: &Device) -> BertClassifier {
        let bert = BertConfig::new(12, 8, 2, 2, 16)
            .with_dropout(0.0)
            .init(device);
        BertClassifier::new(bert, 3, device)
    }

    #[test]
    fn loss_is_the_mean_cross_entropy_of_the_logits() {
        let device = Device::flex();
        let model = model(&device);
        let input = BertInput::pad(
            &[
                (vec![1, 5, 6, 2], vec![0; 4]),
                (vec![1, 7, 2], vec![0; 3]),
                (vec![1, 2], vec![0; 2]),
            ],
            0,
            &device,
        )
        .unwrap();
        let labels = [2, 0, 1];
        let batch = TextBatch::new(input.clone(), &labels).unwrap();
        let loss: f32 = model.loss(&batch).into_scalar();
        // The same loss on the host, from the logits.
        let logits: Vec<f32> = model
            .logits(&input)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let expected = labels
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let row: Vec<f64> = logits[i * 3..(i + 1) * 3]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - row[y]
            })
            .sum::<f64>()
            / 3.0;
        assert!(
            (loss as f64 - expected).abs() < 1e-5,
            "{loss} vs {expected}"
        );
        assert_eq!(model.classes(), 3);
        let err = TextBatch::new(input, &[0, 1]).unwrap_err();
        assert!(
            err.to_string().contains("2 labels for 3 sequences"),
            "{err}"
        );
    }

    #[test]
    fn adapeft_kind_rules_see_every_part_of_the_model() {
        let device = Device::flex();
        let params = discover(&model(&device));
        let rules = KindRules::default();
        let kind = |path: &str| {
            let p = params
                .iter()
                .find(|p| p.path == path)
                .unwrap_or_else(|| panic!("no parameter {path}"));
            rules.kind_of(p)
        };
        use ParamKind::*;
        for (path, expected) in [
            ("bert.embeddings.word.weight", Embedding),
            ("bert.embeddings.position.weight", Embedding),
            ("bert.embeddings.norm.gamma", Norm),
            ("bert.layers.1.attention.query.weight", Attention),
            ("bert.layers.1.attention.output.weight", Attention),
            ("bert.layers.0.attention.key.bias", Bias),
            ("bert.layers.0.attention_norm.gamma", Norm),
            ("bert.layers.0.ffn.intermediate.weight", FeedForward),
            ("bert.layers.0.ffn.output.weight", FeedForward),
            ("bert.layers.1.ffn_norm.beta", Norm),
            ("head.weight", Head),
            ("head.bias", Bias),
        ] {
            assert_eq!(kind(path), expected, "{path}");
        }
        // 5 embedding tensors (3 tables, gamma, beta) + 16 per layer + 2 head.
        assert_eq!(params.len(), 5 + 2 * 16 + 2);
        assert!(
            params.iter().all(|p| kind(&p.path) != Other),
            "an unclassified tensor"
        );
    }
}
