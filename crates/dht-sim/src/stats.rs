//! Summaries of samples: mean and percentiles as the Chord paper reports them.

/// Mean, 1st and 99th percentile, and maximum of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub mean: f64,
    pub p1: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The value at quantile `q` of a sorted sample (nearest rank).
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

pub fn summarize(values: &mut [u64]) -> Summary {
    if values.is_empty() {
        return Summary::default();
    }
    values.sort_unstable();
    let sum: u64 = values.iter().sum();
    Summary {
        count: values.len(),
        mean: sum as f64 / values.len() as f64,
        p1: quantile(values, 0.01),
        p50: quantile(values, 0.5),
        p99: quantile(values, 0.99),
        max: *values.last().unwrap_or(&0) as f64,
    }
}

/// A histogram of small non-negative integers: `out[v]` = fraction of samples equal to v.
pub fn pdf(values: &[u64]) -> Vec<f64> {
    let max = values.iter().copied().max().unwrap_or(0) as usize;
    let mut counts = vec![0u64; max + 1];
    for &v in values {
        counts[v as usize] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        let s = summarize(&mut v);
        assert_eq!((s.p1, s.p50, s.p99, s.max), (1.0, 50.0, 99.0, 100.0));
        assert_eq!(s.mean, 50.5);
        assert_eq!(pdf(&[0, 1, 1, 3]), vec![0.25, 0.5, 0.0, 0.25]);
    }
}
