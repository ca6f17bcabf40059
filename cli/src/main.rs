//! `mesh`: the user's command line. Today it drives the lab (`mesh lab ...`); `proxy-status`,
//! `tls-check`, `inject`, `analyze` and `check` arrive with the issues that build them, so
//! nothing here claims to work that does not.

mod lab;

use clap::{Parser, Subcommand};

/// The mesh command line.
#[derive(Parser)]
#[command(name = "mesh", version, about = "The mesh service mesh command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A Kubernetes-shaped cluster on this machine, from network namespaces (needs root).
    Lab(lab::LabArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Lab(args) => lab::run(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
