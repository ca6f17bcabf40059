//! A child process the benchmark runs (the control plane, a proxy), with its memory and CPU
//! time read from /proc, and stopped (SIGTERM, then SIGKILL) when dropped.

use std::{
    fs::{self, File},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::{Pid, SysconfVar, sysconf},
};

/// A running child process.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
}

/// CPU time used, user plus system, all threads.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    /// Seconds.
    pub seconds: f64,
}

// === impl Process ===

impl Process {
    /// Starts `command`, its output going to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> Result<Self> {
        let log_path = log_dir.join(format!("{name}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        Ok(Process {
            name: name.to_owned(),
            child,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has exited (is gone or a zombie).
    pub fn ensure_alive(&self) -> Result<()> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        match state {
            Some(state) if state != 'Z' && state != 'X' => Ok(()),
            _ => bail!("{} exited; see {}.log", self.name, self.name),
        }
    }

    /// Resident memory now (VmRSS), KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        status_kib(self.pid(), "VmRSS")
    }

    /// Peak resident memory since start or the last `reset_peak_rss` (VmHWM), KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        status_kib(self.pid(), "VmHWM")
    }

    /// Starts a new peak: the kernel resets VmHWM to the current RSS (clear_refs 5).
    pub fn reset_peak_rss(&self) -> Result<()> {
        let path = format!("/proc/{}/clear_refs", self.pid());
        fs::write(&path, "5").with_context(|| format!("writing {path}"))
    }

    /// CPU time used so far (utime + stime from /proc/PID/stat).
    pub fn cpu_time(&self) -> Result<CpuTime> {
        cpu_time(self.pid())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        if kill(pid, Signal::SIGTERM).is_ok() {
            for _ in 0..50 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === impl CpuTime ===

impl CpuTime {
    /// CPU time used between `earlier` and `self`, in percent of one core over `wall`.
    pub fn percent_since(self, earlier: CpuTime, wall: Duration) -> f64 {
        100.0 * (self.seconds - earlier.seconds) / wall.as_secs_f64().max(1e-9)
    }
}

/// CPU time of process `pid` (`self` for this process).
pub fn cpu_time(pid: impl std::fmt::Display) -> Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // After "pid (comm) ", field n of proc_pid_stat(5) is at index n - 3.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split(' ').collect())
        .unwrap_or_default();
    let ticks = |n: usize| -> Result<f64> {
        let field = fields.get(n - 3).context("short /proc stat line")?;
        Ok(field.parse::<u64>()? as f64)
    };
    let per_second = sysconf(SysconfVar::CLK_TCK)?.unwrap_or(100) as f64;
    Ok(CpuTime {
        seconds: (ticks(14)? + ticks(15)?) / per_second,
    })
}

/// A `kB` line of /proc/PID/status.
fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| {
            let value = line.strip_prefix(key)?.strip_prefix(':')?;
            value.trim().trim_end_matches(" kB").parse().ok()
        })
        .with_context(|| format!("no {key} in {path}"))
}
