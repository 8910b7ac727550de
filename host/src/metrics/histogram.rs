//! A histogram of callback durations that records without a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds of the callback duration buckets, in nanoseconds: 10 µs to
/// 2.5 s (the default deadline is 1 s), then +Inf.
const DURATION_BUCKETS_NANOS: [u64; 17] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// A histogram of durations with fixed buckets, recorded with two atomic
/// adds and no lock (`prometheus_client`'s `Histogram` takes a mutex per
/// observation).
#[derive(Debug, Clone, Default)]
pub(crate) struct DurationHistogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations per bucket of [`DURATION_BUCKETS_NANOS`] (not
    /// cumulative); the last one is +Inf.
    buckets: [AtomicU64; DURATION_BUCKETS_NANOS.len() + 1],
    /// The sum of the observations, in nanoseconds.
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let index = DURATION_BUCKETS_NANOS.partition_point(|bound| *bound < nanos);
        if let Some(bucket) = self.0.buckets.get(index) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for DurationHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // The count is the buckets' sum, so that the two always agree.
        let mut count = 0;
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets
            .iter()
            .enumerate()
            .map(|(index, bucket)| {
                let observed = bucket.load(Ordering::Relaxed);
                count += observed;
                let bound = DURATION_BUCKETS_NANOS.get(index).map_or(f64::INFINITY, |nanos| *nanos as f64 / 1e9);
                (bound, observed)
            })
            .collect();
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_buckets_and_the_sum_is_in_seconds() {
        let histogram = DurationHistogram::default();
        histogram.observe(Duration::from_micros(10));
        histogram.observe(Duration::from_micros(11));
        histogram.observe(Duration::from_secs(10));
        let counts: Vec<u64> = histogram.0.buckets.iter().map(|bucket| bucket.load(Ordering::Relaxed)).collect();
        assert_eq!(counts[0], 1, "the bound is inclusive");
        assert_eq!(counts[1], 1);
        assert_eq!(counts[DURATION_BUCKETS_NANOS.len()], 1, "+Inf");
        assert_eq!(histogram.0.sum_nanos.load(Ordering::Relaxed), 10_000_021_000);
    }
}
