//! A tiny randomly initialised BERT saved with Hugging Face's key names and layouts (written
//! here with the `safetensors` crate, not by this crate's saver), a tiny `tokenizer.json`
//! written here, and an independent f64 forward pass on the host: the loader, the tokenizer
//! path, padding and masks, and the forward pass, without any download.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adapeft_bert::{
    BertConfig, BertError, BertInput, BertTokenizer, load_hf_safetensors, save_hf_safetensors,
    write_wordpiece_tokenizer,
};
use burn::tensor::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

const VOCAB: [&str; 20] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "a", "dog",
    "##s", "run", ".", "small", "big", "fur", "##ry", "soft",
];
const HIDDEN: usize = 8;
const HEADS: usize = 2;
const INTERMEDIATE: usize = 12;
const LAYERS: usize = 2;
const POSITIONS: usize = 16;
const EPS: f64 = 1e-12;

/// One checkpoint tensor: shape and values (f32, as in real checkpoints).
#[derive(Clone)]
struct HostTensor {
    shape: Vec<usize>,
    values: Vec<f32>,
}

type Checkpoint = BTreeMap<String, HostTensor>;

/// A random checkpoint with Hugging Face's names and PyTorch layouts (linear weights
/// `[out, in]`), LayerNorm gains around 1, and the extras real checkpoints carry
/// (pooler, written separately with `position_ids`).
fn random_checkpoint(seed: u64) -> Checkpoint {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ckpt = Checkpoint::new();
    let mut put = |name: String, shape: Vec<usize>, center: f32, scale: f32| {
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| center + scale * rng.random_range(-1.0f32..1.0))
            .collect();
        ckpt.insert(name, HostTensor { shape, values });
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        vec![VOCAB.len(), HIDDEN],
        0.0,
        1.0,
    );
    put(
        "embeddings.position_embeddings.weight".into(),
        vec![POSITIONS, HIDDEN],
        0.0,
        0.5,
    );
    put(
        "embeddings.token_type_embeddings.weight".into(),
        vec![2, HIDDEN],
        0.0,
        0.5,
    );
    put("embeddings.LayerNorm.weight".into(), vec![HIDDEN], 1.0, 0.3);
    put("embeddings.LayerNorm.bias".into(), vec![HIDDEN], 0.0, 0.3);
    for i in 0..LAYERS {
        let p = format!("encoder.layer.{i}.");
        for m in ["query", "key", "value"] {
            put(
                format!("{p}attention.self.{m}.weight"),
                vec![HIDDEN, HIDDEN],
                0.0,
                0.6,
            );
            put(
                format!("{p}attention.self.{m}.bias"),
                vec![HIDDEN],
                0.0,
                0.3,
            );
        }
        put(
            format!("{p}attention.output.dense.weight"),
            vec![HIDDEN, HIDDEN],
            0.0,
            0.4,
        );
        put(
            format!("{p}attention.output.dense.bias"),
            vec![HIDDEN],
            0.0,
            0.3,
        );
        put(
            format!("{p}attention.output.LayerNorm.weight"),
            vec![HIDDEN],
            1.0,
            0.3,
        );
        put(
            format!("{p}attention.output.LayerNorm.bias"),
            vec![HIDDEN],
            0.0,
            0.3,
        );
        put(
            format!("{p}intermediate.dense.weight"),
            vec![INTERMEDIATE, HIDDEN],
            0.0,
            0.6,
        );
        put(
            format!("{p}intermediate.dense.bias"),
            vec![INTERMEDIATE],
            0.0,
            0.3,
        );
        put(
            format!("{p}output.dense.weight"),
            vec![HIDDEN, INTERMEDIATE],
            0.0,
            0.4,
        );
        put(format!("{p}output.dense.bias"), vec![HIDDEN], 0.0, 0.3);
        put(
            format!("{p}output.LayerNorm.weight"),
            vec![HIDDEN],
            1.0,
            0.3,
        );
        put(format!("{p}output.LayerNorm.bias"), vec![HIDDEN], 0.0, 0.3);
    }
    put("pooler.dense.weight".into(), vec![HIDDEN, HIDDEN], 0.0, 0.5);
    put("pooler.dense.bias".into(), vec![HIDDEN], 0.0, 0.5);
    ckpt
}

/// Writes `ckpt` (plus an int64 `embeddings.position_ids` buffer, as Hugging Face's files
/// have) with the safetensors crate.
fn write_checkpoint(ckpt: &Checkpoint, path: &Path) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = ckpt
        .iter()
        .map(|(name, t)| {
            let data = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), t.shape.clone(), data)
        })
        .collect();
    let positions: Vec<u8> = (0..POSITIONS as i64)
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    views.push((
        "embeddings.position_ids".into(),
        TensorView::new(Dtype::I64, vec![1, POSITIONS], &positions).unwrap(),
    ));
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn read_checkpoint(path: &Path) -> Checkpoint {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, view)| view.dtype() == Dtype::F32)
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let shape = view.shape().to_vec();
            (name, HostTensor { shape, values })
        })
        .collect()
}

fn config() -> BertConfig {
    BertConfig::new(VOCAB.len(), HIDDEN, LAYERS, HEADS, INTERMEDIATE)
        .with_max_position_embeddings(POSITIONS)
        .with_dropout(0.0)
}

/// A word-piece `tokenizer.json` in the shape of BERT's (lower-casing normaliser, BERT
/// pre-tokenizer, `[CLS] A [SEP]` template), with a fixed padding to 12 that the crate must
/// switch off.
fn write_tokenizer(path: &Path) {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), serde_json::json!(i)))
        .collect();
    let special = |id: usize| {
        serde_json::json!({"id": id, "content": VOCAB[id], "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": {"strategy": {"Fixed": 12}, "direction": "Right", "pad_to_multiple_of": null,
                    "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
        "added_tokens": [special(0), special(1), special(2), special(3), special(4)],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// The test's texts and their word pieces, worked out by hand from `VOCAB`.
const TEXTS: [(&str, &[&str]); 4] = [
    (
        "The cats sat on the mat.",
        &[
            "[CLS]", "the", "cat", "##s", "sat", "on", "the", "mat", ".", "[SEP]",
        ],
    ),
    ("a Dog", &["[CLS]", "a", "dog", "[SEP]"]),
    (
        "Small furry zebra",
        &["[CLS]", "small", "fur", "##ry", "[UNK]", "[SEP]"],
    ),
    ("run", &["[CLS]", "run", "[SEP]"]),
];

/// An independent f64 forward pass of a BERT checkpoint on the host, one unpadded sentence
/// at a time, written from the Hugging Face names and PyTorch layouts.
mod host {
    use super::{Checkpoint, EPS, HEADS};

    type Matrix = Vec<Vec<f64>>;

    fn get<'a>(ckpt: &'a Checkpoint, name: &str) -> (&'a [usize], Vec<f64>) {
        let t = &ckpt[name];
        (&t.shape, t.values.iter().map(|&v| v as f64).collect())
    }

    fn row(ckpt: &Checkpoint, name: &str, i: usize) -> Vec<f64> {
        let (shape, v) = get(ckpt, name);
        v[i * shape[1]..(i + 1) * shape[1]].to_vec()
    }

    /// `x W^T + b` with PyTorch's `[out, in]` weight.
    fn linear(ckpt: &Checkpoint, name: &str, x: &Matrix) -> Matrix {
        let (shape, w) = get(ckpt, &format!("{name}.weight"));
        let (_, b) = get(ckpt, &format!("{name}.bias"));
        let (out, inp) = (shape[0], shape[1]);
        x.iter()
            .map(|xi| {
                (0..out)
                    .map(|o| b[o] + (0..inp).map(|k| w[o * inp + k] * xi[k]).sum::<f64>())
                    .collect()
            })
            .collect()
    }

    fn layer_norm(ckpt: &Checkpoint, name: &str, x: &Matrix) -> Matrix {
        let (_, g) = get(ckpt, &format!("{name}.weight"));
        let (_, b) = get(ckpt, &format!("{name}.bias"));
        x.iter()
            .map(|xi| {
                let n = xi.len() as f64;
                let mean = xi.iter().sum::<f64>() / n;
                let var = xi.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                xi.iter()
                    .enumerate()
                    .map(|(j, v)| (v - mean) / (var + EPS).sqrt() * g[j] + b[j])
                    .collect()
            })
            .collect()
    }

    /// erf by its Maclaurin series, summed until the terms vanish (|x| is small here).
    fn erf(x: f64) -> f64 {
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
            if n > 200.0 {
                break;
            }
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    fn add(a: &Matrix, b: &Matrix) -> Matrix {
        a.iter()
            .zip(b)
            .map(|(x, y)| x.iter().zip(y).map(|(u, v)| u + v).collect())
            .collect()
    }

    /// Mean of the final token states of one sentence.
    pub fn mean_pooled(ckpt: &Checkpoint, layers: usize, ids: &[u32]) -> Vec<f64> {
        let mut x: Matrix = ids
            .iter()
            .enumerate()
            .map(|(pos, &id)| {
                let w = row(ckpt, "embeddings.word_embeddings.weight", id as usize);
                let p = row(ckpt, "embeddings.position_embeddings.weight", pos);
                let t = row(ckpt, "embeddings.token_type_embeddings.weight", 0);
                (0..w.len()).map(|j| w[j] + p[j] + t[j]).collect()
            })
            .collect();
        x = layer_norm(ckpt, "embeddings.LayerNorm", &x);
        let n = ids.len();
        for i in 0..layers {
            let p = format!("encoder.layer.{i}.");
            let q = linear(ckpt, &format!("{p}attention.self.query"), &x);
            let k = linear(ckpt, &format!("{p}attention.self.key"), &x);
            let v = linear(ckpt, &format!("{p}attention.self.value"), &x);
            let d = x[0].len();
            let dh = d / HEADS;
            let mut context = vec![vec![0.0; d]; n];
            for h in 0..HEADS {
                let cols = h * dh..(h + 1) * dh;
                for a in 0..n {
                    let scores: Vec<f64> = (0..n)
                        .map(|b| {
                            cols.clone().map(|c| q[a][c] * k[b][c]).sum::<f64>()
                                / (dh as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in cols.clone() {
                        context[a][c] = (0..n).map(|b| e[b] / z * v[b][c]).sum();
                    }
                }
            }
            let attended = linear(ckpt, &format!("{p}attention.output.dense"), &context);
            x = layer_norm(
                ckpt,
                &format!("{p}attention.output.LayerNorm"),
                &add(&x, &attended),
            );
            let mut h = linear(ckpt, &format!("{p}intermediate.dense"), &x);
            for v in h.iter_mut().flatten() {
                *v = 0.5 * *v * (1.0 + erf(*v / std::f64::consts::SQRT_2));
            }
            let out = linear(ckpt, &format!("{p}output.dense"), &h);
            x = layer_norm(ckpt, &format!("{p}output.LayerNorm"), &add(&x, &out));
        }
        (0..x[0].len())
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n as f64)
            .collect()
    }
}

struct Files {
    _dir: adapeft_testing::TempDir,
    checkpoint: PathBuf,
    tokenizer: PathBuf,
}

fn files(ckpt: &Checkpoint) -> Files {
    let dir = adapeft_testing::temp_dir("bert");
    let checkpoint = dir.path().join("model.safetensors");
    let tokenizer = dir.path().join("tokenizer.json");
    write_checkpoint(ckpt, &checkpoint);
    write_tokenizer(&tokenizer);
    Files {
        _dir: dir,
        checkpoint,
        tokenizer,
    }
}

fn to_rows(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [n, d] = t.dims();
    let v: Vec<f32> = t.into_data().try_to_vec::<f32>().unwrap();
    (0..n)
        .map(|i| v[i * d..(i + 1) * d].iter().map(|&x| x as f64).collect())
        .collect()
}

#[test]
fn tokenizer_reads_the_file_pads_and_truncates() {
    let f = files(&random_checkpoint(1));
    let tok = BertTokenizer::from_file(&f.tokenizer, POSITIONS).unwrap();
    assert_eq!(tok.pad_id(), 0);
    assert_eq!(tok.vocab_size(), VOCAB.len());
    for (text, pieces) in TEXTS {
        assert_eq!(tok.tokens(text).unwrap(), pieces, "{text}");
        let (ids, types) = tok.encode(text).unwrap();
        let expected: Vec<u32> = pieces
            .iter()
            .map(|p| VOCAB.iter().position(|v| v == p).unwrap() as u32)
            .collect();
        assert_eq!(ids, expected, "{text}");
        assert_eq!(types, vec![0; ids.len()]);
    }
    // The batch is padded to its longest sequence (10), not the file's fixed 12.
    let device = Device::flex();
    let texts: Vec<&str> = TEXTS.iter().map(|(t, _)| *t).collect();
    let input = tok.batch(&texts, &device).unwrap();
    assert_eq!(input.dims(), [4, 10]);
    let mask: Vec<i64> = input
        .attention_mask
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let ids: Vec<i64> = input
        .token_ids
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    for (i, (_, pieces)) in TEXTS.iter().enumerate() {
        let row = &mask[i * 10..(i + 1) * 10];
        assert_eq!(row.iter().sum::<i64>() as usize, pieces.len());
        assert!(row[..pieces.len()].iter().all(|&m| m == 1));
        assert!(
            ids[i * 10 + pieces.len()..(i + 1) * 10]
                .iter()
                .all(|&t| t == 0)
        );
    }
    // Truncation keeps [CLS] and [SEP].
    let short = BertTokenizer::from_file(&f.tokenizer, 4).unwrap();
    assert_eq!(
        short.tokens(TEXTS[0].0).unwrap(),
        ["[CLS]", "the", "cat", "[SEP]"]
    );
    // Errors name the file.
    let err = BertTokenizer::from_file(f.tokenizer.with_file_name("absent.json"), 8).unwrap_err();
    assert!(
        matches!(err, BertError::Tokenizer { .. }) && err.to_string().contains("absent.json"),
        "{err}"
    );
    std::fs::write(&f.tokenizer, "{ not json").unwrap();
    let err = BertTokenizer::from_file(&f.tokenizer, 8).unwrap_err();
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn padded_batch_matches_the_host_reference_of_each_unpadded_sentence() {
    let ckpt = random_checkpoint(7);
    let f = files(&ckpt);
    let tok = BertTokenizer::from_file(&f.tokenizer, POSITIONS).unwrap();
    let texts: Vec<&str> = TEXTS.iter().map(|(t, _)| *t).collect();
    for backend in adapeft_testing::backends() {
        let device = backend.device;
        let bert = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap();
        let got = to_rows(
            bert.mean_pooled(&tok.batch(&texts, &device).unwrap())
                .unwrap(),
        );
        let mut worst = 0.0f64;
        for (text, row) in texts.iter().zip(&got) {
            let (ids, _) = tok.encode(text).unwrap();
            let expected = host::mean_pooled(&ckpt, LAYERS, &ids);
            for (a, b) in row.iter().zip(&expected) {
                worst = worst.max((a - b).abs());
            }
        }
        // f32 on the device against f64 on the host, values of order 1.
        assert!(worst < 1e-5, "{}: max abs difference {worst}", backend.name);
    }
    // The reference is sensitive to what is checked: padding positions that leaked into the
    // attention, or a mean over the padded length, would move the short sentences by far more.
    let (ids, _) = tok.encode(texts[3]).unwrap();
    let mut padded = ids.clone();
    padded.extend([0u32; 7]);
    let leaked = host::mean_pooled(&ckpt, LAYERS, &padded);
    let clean = host::mean_pooled(&ckpt, LAYERS, &ids);
    let gap = leaked
        .iter()
        .zip(&clean)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(gap > 1e-2, "padding would go unnoticed: {gap}");
}

#[test]
fn save_writes_back_the_loaded_checkpoint_exactly() {
    let ckpt = random_checkpoint(3);
    let f = files(&ckpt);
    let device = Device::flex();
    let bert = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap();
    let out = f.checkpoint.with_file_name("saved.safetensors");
    save_hf_safetensors(&bert, &out).unwrap();
    let saved = read_checkpoint(&out);
    // Everything but the pooler (which the encoder does not use) comes back bit for bit,
    // in PyTorch's layouts, under Hugging Face's names.
    let used: Vec<&String> = ckpt.keys().filter(|k| !k.starts_with("pooler.")).collect();
    assert_eq!(saved.keys().collect::<Vec<_>>(), used);
    for name in used {
        assert_eq!(saved[name].shape, ckpt[name].shape, "{name}");
        assert_eq!(saved[name].values, ckpt[name].values, "{name}");
    }
    // And the saved file loads into an encoder that computes the same embeddings.
    let again = load_hf_safetensors(config().init(&device), &out).unwrap();
    let input = BertInput::pad(&[(vec![2, 6, 7, 3], vec![0; 4])], 0, &device).unwrap();
    let a = to_rows(bert.mean_pooled(&input).unwrap());
    let b = to_rows(again.mean_pooled(&input).unwrap());
    assert_eq!(a, b);
}

#[test]
fn loading_names_the_offending_tensor() {
    let device = Device::flex();
    let base = random_checkpoint(5);

    let mut missing = base.clone();
    missing.remove("encoder.layer.1.output.dense.weight");
    let f = files(&missing);
    let err = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap_err();
    match &err {
        BertError::MissingTensors { tensors, .. } => {
            assert_eq!(tensors, &["encoder.layer.1.output.dense.weight"])
        }
        other => panic!("expected MissingTensors, got {other}"),
    }

    let mut misshapen = base.clone();
    misshapen.insert(
        "encoder.layer.0.intermediate.dense.weight".into(),
        HostTensor {
            shape: vec![INTERMEDIATE + 1, HIDDEN],
            values: vec![0.0; (INTERMEDIATE + 1) * HIDDEN],
        },
    );
    let f = files(&misshapen);
    let err = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap_err();
    match &err {
        BertError::TensorMismatch { tensor, reason, .. } => {
            assert_eq!(tensor, "encoder.layer.0.intermediate.dense.weight");
            assert!(reason.contains("13"), "{reason}");
        }
        other => panic!("expected TensorMismatch, got {other}"),
    }

    // A checkpoint one layer deeper than the configuration: its extra layer is reported.
    let f = files(&base);
    let shallow = BertConfig::new(VOCAB.len(), HIDDEN, 1, HEADS, INTERMEDIATE)
        .with_max_position_embeddings(POSITIONS);
    let err = load_hf_safetensors(shallow.init(&device), &f.checkpoint).unwrap_err();
    match &err {
        BertError::UnexpectedTensors { tensors, .. } => {
            assert_eq!(tensors.len(), 16, "{tensors:?}");
            assert!(
                tensors.iter().all(|t| t.starts_with("encoder.layer.1.")),
                "{tensors:?}"
            );
            assert!(tensors.contains(&"encoder.layer.1.output.LayerNorm.weight".to_string()));
        }
        other => panic!("expected UnexpectedTensors, got {other}"),
    }

    let err = load_hf_safetensors(
        config().init(&device),
        f.checkpoint.with_file_name("absent"),
    )
    .unwrap_err();
    assert!(
        matches!(err, BertError::Io { .. }) && err.to_string().contains("absent"),
        "{err}"
    );
    std::fs::write(&f.checkpoint, b"not a checkpoint").unwrap();
    let err = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap_err();
    assert!(matches!(err, BertError::Checkpoint { .. }), "{err}");
}

#[test]
fn config_json_builds_the_same_encoder() {
    let dir = adapeft_testing::temp_dir("bert");
    let path = dir.path().join("config.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"model_type": "bert", "vocab_size": {}, "hidden_size": {HIDDEN},
            "num_hidden_layers": {LAYERS}, "num_attention_heads": {HEADS},
            "intermediate_size": {INTERMEDIATE}, "max_position_embeddings": {POSITIONS},
            "hidden_act": "gelu", "layer_norm_eps": 1e-12}}"#,
            VOCAB.len()
        ),
    )
    .unwrap();
    let ckpt = random_checkpoint(11);
    let f = files(&ckpt);
    let device = Device::flex();
    let c = BertConfig::from_hf_json(&path).unwrap();
    let bert = load_hf_safetensors(c.init(&device), &f.checkpoint).unwrap();
    assert_eq!(
        (bert.hidden_size(), bert.max_positions(), bert.layers.len()),
        (HIDDEN, POSITIONS, LAYERS)
    );
}

#[test]
fn written_tokenizer_agrees_with_the_hand_made_file() {
    let f = files(&random_checkpoint(1));
    let hand = BertTokenizer::from_file(&f.tokenizer, POSITIONS).unwrap();
    let dir = adapeft_testing::temp_dir("bert");
    let path = write_wordpiece_tokenizer(dir.path(), &VOCAB).unwrap();
    let written = BertTokenizer::from_file(&path, POSITIONS).unwrap();
    for (text, pieces) in TEXTS {
        assert_eq!(written.tokens(text).unwrap(), pieces, "{text}");
        assert_eq!(
            written.encode(text).unwrap(),
            hand.encode(text).unwrap(),
            "{text}"
        );
    }
    assert_eq!(written.pad_id(), 0);
    let vocab = std::fs::read_to_string(dir.path().join("vocab.txt")).unwrap();
    assert_eq!(vocab.lines().collect::<Vec<_>>(), VOCAB);
    let err = write_wordpiece_tokenizer(dir.path(), &["[PAD]", "[UNK]", "[CLS]", "a"]).unwrap_err();
    assert!(err.to_string().contains("lacks [SEP]"), "{err}");
    let err =
        write_wordpiece_tokenizer(dir.path(), &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "a"])
            .unwrap_err();
    assert!(err.to_string().contains("holds a twice"), "{err}");
}

#[test]
fn truncated_encoder_is_the_first_layers_of_the_full_one() {
    let ckpt = random_checkpoint(13);
    let f = files(&ckpt);
    let device = Device::flex();
    let bert = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap();
    let shallow = bert.truncated(1);
    assert_eq!(shallow.layers.len(), 1);
    let ids = vec![2, 5, 6, 12, 7, 3];
    let input = BertInput::pad(&[(ids.clone(), vec![0; ids.len()])], 0, &device).unwrap();
    let got = &to_rows(shallow.mean_pooled(&input).unwrap())[0];
    let expected = host::mean_pooled(&ckpt, 1, &ids);
    let worst = got
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "max abs difference {worst}");
}

#[test]
fn loaded_on_an_autodiff_device_every_parameter_gets_a_gradient() {
    use adapeft_bert::{BertClassifier, TextBatch};
    use adapeft_importance::{Objective, discover};

    let ckpt = random_checkpoint(17);
    let f = files(&ckpt);
    let device = Device::flex().autodiff();
    let bert = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap();
    let model = BertClassifier::new(bert, 3, &device);
    let params = discover(&model);
    assert!(
        params.iter().all(|p| p.require_grad),
        "a loaded parameter is frozen"
    );
    let tok = BertTokenizer::from_file(&f.tokenizer, POSITIONS).unwrap();
    let texts: Vec<&str> = TEXTS.iter().map(|(t, _)| *t).collect();
    let batch = TextBatch::new(tok.batch(&texts, &device).unwrap(), &[0, 1, 2, 1]).unwrap();
    let grads = model.loss(&batch).backward();
    // Every parameter the batch touches has a non-zero gradient; the word and position
    // embeddings only in the rows the batch uses.
    let word = model.bert.embeddings.word.weight.grad(&grads).unwrap();
    let rows: Vec<f32> = word
        .abs()
        .sum_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let used = [2, 3, 5, 6, 12, 7, 8, 9, 14, 10, 11, 15, 17, 18, 1, 13];
    for (id, norm) in rows.iter().enumerate() {
        assert_eq!(
            *norm > 0.0,
            used.contains(&id),
            "word embedding row {id} ({})",
            VOCAB[id]
        );
    }
    let ffn = model.bert.layers[1].ffn.output.weight.grad(&grads).unwrap();
    let norm: f32 = ffn.abs().sum().into_scalar();
    assert!(norm > 0.0);
}

#[test]
fn a_batch_longer_than_the_positions_or_a_label_beyond_the_head_is_a_typed_error() {
    use adapeft_bert::{BertClassifier, TextBatch};
    use adapeft_importance::{EstimateError, Estimator, Grouping, ShortRun, discover};

    let f = files(&random_checkpoint(23));
    let device = Device::flex().autodiff();
    let bert = load_hf_safetensors(config().init(&device), &f.checkpoint).unwrap();
    // 20 tokens against 16 positions.
    let long = BertInput::pad(&[(vec![2; 20], vec![0; 20])], 0, &device).unwrap();
    let err = bert.forward(&long).unwrap_err();
    assert!(
        matches!(
            err,
            BertError::TooLong {
                tokens: 20,
                positions: POSITIONS,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("20 tokens") && err.to_string().contains("16 positions"));
    assert!(bert.mean_pooled(&long).is_err());

    // A tokenizer for this model refuses a max_len beyond its positions, and keeps one within.
    let err = BertTokenizer::for_model(&f.tokenizer, POSITIONS + 1, &bert).unwrap_err();
    assert!(
        matches!(
            err,
            BertError::TooLong {
                tokens: 17,
                positions: 16,
                ..
            }
        ),
        "{err:?}"
    );
    let tok = BertTokenizer::for_model(&f.tokenizer, POSITIONS, &bert).unwrap();
    assert_eq!(tok.max_len(), POSITIONS);

    // The estimators (and so every selection) refuse both with the batch's index, before any
    // pass, and leave the model as it was.
    let model = BertClassifier::new(bert, 3, &device);
    let groups = Grouping::PerTensor.group(discover(&model)).unwrap();
    let texts: Vec<&str> = TEXTS.iter().map(|(t, _)| *t).collect();
    let good = TextBatch::new(tok.batch(&texts, &device).unwrap(), &[0, 1, 2, 1]).unwrap();
    let too_long = TextBatch::new(long, &[0]).unwrap();
    let bad_label = TextBatch::new(tok.batch(&texts, &device).unwrap(), &[0, 1, 3, 1]).unwrap();
    let before = adapeft_testing::snapshot(&model);
    let run = ShortRun::new().with_steps(1);
    match run.estimate(&model, &[good.clone(), too_long], &groups) {
        Err(EstimateError::InvalidBatch { batch: 1, reason }) => {
            assert!(reason.contains("20 tokens"), "{reason}")
        }
        other => panic!("expected InvalidBatch for batch 1, got {other:?}"),
    }
    match run.estimate(&model, &[bad_label, good.clone()], &groups) {
        Err(EstimateError::InvalidBatch { batch: 0, reason }) => assert!(
            reason.contains("label 3 of sequence 2") && reason.contains("3 classes"),
            "{reason}"
        ),
        other => panic!("expected InvalidBatch for batch 0, got {other:?}"),
    }
    // A token id beyond the vocabulary, and labels that do not match the sequences.
    let unknown = TextBatch::new(
        BertInput::pad(&[(vec![2, 99, 3], vec![0; 3])], 0, &device).unwrap(),
        &[0],
    )
    .unwrap();
    let err = model.check_batch(&unknown).unwrap_err();
    assert!(
        err.to_string()
            .contains("token id 99 at sequence 0, position 1 is not below the embedding's 20 rows"),
        "{err}"
    );
    let mut miscounted = good.clone();
    miscounted.labels = miscounted.labels.narrow(0, 0, 2);
    let err = model.check_batch(&miscounted).unwrap_err();
    assert!(
        err.to_string().contains("2 labels for 4 sequences"),
        "{err}"
    );
    assert!(matches!(
        run.estimate(&model, &[unknown], &groups),
        Err(EstimateError::InvalidBatch { batch: 0, .. })
    ));
    assert_eq!(adapeft_testing::snapshot(&model), before);
}
