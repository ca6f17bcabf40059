//! `mesh`: the user's command line. Subcommands (`lab`, `proxy-status`, `tls-check`, `inject`,
//! `analyze`, `check`) arrive with the issues that build them; until then only `--version` and
//! `--help` exist, so nothing here claims to work that does not.

use clap::Parser;

/// The mesh command line.
#[derive(Parser)]
#[command(name = "mesh", version, about = "The mesh service mesh command line")]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!("mesh: no subcommands are available yet; see `mesh --help`");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
