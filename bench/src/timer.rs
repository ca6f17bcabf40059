//! A precise async sleep for the pacer.
//!
//! Tokio's timer has a 1 ms granularity, far coarser than the latencies we measure. A `timerfd`
//! uses the kernel's high-resolution timers (with no timer slack) and is polled by tokio's own
//! reactor, so the thread that sends the requests is the one that wakes up on time: there is no
//! hand-off from another thread, whose wake-up would add tens of µs to every request.

use anyhow::{Context, Result};
use nix::sys::{
    time::TimeSpec,
    timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags},
};
use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    time::Instant,
};

/// A one-shot high-resolution timer, re-armed for every wake-up.
pub struct PreciseTimer {
    fd: AsyncFd<Fd>,
}

/// The timer's file descriptor, in the form tokio's reactor registers.
struct Fd(TimerFd);

// === impl PreciseTimer ===

impl PreciseTimer {
    /// A new timer on the monotonic clock (the clock of `Instant`); needs a tokio runtime.
    pub fn new() -> Result<Self> {
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let timer = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags).context("creating a timerfd")?;
        // `AsyncFd::register_with_interest` is `unsafe` (the crate forbids unsafe code); the
        // deprecated safe constructor is sound here because `Fd` owns the descriptor, which stays
        // open and unchanged for as long as the `AsyncFd` lives.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(Fd(timer), Interest::READABLE)
            .context("registering the timerfd with tokio")?;
        Ok(Self { fd })
    }

    /// Waits until `deadline`; returns at once if it has passed.
    pub async fn sleep_until(&mut self, deadline: Instant) -> Result<()> {
        let now = Instant::now();
        if deadline <= now {
            return Ok(());
        }
        // A zero expiry would disarm the timer; `deadline > now` rules it out.
        let expiry = Expiration::OneShot(TimeSpec::from_duration(deadline - now));
        self.fd
            .get_ref()
            .0
            .set(expiry, TimerSetTimeFlags::empty())
            .context("arming the timerfd")?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            let read = ready.try_io(|fd| {
                nix::unistd::read(fd.get_ref().0.as_fd(), &mut expirations).map_err(io::Error::from)
            });
            match read {
                Ok(result) => {
                    result.context("reading the timerfd")?;
                    return Ok(());
                }
                // Spurious readiness: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

// === impl Fd ===

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_after_the_deadline_and_soon_after() {
        let mut timer = PreciseTimer::new().unwrap();
        for micros in [0, 50, 300, 2_000] {
            let deadline = Instant::now() + Duration::from_micros(micros);
            timer.sleep_until(deadline).await.unwrap();
            let late = Instant::now() - deadline;
            // Generous bound: a loaded CI machine may be slow, but not 1 ms-tick slow every time.
            assert!(
                late < Duration::from_millis(20),
                "{micros} µs sleep was {late:?} late"
            );
        }
        let past = Instant::now() - Duration::from_millis(1);
        timer.sleep_until(past).await.unwrap();
    }
}
