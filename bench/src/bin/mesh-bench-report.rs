//! `mesh-bench-report`: turns the per-target results of `bench/run` into `latest.json` and the
//! markdown table for bench/README.md (see `mesh_bench::report`).

use anyhow::{Context, Result};
use clap::Parser;
use mesh_bench::report::{Machine, Meta, Report, markdown};
use std::{fs, path::PathBuf};

/// Writes the JSON and markdown report of a benchmark run.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Directory with one sub-directory of results per target.
    #[arg(long)]
    runs: PathBuf,
    /// Date and time of the run.
    #[arg(long)]
    date: String,
    /// Git commit measured.
    #[arg(long)]
    commit: String,
    /// The command that was run.
    #[arg(long)]
    command: String,
    /// The load settings, in words.
    #[arg(long, default_value = "")]
    settings: String,
    /// Where to write the JSON report.
    #[arg(long)]
    json: PathBuf,
    /// Where to write the markdown table.
    #[arg(long)]
    markdown: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let meta = Meta {
        date: args.date,
        commit: args.commit,
        command: args.command,
        machine: Machine::this(),
        settings: args.settings,
    };
    let report = Report::load(&args.runs, meta)?;
    let json = serde_json::to_string_pretty(&report)?;
    fs::write(&args.json, json + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    fs::write(&args.markdown, markdown(&report))
        .with_context(|| format!("writing {}", args.markdown.display()))?;
    Ok(())
}
