//! The gate of tests that need root or tools: a pass when nothing is missing, a skip with the
//! reason on a laptop, a failure in CI.

use mesh_test_support::requirements::{in_ci, missing_tools, run_or_skip, why_not_built};

#[test]
fn nothing_missing_lets_the_test_run() {
    assert!(run_or_skip("a_test", None));
}

#[test]
fn a_missing_requirement_skips_on_a_laptop_and_fails_in_ci() {
    let gated =
        std::panic::catch_unwind(|| run_or_skip("a_test", Some("needs a unicorn".to_owned())));
    match gated {
        Err(panic) => {
            assert!(in_ci(), "panicked outside CI");
            let message = panic.downcast_ref::<String>().expect("a message");
            assert!(message.contains("a_test") && message.contains("needs a unicorn"));
        }
        Ok(runs) => {
            assert!(!in_ci(), "CI must fail the test, not skip it");
            assert!(!runs, "a skipped test must not run");
        }
    }
}

#[test]
fn tools_are_looked_up_on_the_path() {
    assert_eq!(
        missing_tools(&["sh", "mesh-no-such-tool"]),
        ["mesh-no-such-tool"]
    );
}

#[test]
fn unbuilt_binaries_are_named_with_what_to_run() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(why_not_built(dir, &["Cargo.toml", "src"]), None);
    let why = why_not_built(dir, &["Cargo.toml", "mesh-no-such-binary"]).expect("one missing");
    assert!(
        why.contains("\"mesh-no-such-binary\"") && !why.contains("Cargo.toml"),
        "{why}"
    );
    assert!(why.contains("cargo build --workspace"), "{why}");
}
