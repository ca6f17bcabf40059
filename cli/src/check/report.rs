//! The check's output: a heading per group, one line per check (√ passed, × failed with a hint
//! under it, ℹ for information), and a closing verdict.

use crate::output::outln;

/// One outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The check passed.
    Pass(String),
    /// The check failed: what is wrong and what to do.
    Fail {
        /// What is wrong.
        what: String,
        /// What to do about it.
        hint: String,
    },
    /// Worth knowing, neither pass nor failure.
    Info(String),
}

impl Line {
    /// A failed check with its hint.
    pub fn fail(what: impl Into<String>, hint: impl Into<String>) -> Line {
        Line::Fail {
            what: what.into(),
            hint: hint.into(),
        }
    }
}

/// Prints lines as checks finish and counts the failures.
#[derive(Debug, Default)]
pub struct Report {
    failed: usize,
    passed: usize,
    sections: usize,
}

impl Report {
    /// An empty report.
    pub fn new() -> Report {
        Report::default()
    }

    /// Starts a group of checks.
    pub fn section(&mut self, title: &str) {
        if self.sections > 0 {
            outln!();
        }
        self.sections += 1;
        outln!("{title}\n{}", "-".repeat(title.chars().count()));
    }

    /// Prints one outcome.
    pub fn line(&mut self, line: Line) {
        match line {
            Line::Pass(what) => {
                self.passed += 1;
                outln!("√ {what}");
            }
            Line::Fail { what, hint } => {
                self.failed += 1;
                outln!("× {what}\n    hint: {hint}");
            }
            Line::Info(what) => outln!("ℹ {what}"),
        }
    }

    /// Prints every outcome.
    pub fn lines(&mut self, lines: impl IntoIterator<Item = Line>) {
        for line in lines {
            self.line(line);
        }
    }

    /// Prints the verdict; the exit status: 0 when nothing failed, else 1.
    pub fn finish(self) -> std::process::ExitCode {
        outln!();
        if self.failed == 0 {
            outln!("Status check results are √ ({} passed)", self.passed);
            std::process::ExitCode::SUCCESS
        } else {
            outln!(
                "Status check results are × ({} failed, {} passed)",
                self.failed,
                self.passed
            );
            std::process::ExitCode::from(super::FAILED)
        }
    }
}
