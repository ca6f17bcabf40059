//! The `mesh-init` binary's command line, without privileges: `--help`, validation errors and
//! missing binaries all answer before anything touches the system.

use std::process::{Command, Output};

use mesh_init::options;

fn mesh_init(args: &[&str], path: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mesh-init"))
        .args(args)
        .env_clear()
        .env("PATH", path)
        .output()
        .expect("run mesh-init")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_shows_every_flag_with_its_environment_twin() {
    let output = mesh_init(&["--help"], "/usr/bin:/bin");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{help}");
    let settings = [
        options::INBOUND_PORTS,
        options::EXCLUDE_INBOUND_PORTS,
        options::EXCLUDE_OUTBOUND_PORTS,
        options::EXCLUDE_OUTBOUND_CIDRS,
        options::INCLUDE_OUTBOUND_CIDRS,
        options::PROXY_UID_SETTING,
        options::PROXY_GID_SETTING,
        options::OUTBOUND_PORT_SETTING,
        options::INBOUND_PORT_SETTING,
    ];
    let mut pairs: Vec<(&str, &str)> = settings.iter().map(|s| (s.flag, s.env)).collect();
    pairs.extend([
        ("--backend", "MESH_IPTABLES_BACKEND"),
        ("--ipv6", "MESH_IPV6"),
        ("--dry-run", "MESH_DRY_RUN"),
        ("--cleanup", "MESH_CLEANUP"),
        ("--log", "MESH_INIT_LOG"),
    ]);
    for (flag, env) in pairs {
        // clap prints each flag on its own line, then its help ending in `[env: NAME=]`.
        let lines: Vec<&str> = help.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| l.split_whitespace().next() == Some(flag))
            .unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        assert!(
            lines[at + 1].contains(&format!("[env: {env}=")),
            "{flag} lacks {env}:\n{help}"
        );
    }
}

#[test]
fn bad_values_are_all_named_and_nothing_runs() {
    let args = [
        "--inbound-ports",
        "80,http",
        "--exclude-outbound-cidrs",
        "10.0.0.0/99",
    ];
    // No iptables on PATH: validation must fail first, with every bad value.
    let output = mesh_init(&args, "/nonexistent");
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(
        text.contains(r#"--inbound-ports (MESH_INBOUND_PORTS): "http" is not a port"#),
        "{text}"
    );
    assert!(
        text.contains(r#"(MESH_EXCLUDE_OUTBOUND_CIDRS): "10.0.0.0/99""#),
        "{text}"
    );
    assert!(!text.contains("not found"), "{text}");
}

#[test]
fn environment_values_are_validated_like_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_mesh-init"))
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("MESH_EXCLUDE_INBOUND_PORTS", "22,ssh")
        .output()
        .expect("run mesh-init");
    let text = stderr(&output);
    assert!(
        text.contains(r#"(MESH_EXCLUDE_INBOUND_PORTS): "ssh" is not a port"#),
        "{text}"
    );
}

#[test]
fn missing_iptables_says_which_package_to_install() {
    let output = mesh_init(&["--ipv6", "off"], "/nonexistent");
    assert!(!output.status.success());
    assert!(stderr(&output).contains("iptables-restore not found; install the iptables package"));
    let output = mesh_init(&["--backend", "legacy", "--ipv6", "off"], "/nonexistent");
    let text = stderr(&output);
    assert!(
        text.contains("iptables-legacy-restore not found; install the iptables package"),
        "{text}"
    );
}

#[test]
fn dry_run_without_iptables_still_prints_the_rules() {
    let output = mesh_init(&["--dry-run", "--ipv6", "off"], "/nonexistent");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = mesh_init::RuleSet::build(&mesh_init::Options::default(), mesh_init::Family::V4);
    assert_eq!(
        printed,
        format!(
            "# apply: iptables-nft-restore --noflush (IPv4, nft backend)\n{}",
            expected.render()
        )
    );
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));
}
