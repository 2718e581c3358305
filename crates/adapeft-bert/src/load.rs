//! Reading and writing Hugging Face BERT checkpoints (safetensors) through burn-store.
//!
//! `SafetensorsStore` reads the file, a `KeyRemapper` turns Hugging Face's names into this
//! crate's paths (the table in [`crate::model`]), and `PyTorchToBurnAdapter` transposes the
//! linear weights (`[out, in]` in PyTorch, `[in, out]` in burn) and renames the LayerNorms'
//! `weight`/`bias` to `gamma`/`beta`. Loading is strict: every parameter must be found with
//! its shape, and a tensor the model has no place for is an error, except the ones a sentence
//! encoder has no use for ([`IGNORED`]).

use std::path::Path;

use burn::store::{
    ApplyError, BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use regex::Regex;

use crate::error::BertError;
use crate::model::Bert;

/// Hugging Face module prefixes and this crate's, `{i}` standing for a layer index.
/// No prefix of one side is a prefix of another on the same side, so the rules can be
/// applied one after the other (as `KeyRemapper` does) in either direction.
const NAMES: [(&str, &str); 12] = [
    ("embeddings.word_embeddings", "embeddings.word"),
    ("embeddings.position_embeddings", "embeddings.position"),
    ("embeddings.token_type_embeddings", "embeddings.token_type"),
    ("embeddings.LayerNorm", "embeddings.norm"),
    (
        "encoder.layer.{i}.attention.self.query",
        "layers.{i}.attention.query",
    ),
    (
        "encoder.layer.{i}.attention.self.key",
        "layers.{i}.attention.key",
    ),
    (
        "encoder.layer.{i}.attention.self.value",
        "layers.{i}.attention.value",
    ),
    (
        "encoder.layer.{i}.attention.output.dense",
        "layers.{i}.attention.output",
    ),
    (
        "encoder.layer.{i}.attention.output.LayerNorm",
        "layers.{i}.attention_norm",
    ),
    (
        "encoder.layer.{i}.intermediate.dense",
        "layers.{i}.ffn.intermediate",
    ),
    ("encoder.layer.{i}.output.dense", "layers.{i}.ffn.output"),
    ("encoder.layer.{i}.output.LayerNorm", "layers.{i}.ffn_norm"),
];

/// Checkpoint tensors a sentence encoder does not use, skipped when loading: the pooler
/// (`pooler.dense`), the `position_ids` buffer, and the heads of pretraining checkpoints
/// (`cls.*`).
pub const IGNORED: [&str; 3] = [r"^pooler\.", r"^embeddings\.position_ids$", r"^cls\."];

/// A pattern that matches `template` (with `{i}` a layer index) as a path prefix followed
/// by a dot, and the replacement that writes `to` with the same index.
fn rule(from: &str, to: &str) -> (String, String) {
    let pattern = format!(r"^{}\.", regex::escape(from).replace(r"\{i\}", r"(\d+)"));
    (pattern, format!("{}.", to.replace("{i}", "${1}")))
}

/// Hugging Face name -> burn path (a `bert.` prefix, as in `BertFor*` checkpoints, is
/// dropped first). Tensors named otherwise keep their names.
pub fn hf_to_burn() -> KeyRemapper {
    let mut rules = vec![(r"^bert\.".to_string(), String::new())];
    rules.extend(NAMES.iter().map(|(hf, burn)| rule(hf, burn)));
    KeyRemapper::from_patterns(rules).expect("the name table compiles")
}

/// burn path -> Hugging Face name (for saving).
pub fn burn_to_hf() -> KeyRemapper {
    KeyRemapper::from_patterns(NAMES.iter().map(|(hf, burn)| rule(burn, hf)).collect())
        .expect("the name table compiles")
}

/// The Hugging Face name of a burn parameter path (for error messages).
pub fn hf_name(burn_path: &str) -> String {
    let mut name = burn_path.to_string();
    for (hf, burn) in NAMES {
        let (pattern, to) = rule(burn, hf);
        let re = Regex::new(&pattern).expect("the name table compiles");
        if re.is_match(&name) {
            name = re.replace(&name, to.as_str()).into_owned();
            break;
        }
    }
    if name.contains("LayerNorm.") {
        name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    }
    name
}

/// Loads a Hugging Face BERT checkpoint (`model.safetensors`) into `bert`, which must have
/// the checkpoint's shape (build it with [`crate::BertConfig::from_hf_json`] on the
/// checkpoint's `config.json`, then [`crate::BertConfig::init`]).
///
/// Errors name the tensors: [`BertError::MissingTensors`], [`BertError::TensorMismatch`]
/// (shape or dtype), [`BertError::UnexpectedTensors`] (a tensor neither used nor in
/// [`IGNORED`]). The returned model keeps `bert`'s device and parameter ids.
pub fn load_hf_safetensors(mut bert: Bert, path: impl AsRef<Path>) -> Result<Bert, BertError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(BertError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let mut store = SafetensorsStore::from_file(path)
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(hf_to_burn())
        .allow_partial(true)
        .validate(false);
    let result = bert
        .load_from(&mut store)
        .map_err(|e| BertError::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if let Some(error) = result.errors.first() {
        let (tensor, reason) = match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => (
                path,
                format!(
                    "shape {:?} in the file, the model expects {:?}",
                    found.as_slice(),
                    expected.as_slice()
                ),
            ),
            ApplyError::DTypeMismatch {
                path,
                expected,
                found,
            } => (
                path,
                format!("dtype {found:?} in the file, the model expects {expected:?}"),
            ),
            ApplyError::AdapterError { path, message }
            | ApplyError::LoadError { path, message } => (path, message.clone()),
        };
        return Err(BertError::TensorMismatch {
            path: path.to_path_buf(),
            tensor: hf_name(tensor),
            reason,
        });
    }
    if !result.missing.is_empty() {
        return Err(BertError::MissingTensors {
            path: path.to_path_buf(),
            tensors: result.missing.iter().map(|(p, _)| hf_name(p)).collect(),
        });
    }
    let ignored: Vec<Regex> = IGNORED
        .iter()
        .map(|p| Regex::new(p).expect("valid"))
        .collect();
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|name| !ignored.iter().any(|re| re.is_match(name)))
        .map(|name| hf_name(name))
        .collect();
    if !unexpected.is_empty() {
        return Err(BertError::UnexpectedTensors {
            path: path.to_path_buf(),
            tensors: unexpected,
        });
    }
    Ok(bert)
}

/// Writes `bert` as a Hugging Face BERT checkpoint: Hugging Face's tensor names, PyTorch's
/// layouts, f32 (what [`load_hf_safetensors`] and Hugging Face's loaders read). Replaces an
/// existing file.
pub fn save_hf_safetensors(bert: &Bert, path: impl AsRef<Path>) -> Result<(), BertError> {
    let path = path.as_ref();
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(burn_to_hf())
        .overwrite(true);
    bert.clone()
        .save_into(&mut store)
        .map_err(|e| BertError::Checkpoint {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways() {
        let pairs = [
            (
                "encoder.layer.11.attention.self.query.weight",
                "layers.11.attention.query.weight",
            ),
            (
                "encoder.layer.0.attention.output.dense.bias",
                "layers.0.attention.output.bias",
            ),
            (
                "encoder.layer.3.attention.output.LayerNorm.weight",
                "layers.3.attention_norm.weight",
            ),
            (
                "encoder.layer.3.intermediate.dense.weight",
                "layers.3.ffn.intermediate.weight",
            ),
            (
                "encoder.layer.5.output.dense.weight",
                "layers.5.ffn.output.weight",
            ),
            (
                "encoder.layer.5.output.LayerNorm.bias",
                "layers.5.ffn_norm.bias",
            ),
            (
                "embeddings.word_embeddings.weight",
                "embeddings.word.weight",
            ),
            ("embeddings.LayerNorm.bias", "embeddings.norm.bias"),
        ];
        let to_burn: Vec<(Regex, String)> = hf_to_burn().to_regex_pairs();
        let to_hf: Vec<(Regex, String)> = burn_to_hf().to_regex_pairs();
        let apply = |rules: &[(Regex, String)], name: &str| {
            rules.iter().fold(name.to_string(), |n, (re, to)| {
                re.replace_all(&n, to.as_str()).into_owned()
            })
        };
        for (hf, burn) in pairs {
            assert_eq!(apply(&to_burn, hf), burn);
            assert_eq!(apply(&to_burn, &format!("bert.{hf}")), burn);
            assert_eq!(apply(&to_hf, burn), hf);
        }
        assert_eq!(
            hf_name("layers.2.ffn_norm.gamma"),
            "encoder.layer.2.output.LayerNorm.weight"
        );
        assert_eq!(
            hf_name("layers.2.attention.key.bias"),
            "encoder.layer.2.attention.self.key.bias"
        );
        // Names outside the table pass through.
        assert_eq!(
            apply(&to_burn, "pooler.dense.weight"),
            "pooler.dense.weight"
        );
    }
}
