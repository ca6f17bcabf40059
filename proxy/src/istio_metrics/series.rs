//! The request series of Istio's standard metrics as plain atomics: a counter and three
//! fixed-bucket histograms per series, about 0.5 KiB, holding no copy of their labels (the
//! label set holds them once for all its responses). They become Prometheus families only when
//! scraped ([`RequestFamilies`]), where a `prometheus` vector would keep 25 label pairs per
//! metric per series (about 18 KiB a series, measured with `mesh-label-memory`).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use parking_lot::RwLock;
use prometheus::{
    core::{Collector, Desc},
    proto::{self, LabelPair, MetricFamily, MetricType},
};

use super::{LABELS, LabelSet, RequestLabels, SeriesKey};

/// A histogram's fixed upper bounds, in the integer unit it counts (microseconds, bytes), and
/// what to divide by to show them in the metric's unit.
pub(super) struct Buckets {
    bounds: &'static [u64],
    scale: f64,
}

/// Istio's duration buckets (0.5 ms to an hour), counted in microseconds, shown in
/// milliseconds.
pub(super) const DURATION: Buckets = Buckets {
    bounds: &[
        500,
        1_000,
        5_000,
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
        30_000_000,
        60_000_000,
        300_000_000,
        600_000_000,
        1_800_000_000,
        3_600_000_000,
    ],
    scale: 1000.0,
};

/// Istio's size buckets: powers of ten from 1 byte to 1 GB.
pub(super) const BYTES: Buckets = Buckets {
    bounds: &[
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
        10_000_000,
        100_000_000,
        1_000_000_000,
    ],
    scale: 1.0,
};

/// Counts per bucket (the last past every bound) and their sum.
pub(super) struct Histogram {
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// One series: the requests with one response (code, gRPC status, flag) in one label set.
pub(super) struct Series {
    requests: AtomicU64,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// The four request families, read from every label set at scrape time.
pub(super) struct RequestFamilies {
    sets: Arc<RwLock<HashMap<RequestLabels, Arc<LabelSet>>>>,
    descs: [Desc; 4],
    /// Label positions in name order, as Prometheus' own metrics list them.
    order: [usize; LABELS.len()],
}

// === impl Histogram ===

impl Histogram {
    fn new(buckets: &Buckets) -> Self {
        Histogram {
            counts: (0..=buckets.bounds.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Counts `value` (in the buckets' unit).
    fn observe(&self, buckets: &Buckets, value: u64) {
        let bucket = buckets.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    fn snapshot(&self, buckets: &Buckets) -> proto::Histogram {
        let mut cumulative = 0;
        let mut bucket_list = Vec::with_capacity(buckets.bounds.len());
        for (bound, count) in buckets.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound as f64 / buckets.scale);
            bucket.set_cumulative_count(cumulative);
            bucket_list.push(bucket);
        }
        let past_every_bound = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        let mut histogram = proto::Histogram::default();
        histogram.set_sample_count(cumulative + past_every_bound);
        histogram.set_sample_sum(self.sum.load(Ordering::Relaxed) as f64 / buckets.scale);
        histogram.set_bucket(bucket_list);
        histogram
    }
}

// === impl Series ===

impl Series {
    /// A series with nothing counted.
    pub(super) fn new() -> Self {
        Series {
            requests: AtomicU64::new(0),
            duration: Histogram::new(&DURATION),
            request_bytes: Histogram::new(&BYTES),
            response_bytes: Histogram::new(&BYTES),
        }
    }

    /// Counts one request.
    pub(super) fn record(&self, micros: u64, request_bytes: u64, response_bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.duration.observe(&DURATION, micros);
        self.request_bytes.observe(&BYTES, request_bytes);
        self.response_bytes.observe(&BYTES, response_bytes);
    }
}

// === impl RequestFamilies ===

impl RequestFamilies {
    /// The families of the label sets in `sets`.
    pub(super) fn new(sets: Arc<RwLock<HashMap<RequestLabels, Arc<LabelSet>>>>) -> Self {
        let desc = |name: &str, help: &str| {
            let labels = LABELS.map(str::to_owned).to_vec();
            Desc::new(name.to_owned(), help.to_owned(), labels, HashMap::new())
                .expect("valid metric")
        };
        let mut order: [usize; LABELS.len()] = std::array::from_fn(|i| i);
        order.sort_by_key(|i| LABELS[*i]);
        RequestFamilies {
            sets,
            descs: [
                desc(
                    "istio_requests_total",
                    "Requests, by who talked and the response",
                ),
                desc(
                    "istio_request_duration_milliseconds",
                    "Time from the request's arrival to its response's end, in milliseconds",
                ),
                desc("istio_request_bytes", "Request body sizes, in bytes"),
                desc("istio_response_bytes", "Response body sizes, in bytes"),
            ],
            order,
        }
    }

    fn label_pairs(&self, set: &LabelSet, key: SeriesKey) -> Vec<LabelPair> {
        let code = key.code.to_string();
        let grpc = key.grpc.map(|g| g.to_string()).unwrap_or_default();
        let response = [code.as_str(), grpc.as_str(), key.flag.as_str()];
        let value = |i: usize| match set.values.get(i) {
            Some(value) => value.as_str(),
            None => response[i - set.values.len()],
        };
        (self.order.iter())
            .map(|i| {
                let mut pair = LabelPair::default();
                pair.set_name(LABELS[*i].to_owned());
                pair.set_value(value(*i).to_owned());
                pair
            })
            .collect()
    }
}

impl Collector for RequestFamilies {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut metrics: [Vec<proto::Metric>; 4] = Default::default();
        for set in self.sets.read().values() {
            for (key, series) in set.every_series() {
                let labels = self.label_pairs(set, key);
                let mut requests = proto::Counter::default();
                requests.set_value(series.requests.load(Ordering::Relaxed) as f64);
                let mut counter = proto::Metric::from_label(labels.clone());
                counter.set_counter(requests);
                metrics[0].push(counter);
                for (family, histogram, buckets) in [
                    (1, &series.duration, &DURATION),
                    (2, &series.request_bytes, &BYTES),
                    (3, &series.response_bytes, &BYTES),
                ] {
                    let mut metric = proto::Metric::from_label(labels.clone());
                    metric.set_histogram(histogram.snapshot(buckets));
                    metrics[family].push(metric);
                }
            }
        }
        (self.descs.iter().zip(metrics))
            .enumerate()
            .map(|(i, (desc, metrics))| {
                let mut family = MetricFamily::default();
                family.set_name(desc.fq_name.clone());
                family.set_help(desc.help.clone());
                family.set_field_type(if i == 0 {
                    MetricType::COUNTER
                } else {
                    MetricType::HISTOGRAM
                });
                family.set_metric(metrics);
                family
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let histogram = Histogram::new(&DURATION);
        for micros in [0, 500, 501, 1_000, 4_000_000_000] {
            histogram.observe(&DURATION, micros);
        }
        let snapshot = histogram.snapshot(&DURATION);
        let cumulative: Vec<u64> = (snapshot.get_bucket().iter())
            .map(|b| b.cumulative_count())
            .collect();
        // 0 and 500 µs are within 0.5 ms; 501 and 1,000 µs within 1 ms; an hour and more past
        // every bound.
        assert_eq!(&cumulative[..3], [2, 4, 4]);
        assert_eq!(cumulative.last(), Some(&4));
        assert_eq!(snapshot.get_sample_count(), 5);
        assert_eq!(snapshot.get_bucket()[0].upper_bound(), 0.5);
        let sum_ms = (500 + 501 + 1_000 + 4_000_000_000_u64) as f64 / 1000.0;
        assert_eq!(snapshot.get_sample_sum(), sum_ms);
    }
}
