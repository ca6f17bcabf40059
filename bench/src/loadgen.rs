//! The load generator: lanes of sequential requests, either due on a fixed schedule (open model,
//! constant rate) or sent back to back (closed model, maximum throughput).
//!
//! A lane is an HTTP/1.1 connection or one stream slot of an HTTP/2 connection, and has at most
//! one request in flight. In the open model a lane that is still waiting for a response when its
//! next request is due queues that request, and its latency still counts from the due time.

use crate::{
    client::{self, Sender, Target},
    schedule::{self, Schedule},
    stats::{self, Outcome, Percentiles, Summary, Tally},
};
use anyhow::{Context, Result};
use std::{sync::Arc, time::Duration};
use tokio::{
    sync::mpsc,
    task::JoinSet,
    time::{Instant, sleep_until, timeout},
};

/// Time between the last connection being ready and the first request, so that every lane is
/// waiting when the schedule starts.
const START_DELAY: Duration = Duration::from_millis(50);

/// Pause after a failed request in the closed model, so a dead server is not hammered in a loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// How requests are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// Open model: this many requests per second on a fixed schedule.
    Rate(u64),
    /// Closed model: every lane sends its next request as soon as the previous one completes.
    Max,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to send requests.
    pub target: Target,
    /// Constant rate or maximum throughput.
    pub load: Load,
    /// TCP connections to open.
    pub connections: usize,
    /// Concurrent streams per HTTP/2 connection (HTTP/1.1 always has one).
    pub streams: usize,
    /// Length of the measured window.
    pub duration: Duration,
    /// Time before the measured window whose requests are sent but not counted.
    pub warmup: Duration,
    /// Longest wait for one connection or response.
    pub timeout: Duration,
    /// Worker threads of the runtime (reported only; the binary builds the runtime).
    pub threads: usize,
}

/// The times that bound a run.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// When the first request is due.
    start: Instant,
    /// Requests due (or started) from here on are measured...
    from: Instant,
    /// ...up to here, where the schedule ends.
    to: Instant,
    /// Requests still queued after this are dropped as unsent.
    deadline: Instant,
}

/// One lane: a sender, and what it has counted so far.
struct Lane {
    sender: Option<Sender>,
    target: Arc<Target>,
    timeout: Duration,
    tally: Tally,
}

/// Runs the load described by `config` and summarises the measured window.
pub async fn run(config: &Config) -> Result<Summary> {
    let lanes = open_lanes(config).await?;
    let start = Instant::now() + START_DELAY;
    let from = start + config.warmup;
    let to = from + config.duration;
    let window = Window {
        start,
        from,
        to,
        deadline: to + config.timeout,
    };
    let tallies = match config.load {
        Load::Rate(rate) => run_open(lanes, rate, window).await?,
        Load::Max => run_closed(lanes, window).await?,
    };
    let mut total = Tally::new()?;
    for tally in &tallies {
        total.merge(tally)?;
    }
    Ok(summarise(config, &total))
}

/// Opens the connections and makes one lane per connection (HTTP/1.1) or per stream (HTTP/2).
async fn open_lanes(config: &Config) -> Result<Vec<Lane>> {
    let target = Arc::new(config.target.clone());
    let streams = if target.http2 {
        config.streams.max(1)
    } else {
        1
    };
    let mut lanes = Vec::with_capacity(config.connections * streams);
    for _ in 0..config.connections {
        let sender = timeout(config.timeout, client::connect(&target))
            .await
            .with_context(|| format!("connecting to {}: timed out", target.addr))??;
        for _ in 1..streams {
            lanes.push(Lane::new(sender.share(), &target, config.timeout)?);
        }
        lanes.push(Lane::new(Some(sender), &target, config.timeout)?);
    }
    Ok(lanes)
}

/// The open model: a pacer thread hands due times to the lanes, which send as they are told.
async fn run_open(lanes: Vec<Lane>, rate: u64, window: Window) -> Result<Vec<Tally>> {
    let schedule = Schedule::new(rate, lanes.len())?;
    let mut tasks = JoinSet::new();
    let mut dues = Vec::with_capacity(lanes.len());
    for lane in lanes {
        let (due_tx, due_rx) = mpsc::unbounded_channel();
        dues.push(due_tx);
        tasks.spawn(lane.run_open(due_rx, window));
    }
    let pacer = tokio::spawn(schedule::pace(schedule, window.start, window.to, dues));
    let tallies = join_all(tasks).await?;
    pacer.await.context("the pacer task failed")??;
    Ok(tallies)
}

/// The closed model: every lane loops until the window ends.
async fn run_closed(lanes: Vec<Lane>, window: Window) -> Result<Vec<Tally>> {
    let mut tasks = JoinSet::new();
    for lane in lanes {
        tasks.spawn(lane.run_closed(window));
    }
    join_all(tasks).await
}

async fn join_all(mut tasks: JoinSet<Tally>) -> Result<Vec<Tally>> {
    let mut tallies = Vec::with_capacity(tasks.len());
    while let Some(tally) = tasks.join_next().await {
        tallies.push(tally.context("a load generator lane failed")?);
    }
    Ok(tallies)
}

fn summarise(config: &Config, total: &Tally) -> Summary {
    let (mode, target_rps) = match config.load {
        Load::Rate(rate) => ("rate", Some(rate)),
        Load::Max => ("max", None),
    };
    let streams = if config.target.http2 {
        config.streams.max(1)
    } else {
        1
    };
    let seconds = config.duration.as_secs_f64();
    Summary {
        mode: mode.to_string(),
        url: config.target.url(),
        http_version: if config.target.http2 {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        }
        .to_string(),
        connections: config.connections,
        streams_per_connection: streams,
        target_rps,
        duration_s: seconds,
        warmup_s: config.warmup.as_secs_f64(),
        threads: config.threads,
        requests: total.requests,
        reconnects: total.reconnects,
        achieved_rps: if seconds > 0.0 {
            total.requests.ok as f64 / seconds
        } else {
            0.0
        },
        latency_us: Percentiles::of(&total.latency),
        send_lag_us: Percentiles::of(&total.send_lag),
    }
}

// === impl Lane ===

impl Lane {
    fn new(sender: Option<Sender>, target: &Arc<Target>, timeout: Duration) -> Result<Self> {
        Ok(Self {
            sender,
            target: target.clone(),
            timeout,
            tally: Tally::new()?,
        })
    }

    /// Sends each due request as soon as it is due and the previous response is in.
    async fn run_open(mut self, mut dues: mpsc::UnboundedReceiver<Instant>, w: Window) -> Tally {
        while let Some(due) = dues.recv().await {
            let measured = due >= w.from;
            if measured {
                self.tally.requests.scheduled += 1;
            }
            let sent_at = Instant::now();
            if sent_at >= w.deadline {
                if measured {
                    self.tally.requests.unsent += 1;
                }
                continue;
            }
            if measured {
                self.tally.requests.sent += 1;
                stats::record(&mut self.tally.send_lag, sent_at - due);
            }
            let outcome = self.call().await;
            if measured {
                self.tally.record(outcome, due.elapsed());
            }
        }
        self.tally
    }

    /// Sends requests back to back from the start until the window ends.
    async fn run_closed(mut self, w: Window) -> Tally {
        sleep_until(w.start).await;
        loop {
            let sent_at = Instant::now();
            if sent_at >= w.to {
                break;
            }
            let measured = sent_at >= w.from;
            let outcome = self.call().await;
            if measured {
                self.tally.requests.scheduled += 1;
                self.tally.requests.sent += 1;
                self.tally.record(outcome, sent_at.elapsed());
            }
            if matches!(outcome, Outcome::TransportError | Outcome::Timeout) {
                sleep_until(Instant::now() + ERROR_BACKOFF).await;
            }
        }
        self.tally
    }

    /// Sends one request, first replacing a connection the server closed or that failed.
    async fn call(&mut self) -> Outcome {
        if self.sender.as_ref().is_none_or(Sender::is_closed) {
            match timeout(self.timeout, client::connect(&self.target)).await {
                Ok(Ok(sender)) => {
                    self.sender = Some(sender);
                    self.tally.reconnects += 1;
                }
                Ok(Err(_)) => return Outcome::TransportError,
                Err(_) => return Outcome::Timeout,
            }
        }
        let Some(sender) = self.sender.as_mut() else {
            return Outcome::TransportError;
        };
        let answered = timeout(self.timeout, sender.send(&self.target)).await;
        if self.target.new_connections {
            // The next request opens its own connection (this one closes when dropped).
            self.sender = None;
        }
        match answered {
            Ok(Ok(status)) if status.is_success() => Outcome::Ok,
            Ok(Ok(_)) => Outcome::Non2xx,
            Ok(Err(_)) => Outcome::TransportError,
            Err(_) => {
                // An HTTP/1.1 connection still owes the late response: it cannot be reused.
                // An HTTP/2 stream is reset when its future is dropped; the connection stays.
                if self.sender.as_ref().is_some_and(Sender::is_http1) {
                    self.sender = None;
                }
                Outcome::Timeout
            }
        }
    }
}
