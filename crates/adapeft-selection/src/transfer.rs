//! Carrying a selection to another model of the same family (more or fewer layers).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use adapeft_importance::discover;
use burn::module::Module;

use crate::error::SelectionError;
use crate::selection::{CellChoice, GroupChoice, Selection};

/// A path split into its template (numeric segments replaced by `*`) and its indices.
struct Parsed {
    segments: Vec<String>,
    /// For each numeric segment: (position, template key up to it, index).
    indices: Vec<(usize, String, usize)>,
    template: String,
}

fn parse(path: &str) -> Parsed {
    let segments: Vec<String> = path.split('.').map(str::to_string).collect();
    let mut template = Vec::with_capacity(segments.len());
    let mut indices = Vec::new();
    for (pos, seg) in segments.iter().enumerate() {
        match seg.parse::<usize>() {
            Ok(i) if !seg.is_empty() => {
                template.push("*".to_string());
                indices.push((pos, template.join("."), i));
            }
            _ => template.push(seg.clone()),
        }
    }
    Parsed {
        template: template.join("."),
        segments,
        indices,
    }
}

/// For each template key ending in `*`: how many indices the model has there (max + 1).
fn depths<'a>(paths: impl Iterator<Item = &'a Parsed>) -> HashMap<String, usize> {
    let mut out: HashMap<String, usize> = HashMap::new();
    for p in paths {
        for (_, key, i) in &p.indices {
            let n = out.entry(key.clone()).or_insert(0);
            *n = (*n).max(i + 1);
        }
    }
    out
}

/// Target index `j` of `n_target` -> the source index at the same relative depth.
fn map_index(j: usize, n_target: usize, n_source: usize) -> usize {
    if n_target <= 1 || n_source <= 1 {
        return 0;
    }
    let r = j as f64 * (n_source - 1) as f64 / (n_target - 1) as f64;
    (r.round() as usize).min(n_source - 1)
}

/// The target group's name: the source group's name with the source path's prefix replaced by
/// the target path's, when the name is the path or a prefix of it (per-tensor, per-module,
/// per-layer regex groups) or such a prefix and one more segment (the units below the tensor:
/// `layers.3.attention.head[2]`, `layers.3.fc.out[17]`); otherwise the name unchanged (kinds,
/// `other`, custom names).
fn rename(group: &str, source: &Parsed, target: &Parsed) -> String {
    let gsegs: Vec<&str> = group.split('.').collect();
    let common = gsegs
        .iter()
        .zip(&source.segments)
        .take_while(|(g, s)| *g == s)
        .count();
    if common == gsegs.len() {
        target.segments[..gsegs.len()].join(".")
    } else if common >= 1 && common + 1 == gsegs.len() {
        format!("{}.{}", target.segments[..common].join("."), gsegs[common])
    } else {
        group.to_string()
    }
}

impl Selection {
    /// Maps this selection onto `other`, a model of the same family with possibly more or fewer
    /// repeated blocks, by parameter path.
    ///
    /// # The rule for layer indices
    /// Numeric path segments (`layers.3.mha.query.weight`) are indices into repeated blocks. A
    /// target parameter maps to the source parameter with the same path template
    /// (`layers.*.mha.query.weight`) at the same *relative depth*: target index `j` of `n_t`
    /// blocks maps to source index `round(j (n_s - 1) / (n_t - 1))` of `n_s` (each level of
    /// nesting separately). A group chosen in every layer of a 4-layer model so maps to every
    /// layer of a 12-layer one, the first and last layers map to the first and last, and equal
    /// depths map one to one.
    ///
    /// Each target parameter takes the chosen/frozen verdict of the source group its
    /// counterpart is in. A counterpart cut into units below the tensor (`Groups::split`:
    /// neurons, rows, blocks, heads) passes its cells on: the target tensor gets the same
    /// tiling and each of its cells the verdict of the source cell with the same number, so
    /// the counterparts must have the same shape. Target groups are named by replacing the
    /// source path prefix with the target's (`layers.3` -> `layers.11`) when the group name is
    /// a path or a prefix of one, or such a prefix and a unit's name
    /// (`layers.3.attention.head[2]`), and keep their name otherwise (kinds). Their scores are copied from the source group,
    /// with the parameter count of the target; the front, cost and settings stay the source's.
    ///
    /// # Errors
    /// [`SelectionError::Unmatched`] listing every target parameter path with no counterpart
    /// in the selection, every selected-model path whose template the target lacks, and every
    /// target parameter whose counterpart was cut into cells of another shape.
    pub fn transfer_to<M: Module>(&self, other: &M) -> Result<Selection, SelectionError> {
        let source: Vec<(Parsed, usize)> = self
            .groups()
            .iter()
            .enumerate()
            .flat_map(|(g, choice)| choice.paths.iter().map(move |p| (parse(p), g)))
            .collect();
        // The tensors cut into cells: each cell's group, by tensor path.
        let mut cells: HashMap<&str, Vec<(usize, u32)>> = HashMap::new();
        for (g, choice) in self.groups().iter().enumerate() {
            for c in &choice.cells {
                cells.entry(c.path.as_str()).or_default().push((g, c.cell));
            }
        }
        let tiled: Vec<Parsed> = cells.keys().map(|p| parse(p)).collect();
        let by_path: HashMap<String, usize> = source
            .iter()
            .map(|(p, g)| (p.segments.join("."), *g))
            .collect();
        let target_params = discover(other);
        let target: Vec<Parsed> = target_params.iter().map(|p| parse(&p.path)).collect();
        let source_depths = depths(source.iter().map(|(p, _)| p).chain(&tiled));
        let target_depths = depths(target.iter());
        let target_templates: BTreeSet<&str> = target.iter().map(|t| t.template.as_str()).collect();

        let mut unmatched = Vec::new();
        for p in source.iter().map(|(p, _)| p).chain(&tiled) {
            if !target_templates.contains(p.template.as_str()) {
                unmatched.push(format!("source: {}", p.segments.join(".")));
            }
        }
        unmatched.sort();
        let mut mapped: Vec<(usize, usize, &Parsed)> = Vec::new(); // (target param, source group, source path)
        // (target param, source tensor path): a counterpart cut into cells.
        let mut mapped_cells: Vec<(usize, &Parsed)> = Vec::new();
        let source_parsed: HashMap<String, &Parsed> = source
            .iter()
            .map(|(p, _)| p)
            .chain(&tiled)
            .map(|p| (p.segments.join("."), p))
            .collect();
        for (t, parsed) in target.iter().enumerate() {
            let mut segs = parsed.segments.clone();
            for (pos, key, j) in &parsed.indices {
                let n_t = target_depths.get(key).copied().unwrap_or(1);
                let n_s = source_depths.get(key).copied().unwrap_or(0);
                segs[*pos] = map_index(*j, n_t, n_s).to_string();
            }
            let path = segs.join(".");
            match (by_path.get(&path), self.tilings().get(&path)) {
                (Some(&g), _) => mapped.push((t, g, source_parsed[&path])),
                (None, Some(tiling)) if cells.contains_key(path.as_str()) => {
                    if tiling.fits(&target_params[t].shape) {
                        mapped_cells.push((t, source_parsed[&path]));
                    } else {
                        unmatched.push(format!(
                            "target: {} (shape {:?}; its counterpart `{path}` is cut into cells of a {} x {} view)",
                            target_params[t].path,
                            target_params[t].shape,
                            tiling.rows,
                            tiling.cols
                        ));
                    }
                }
                _ => unmatched.push(format!("target: {}", target_params[t].path)),
            }
        }
        if !unmatched.is_empty() {
            return Err(SelectionError::Unmatched { paths: unmatched });
        }

        let mut groups: Vec<GroupChoice> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut group_of = |g: usize, source_path: &Parsed, t: usize| -> usize {
            let from = &self.groups()[g];
            let name = rename(&from.score.name, source_path, &target[t]);
            *index.entry(name.clone()).or_insert_with(|| {
                let mut score = from.score.clone();
                score.name = name;
                score.params = 0;
                groups.push(GroupChoice {
                    score,
                    chosen: from.chosen,
                    always: from.always,
                    paths: Vec::new(),
                    cells: Vec::new(),
                    // Adapters keep their rank; their size assumes the counterpart's shape
                    // (true for the repeated blocks of one model family).
                    options: from.options.clone(),
                    lora: from.lora,
                });
                groups.len() - 1
            })
        };
        let mut whole: Vec<(usize, usize)> = Vec::new();
        for (t, g, source_path) in mapped {
            whole.push((group_of(g, source_path, t), t));
        }
        let mut parts: Vec<(usize, usize, u32)> = Vec::new();
        let mut tilings = BTreeMap::new();
        for (t, source_path) in mapped_cells {
            let path = source_path.segments.join(".");
            for &(g, cell) in &cells[path.as_str()] {
                parts.push((group_of(g, source_path, t), t, cell));
            }
            tilings.insert(target_params[t].path.clone(), self.tilings()[&path]);
        }
        for (k, t) in whole {
            groups[k].score.params += target_params[t].numel;
            groups[k].paths.push(target_params[t].path.clone());
        }
        for (k, t, cell) in parts {
            let path = &target_params[t].path;
            groups[k].score.params += tilings[path].cell_numel(cell as usize);
            groups[k].cells.push(CellChoice {
                path: path.clone(),
                cell,
            });
        }
        let total = target_params.iter().map(|p| p.numel).sum();
        Ok(self.with_groups(groups, total).with_tilings(tilings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_depth_rule() {
        // 4 -> 12: ends map to ends, every target layer gets a source layer.
        let m: Vec<usize> = (0..12).map(|j| map_index(j, 12, 4)).collect();
        assert_eq!(m, [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
        // Equal depths: identity.
        assert!((0..5).all(|j| map_index(j, 5, 5) == j));
        // 12 -> 4: first and last kept.
        let m: Vec<usize> = (0..4).map(|j| map_index(j, 4, 12)).collect();
        assert_eq!(m, [0, 4, 7, 11]);
        assert_eq!(map_index(0, 1, 6), 0);
    }

    #[test]
    fn templates_and_renaming() {
        let s = parse("layers.3.mha.query.weight");
        assert_eq!(s.template, "layers.*.mha.query.weight");
        assert_eq!(s.indices, vec![(1, "layers.*".to_string(), 3)]);
        let t = parse("layers.11.mha.query.weight");
        assert_eq!(
            rename("layers.3.mha.query.weight", &s, &t),
            "layers.11.mha.query.weight"
        );
        assert_eq!(rename("layers.3.mha.query", &s, &t), "layers.11.mha.query");
        assert_eq!(rename("layers.3", &s, &t), "layers.11");
        assert_eq!(rename("attention", &s, &t), "attention");
        // Units below the tensor: a module's prefix and the unit's own name.
        assert_eq!(
            rename("layers.3.mha.head[2]", &s, &t),
            "layers.11.mha.head[2]"
        );
        assert_eq!(
            rename("layers.3.mha.query.out[5]", &s, &t),
            "layers.11.mha.query.out[5]"
        );
        assert_eq!(rename("layers.head[2]", &s, &t), "layers.head[2]");
    }
}
