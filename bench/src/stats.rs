//! Latency histograms, percentile extraction and the per-run summary that `mesh-loadgen --json`
//! prints and the report reads back.

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::{fmt, time::Duration};

/// Largest latency the histograms hold, in µs (60 s); larger values are recorded as 60 s.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A histogram of µs values with 3 significant digits (exact up to 2 ms, then 0.1 % steps).
pub fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).context("building a latency histogram")
}

/// Records a duration in whole µs, clamped to the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, value: Duration) {
    let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(us);
}

/// The percentiles reported for a latency distribution, in µs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value seen.
    pub max: u64,
    /// Arithmetic mean.
    pub mean: f64,
}

// === impl Percentiles ===

impl Percentiles {
    /// The percentiles of a histogram, or `None` when it holds no value.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        Some(Self {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        })
    }
}

/// What one lane counted during a run; the lanes' tallies are merged at the end.
#[derive(Clone, Debug)]
pub struct Tally {
    /// Counts of requests in the measured window.
    pub requests: Requests,
    /// Connections opened again after the first one failed or was closed by the server.
    pub reconnects: u64,
    /// Latency of 2xx responses: completion minus due time (open model) or send time (closed).
    pub latency: Histogram<u64>,
    /// How late requests left compared with their due time (open model only).
    pub send_lag: Histogram<u64>,
}

/// Request counts of the measured window (warm-up excluded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    /// Requests due in the window (open model) or started in it (closed model).
    pub scheduled: u64,
    /// Requests actually sent.
    pub sent: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with another status.
    pub non_2xx: u64,
    /// Requests that failed on the connection (refused, reset, protocol error).
    pub transport_errors: u64,
    /// Requests without a complete response within the request timeout.
    pub timeouts: u64,
    /// Requests never sent because the run's deadline had passed.
    pub unsent: u64,
}

/// How one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with a 2xx status.
    Ok,
    /// A response with another status.
    Non2xx,
    /// The connection failed.
    TransportError,
    /// No complete response in time.
    Timeout,
}

// === impl Tally ===

impl Tally {
    /// An empty tally.
    pub fn new() -> Result<Self> {
        Ok(Self {
            requests: Requests::default(),
            reconnects: 0,
            latency: new_histogram()?,
            send_lag: new_histogram()?,
        })
    }

    /// Counts a finished request; only 2xx responses enter the latency histogram.
    pub fn record(&mut self, outcome: Outcome, latency: Duration) {
        let requests = &mut self.requests;
        match outcome {
            Outcome::Ok => {
                requests.ok += 1;
                record(&mut self.latency, latency);
            }
            Outcome::Non2xx => requests.non_2xx += 1,
            Outcome::TransportError => requests.transport_errors += 1,
            Outcome::Timeout => requests.timeouts += 1,
        }
    }

    /// Adds another lane's counts and histograms to this one.
    pub fn merge(&mut self, other: &Tally) -> Result<()> {
        let (a, b) = (&mut self.requests, &other.requests);
        a.scheduled += b.scheduled;
        a.sent += b.sent;
        a.ok += b.ok;
        a.non_2xx += b.non_2xx;
        a.transport_errors += b.transport_errors;
        a.timeouts += b.timeouts;
        a.unsent += b.unsent;
        self.reconnects += other.reconnects;
        self.latency
            .add(&other.latency)
            .context("merging latency histograms")?;
        self.send_lag
            .add(&other.send_lag)
            .context("merging send-lag histograms")?;
        Ok(())
    }
}

/// The result of one load generator run, as printed by `mesh-loadgen --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `rate` (open model at a constant rate) or `max` (closed model, maximum throughput).
    pub mode: String,
    /// The URL requested.
    pub url: String,
    /// `HTTP/1.1` or `HTTP/2`.
    pub http_version: String,
    /// TCP connections opened.
    pub connections: usize,
    /// Concurrent requests per connection (1 for HTTP/1.1).
    pub streams_per_connection: usize,
    /// Requests per second asked for (open model only).
    pub target_rps: Option<u64>,
    /// Length of the measured window in seconds.
    pub duration_s: f64,
    /// Length of the warm-up before it, in seconds.
    pub warmup_s: f64,
    /// Worker threads of the load generator's runtime.
    pub threads: usize,
    /// Request counts of the measured window.
    pub requests: Requests,
    /// Connections opened again during the run.
    pub reconnects: u64,
    /// 2xx responses per second over the measured window.
    pub achieved_rps: f64,
    /// Latency percentiles of 2xx responses, in µs.
    pub latency_us: Option<Percentiles>,
    /// How late requests left compared with their due time, in µs (open model only).
    pub send_lag_us: Option<Percentiles>,
}

// === impl Summary ===

impl Summary {
    /// Requests that did not end in a 2xx response.
    pub fn errors(&self) -> u64 {
        let r = &self.requests;
        r.non_2xx + r.transport_errors + r.timeouts + r.unsent
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.requests;
        let load = match self.target_rps {
            Some(rps) => format!("{rps} req/s"),
            None => "max (closed loop)".to_string(),
        };
        writeln!(
            f,
            "{} {} at {load}, {} connections x {} streams, {:.1} s measured after {:.1} s warm-up",
            self.http_version,
            self.url,
            self.connections,
            self.streams_per_connection,
            self.duration_s,
            self.warmup_s
        )?;
        writeln!(
            f,
            "  requests: {} scheduled, {} sent, {} ok, {} non-2xx, {} transport errors, {} timeouts, {} unsent; {} reconnects",
            r.scheduled,
            r.sent,
            r.ok,
            r.non_2xx,
            r.transport_errors,
            r.timeouts,
            r.unsent,
            self.reconnects
        )?;
        writeln!(f, "  achieved: {:.1} req/s", self.achieved_rps)?;
        if let Some(p) = &self.latency_us {
            writeln!(
                f,
                "  latency µs: p50 {} p90 {} p99 {} p99.9 {} max {} (mean {:.0})",
                p.p50, p.p90, p.p99, p.p999, p.max, p.mean
            )?;
        }
        if let Some(p) = &self.send_lag_us {
            writeln!(
                f,
                "  send lag µs (generator's own delay, included above): p50 {} p99 {} max {}",
                p.p50, p.p99, p.max
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_uniform_range() {
        let mut h = new_histogram().unwrap();
        for v in 1..=1_000 {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h).unwrap();
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999, p.max),
            (500, 900, 990, 999, 1_000)
        );
        assert!((p.mean - 500.5).abs() < 0.01);
    }

    #[test]
    fn percentiles_catch_a_rare_stall() {
        // 999 fast requests and one 250 ms stall: only p99.9 and max see it.
        let mut h = new_histogram().unwrap();
        for _ in 0..999 {
            record(&mut h, Duration::from_micros(120));
        }
        record(&mut h, Duration::from_millis(250));
        let p = Percentiles::of(&h).unwrap();
        assert_eq!((p.p50, p.p99), (120, 120));
        assert_eq!(p.p999, 120);
        assert!(p.max >= 250_000 && p.max < 250_300, "max {}", p.max);
    }

    #[test]
    fn empty_histogram_has_no_percentiles() {
        assert_eq!(Percentiles::of(&new_histogram().unwrap()), None);
    }

    #[test]
    fn huge_latencies_are_clamped() {
        let mut h = new_histogram().unwrap();
        record(&mut h, Duration::from_secs(3_600));
        assert!(h.max() >= MAX_LATENCY_US);
    }

    #[test]
    fn tallies_merge() {
        let mut a = Tally::new().unwrap();
        let mut b = Tally::new().unwrap();
        a.record(Outcome::Ok, Duration::from_micros(100));
        b.record(Outcome::Ok, Duration::from_micros(300));
        b.record(Outcome::Non2xx, Duration::from_micros(1));
        b.record(Outcome::TransportError, Duration::ZERO);
        b.record(Outcome::Timeout, Duration::ZERO);
        b.reconnects = 2;
        a.merge(&b).unwrap();
        let r = a.requests;
        assert_eq!(
            (r.ok, r.non_2xx, r.transport_errors, r.timeouts),
            (2, 1, 1, 1)
        );
        assert_eq!(a.reconnects, 2);
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.latency.max(), 300);
    }
}
