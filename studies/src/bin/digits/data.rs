//! The digits data set: loading the vendored CSV and the fixed, seeded train/test split.
//!
//! `data/digits/digits.csv.gz` holds 1,797 rows of 65 integers: 64 pixel counts of an 8x8
//! image (row-major, `0..=16`) and the class label (`0..=9`); see `data/digits/README.md` for
//! its source and license (CC BY 4.0).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Pixels per image (8 x 8).
pub const PIXELS: usize = 64;
/// Side of the square image.
pub const SIDE: usize = 8;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Rows in the vendored file.
pub const EXPECTED_ROWS: usize = 1797;
/// The largest pixel count in the file (pixels are divided by it to lie in `[0, 1]`).
const MAX_PIXEL: f32 = 16.0;
/// Fraction of each class held out for testing.
const TEST_FRACTION: f64 = 0.2;
/// Seed of the train/test split: fixed, so every run and every method sees the same split.
const SPLIT_SEED: u64 = 20_240_517;

/// What went wrong while reading the data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CSV reader failed (I/O, gzip or CSV syntax) at a record.
    #[error("cannot read {} as gzip CSV: {source}", path.display())]
    Csv { path: PathBuf, source: csv::Error },
    /// A row does not have 65 columns.
    #[error("{}: row {row} has {found} columns, expected 65 (64 pixels and a label)", path.display())]
    Columns {
        path: PathBuf,
        row: usize,
        found: usize,
    },
    /// A value is not an integer in its allowed range.
    #[error("{}: row {row}, column {column}: {value:?} is not an integer in {allowed}", path.display())]
    Value {
        path: PathBuf,
        row: usize,
        column: usize,
        value: String,
        allowed: &'static str,
    },
    /// The file does not have the expected number of rows.
    #[error("{}: {found} rows, expected {EXPECTED_ROWS} (is the file truncated or replaced?)", path.display())]
    Rows { path: PathBuf, found: usize },
}

/// Images (row-major pixels in `[0, 1]`) and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `len() * PIXELS` values, image after image.
    pub pixels: Vec<f32>,
    /// One label in `0..CLASSES` per image.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Dataset {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// The vendored file, found from the workspace root whatever the working directory.
pub fn default_path() -> PathBuf {
    adapeft_studies::paths::data_dir("digits").join("digits.csv.gz")
}

/// Reads the gzip CSV at `path`, checking 65 integer columns per row and 1,797 rows, and
/// scales pixels to `[0, 1]`.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let file = File::open(path).map_err(|source| DataError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(GzDecoder::new(BufReader::new(file)));
    let mut data = Dataset {
        pixels: Vec::with_capacity(EXPECTED_ROWS * PIXELS),
        labels: Vec::with_capacity(EXPECTED_ROWS),
    };
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|source| DataError::Csv {
            path: path.to_owned(),
            source,
        })?;
        if record.len() != PIXELS + 1 {
            return Err(DataError::Columns {
                path: path.to_owned(),
                row,
                found: record.len(),
            });
        }
        for (column, field) in record.iter().enumerate() {
            let is_label = column == PIXELS;
            let max = if is_label { CLASSES - 1 } else { 16 };
            let value = field
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v <= max)
                .ok_or_else(|| DataError::Value {
                    path: path.to_owned(),
                    row,
                    column,
                    value: field.to_string(),
                    allowed: if is_label { "0..=9" } else { "0..=16" },
                })?;
            if is_label {
                data.labels.push(value);
            } else {
                data.pixels.push(value as f32 / MAX_PIXEL);
            }
        }
    }
    if data.len() != EXPECTED_ROWS {
        return Err(DataError::Rows {
            path: path.to_owned(),
            found: data.len(),
        });
    }
    Ok(data)
}

/// A train/test split.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Dataset,
    pub test: Dataset,
}

/// The indices of the fixed split: stratified by class, `TEST_FRACTION` of each class (rounded)
/// held out, shuffled with a fixed seed. Returns `(train, test)`, each in increasing order.
pub fn split_indices(labels: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(SPLIT_SEED);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for class in 0..CLASSES {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        let n_test = (members.len() as f64 * TEST_FRACTION).round() as usize;
        test.extend_from_slice(&members[..n_test]);
        train.extend_from_slice(&members[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Splits `data` with [`split_indices`].
pub fn split(data: &Dataset) -> Split {
    let (train, test) = split_indices(&data.labels);
    Split {
        train: data.subset(&train),
        test: data.subset(&test),
    }
}

/// Checks the invariants of the split that the study relies on (run at every start, so the
/// example's own run is the test): disjoint, covering, stratified, deterministic.
pub fn check_split(data: &Dataset) -> Result<(), String> {
    let (train, test) = split_indices(&data.labels);
    if split_indices(&data.labels) != (train.clone(), test.clone()) {
        return Err("the split is not deterministic".into());
    }
    let mut seen = vec![0u8; data.len()];
    for &i in train.iter().chain(&test) {
        seen[i] += 1;
    }
    if seen.iter().any(|&s| s != 1) {
        return Err("train and test do not partition the data set".into());
    }
    for class in 0..CLASSES {
        let total = data.labels.iter().filter(|&&l| l == class).count();
        let held = test.iter().filter(|&&i| data.labels[i] == class).count();
        let want = (total as f64 * TEST_FRACTION).round() as usize;
        if held != want {
            return Err(format!(
                "class {class}: {held} test images, expected {want}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_file_loads_with_expected_shape_and_range() {
        let data = load(&default_path()).unwrap();
        assert_eq!(data.len(), EXPECTED_ROWS);
        assert_eq!(data.pixels.len(), EXPECTED_ROWS * PIXELS);
        assert!(data.pixels.iter().all(|&p| (0.0..=1.0).contains(&p)));
        assert!(data.labels.iter().all(|&l| l < CLASSES));
        // The first row of the file (a zero).
        assert_eq!(data.labels[0], 0);
        assert_eq!(data.image(0)[2], 5.0 / 16.0);
    }

    #[test]
    fn split_is_a_stratified_partition_of_80_20() {
        let data = load(&default_path()).unwrap();
        check_split(&data).unwrap();
        let s = split(&data);
        assert_eq!(s.train.len() + s.test.len(), EXPECTED_ROWS);
        assert!((355..=365).contains(&s.test.len()), "{}", s.test.len());
    }

    #[test]
    fn missing_file_and_bad_rows_give_clear_errors() {
        let err = load(Path::new("/nonexistent/digits.csv.gz")).unwrap_err();
        assert!(err.to_string().contains("cannot open"), "{err}");

        let dir = adapeft_testing::temp_dir("digits");
        let path = dir.path().join("short.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut gz, b"1,2,3\n").unwrap();
        gz.finish().unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, DataError::Columns { found: 3, .. }), "{err}");
    }
}
