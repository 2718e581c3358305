//! The statistics of the studies' tables: means and sample standard deviations over seeds,
//! and Student-t 95% intervals of a mean and of a paired difference.

/// The arithmetic mean (NaN for no values).
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// The sample standard deviation (divisor `n - 1`; 0 for fewer than two values).
pub fn sample_std(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// The mean and the sample standard deviation; both NaN for no values.
pub fn mean_std(x: &[f64]) -> (f64, f64) {
    if x.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (mean(x), sample_std(x))
}

/// The two-sided 95% quantile of Student's t with `df` degrees of freedom (`t_{0.975, df}`),
/// from the standard table to 30 degrees, then the normal's 1.96 (NaN for `df = 0`).
pub fn t95(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => 1.96,
    }
}

/// The mean of `x` and the half-width of its 95% interval, `t95(n - 1) * s / sqrt(n)` (NaN
/// for fewer than two values: one seed gives no interval).
pub fn interval95(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    let half = if n < 2 {
        f64::NAN
    } else {
        t95(n - 1) * sample_std(x) / (n as f64).sqrt()
    };
    (mean(x), half)
}

/// How `a` compares with `b` measured on the same seeds (`a[i]` and `b[i]` paired): the 95%
/// interval of the mean paired difference `a - b` decides. Fewer than two pairs decide nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The whole interval lies above zero.
    Win,
    /// The interval holds zero (or there are too few pairs to say).
    Tie,
    /// The whole interval lies below zero.
    Loss,
}

impl Verdict {
    /// `wins`, `ties` or `loses`.
    pub fn verb(self) -> &'static str {
        match self {
            Verdict::Win => "wins",
            Verdict::Tie => "ties",
            Verdict::Loss => "loses",
        }
    }
}

/// The mean paired difference `a - b`, its 95% half-width and the verdict.
///
/// # Panics
/// If `a` and `b` differ in length (the pairs would not be pairs).
pub fn paired(a: &[f64], b: &[f64]) -> (f64, f64, Verdict) {
    assert_eq!(a.len(), b.len(), "paired values need one of each per seed");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (m, half) = interval95(&d);
    let verdict = if half.is_nan() {
        Verdict::Tie
    } else if m - half > 0.0 {
        Verdict::Win
    } else if m + half < 0.0 {
        Verdict::Loss
    } else {
        Verdict::Tie
    };
    (m, half, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_match_hand_worked_values() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, squared deviations sum to 32, 32 / 7.
        let x = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(mean(&x), 5.0);
        assert!((sample_std(&x) - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
        assert_eq!(sample_std(&[3.0]), 0.0);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        let (m, s) = mean_std(&[]);
        assert!(m.is_nan() && s.is_nan());
    }

    #[test]
    fn intervals_and_paired_verdicts_match_hand_worked_values() {
        assert_eq!(t95(2), 4.303);
        assert_eq!(t95(200), 1.96);
        assert!(t95(0).is_nan());
        // 1, 2, 3: mean 2, s = 1, half-width 4.303 / sqrt(3).
        let (m, h) = interval95(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-12);
        assert!(interval95(&[1.0]).1.is_nan());
        // Differences 0.10, 0.11, 0.12: mean 0.11, s = 0.01, half 0.0248: a win.
        let (d, h, v) = paired(&[0.6, 0.61, 0.62], &[0.5, 0.5, 0.5]);
        assert!((d - 0.11).abs() < 1e-12 && (h - 4.303 * 0.01 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(v, Verdict::Win);
        assert_eq!(
            paired(&[0.5, 0.5, 0.5], &[0.6, 0.61, 0.62]).2,
            Verdict::Loss
        );
        // Differences -0.1, 0.0, 0.2: the interval holds zero.
        assert_eq!(paired(&[0.4, 0.5, 0.7], &[0.5, 0.5, 0.5]).2, Verdict::Tie);
        assert_eq!(paired(&[0.9], &[0.1]).2, Verdict::Tie);
    }
}
