//! The files the studies write: CSV tables, SVG figures, Markdown reports, and the check
//! every run ends with (and `--check` runs alone).

use std::error::Error;
use std::path::Path;

/// Writes `header` and then every row to the CSV file `path`.
pub fn write_csv<H, R>(path: &Path, header: H, rows: R) -> Result<(), Box<dyn Error>>
where
    H: IntoIterator,
    H::Item: AsRef<[u8]>,
    R: IntoIterator,
    R::Item: IntoIterator,
    <R::Item as IntoIterator>::Item: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_path(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    w.write_record(header)?;
    for row in rows {
        w.write_record(row)?;
    }
    w.flush()?;
    Ok(())
}

/// A plotting error (plotters' errors are generic over the drawing backend) as a boxed error.
pub fn plot_error(e: impl std::fmt::Display) -> Box<dyn Error> {
    e.to_string().into()
}

/// Every problem with the files `names` in `dir`: missing, empty, an SVG without its closing
/// tag, a Markdown file holding a non-finite number. Empty when all is well.
pub fn check_files(dir: &Path, names: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for name in names {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(format!("{}: {e}", path.display())),
            Ok(text) if text.trim().is_empty() => {
                problems.push(format!("{}: empty", path.display()))
            }
            Ok(text) => {
                if name.ends_with(".svg") && !(text.contains("<svg") && text.contains("</svg>")) {
                    problems.push(format!("{}: not a complete SVG", path.display()));
                }
                if name.ends_with(".md") && (text.contains("NaN") || text.contains("inf |")) {
                    problems.push(format!("{}: holds a non-finite number", path.display()));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_files_names_each_missing_empty_or_broken_file() {
        let dir = adapeft_testing::temp_dir("studies-outputs");
        let names: Vec<String> = ["t.csv", "f.svg", "r.md", "e.csv", "gone.csv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        write_csv(&dir.path().join("t.csv"), &["a", "b"], [["1", "2"]]).unwrap();
        std::fs::write(dir.path().join("f.svg"), "<svg>").unwrap();
        std::fs::write(dir.path().join("r.md"), "| x | NaN |").unwrap();
        std::fs::write(dir.path().join("e.csv"), " \n").unwrap();
        let problems = check_files(dir.path(), &names);
        assert_eq!(problems.len(), 4, "{problems:?}");
        for (problem, name) in problems.iter().zip(["f.svg", "r.md", "e.csv", "gone.csv"]) {
            assert!(problem.contains(name), "{problem}");
        }
        let csv = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
        assert_eq!(csv, "a,b\n1,2\n");
    }
}
