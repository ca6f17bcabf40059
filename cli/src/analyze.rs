//! `mesh analyze -f DIR`: reads a folder of manifests as the control plane would and prints
//! every problem, like `istioctl analyze`; exits 1 when any is an error.

use crate::output::outln;
use std::{path::PathBuf, process::ExitCode};

use clap::Args;
use mesh_control_plane::{
    analyze::{analyze_folder, has_errors},
    translate::{MeshSettings, OutboundTrafficPolicy, Problem, Severity, TracingProviders},
};

/// `mesh analyze` options.
#[derive(Args)]
#[command(
    after_help = "Exit status: 0 when no problem is an error (warnings and notes are \
printed); 1 when any is, or when DIR cannot be read."
)]
pub struct AnalyzeArgs {
    /// The folder (or a single file) of manifests: every .yaml, .yml and .json under it.
    #[arg(short = 'f', long = "filename")]
    dir: PathBuf,
    /// A tracing provider Telemetry objects may name, as the control plane is given it:
    /// NAME=HOST:PORT (repeat, or comma-separate).
    #[arg(long, value_delimiter = ',')]
    tracing_provider: Vec<String>,
    /// The mesh's outbound traffic policy, as the control plane is given it: ALLOW_ANY or
    /// REGISTRY_ONLY.
    #[arg(long, default_value = "ALLOW_ANY")]
    outbound_traffic_policy: OutboundTrafficPolicy,
}

/// Runs `mesh analyze`.
pub fn run(args: AnalyzeArgs) -> ExitCode {
    let providers = match TracingProviders::parse(&args.tracing_provider) {
        Ok(providers) => providers,
        Err(error) => {
            eprintln!("mesh analyze: {error}");
            return ExitCode::FAILURE;
        }
    };
    let settings = MeshSettings {
        tracing_providers: providers,
        outbound_traffic_policy: args.outbound_traffic_policy,
    };
    let problems = match analyze_folder(&args.dir, &settings) {
        Ok(problems) => problems,
        Err(error) => {
            eprintln!("mesh analyze: {error}");
            return ExitCode::FAILURE;
        }
    };
    if problems.is_empty() {
        outln!(
            "\u{2714} No validation issues found when analyzing {}.",
            args.dir.display()
        );
        return ExitCode::SUCCESS;
    }
    for problem in &problems {
        outln!("{}", line(problem));
    }
    if has_errors(&problems) {
        let errors = problems.iter().filter(|p| p.is_error()).count();
        eprintln!(
            "Error: analyzing {} found {errors} error(s); the objects named are not applied as \
             written.",
            args.dir.display()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One problem as `Level (Kind namespace/name) file (document N) field: message; hint`.
fn line(problem: &Problem) -> String {
    let mut text = match problem.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    }
    .to_owned();
    if let Some(object) = &problem.object {
        text.push_str(&format!(" ({object})"));
    }
    if let Some(source) = &problem.source {
        text.push_str(&format!(" {source}"));
    }
    if !problem.field.is_empty() {
        text.push_str(&format!(" {}", problem.field));
    }
    text.push_str(&format!(": {}", problem.message));
    if !problem.hint.is_empty() {
        text.push_str(&format!("; {}", problem.hint));
    }
    text
}

#[cfg(test)]
mod tests {
    use mesh_control_plane::store::{Kind, ObjectRef};

    use super::*;

    #[test]
    fn a_line_names_level_object_file_field_and_message() {
        let object = ObjectRef::new(Kind::VirtualService, "shop", "web");
        let mut problem = Problem::error(
            &object,
            "spec.http[0].route",
            "weights add up to 90",
            "make them add up to 100",
        );
        problem.source = Some("dir/vs.yaml (document 2)".into());
        assert_eq!(
            line(&problem),
            "Error (VirtualService shop/web) dir/vs.yaml (document 2) spec.http[0].route: \
             weights add up to 90; make them add up to 100"
        );
    }
}
