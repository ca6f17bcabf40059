//! Is the API server reachable, and is its Kubernetes version one the mesh runs on?

use k8s_openapi::apimachinery::pkg::version::Info;
use mesh_injector::settings::{NATIVE_SIDECARS_SINCE_MINOR, parse_minor};

use super::{
    client::describe,
    report::{Line, Report},
};

/// The oldest Kubernetes (1.x) the mesh supports.
const OLDEST_MINOR: u32 = 26;

/// Asks for the version; `false` when the API server cannot be reached (nothing else can be
/// checked then).
pub async fn check(client: &kube::Client, server: &str, report: &mut Report) -> bool {
    match client.apiserver_version().await {
        Ok(info) => {
            report.line(Line::Pass(format!("the API server at {server} answers")));
            report.lines(judge(&info));
            true
        }
        Err(error) => {
            report.line(Line::fail(
                format!(
                    "cannot reach the API server at {server}: {}",
                    describe(&error)
                ),
                "check the kubeconfig's context (kubectl config current-context) and that the \
                 cluster is up (kubectl get --raw /version)",
            ));
            false
        }
    }
}

/// The version's lines: supported or not, and whether pods get native sidecars.
pub fn judge(info: &Info) -> Vec<Line> {
    let version = &info.git_version;
    let Some(minor) = parse_minor(&info.minor).filter(|_| info.major == "1") else {
        return vec![Line::fail(
            format!(
                "cannot tell the Kubernetes version from {version} (major {:?}, minor {:?})",
                info.major, info.minor
            ),
            format!("the mesh needs Kubernetes 1.{OLDEST_MINOR} or newer; check `kubectl version`"),
        )];
    };
    let supported = if minor < OLDEST_MINOR {
        Line::fail(
            format!(
                "Kubernetes {version} is older than 1.{OLDEST_MINOR}, the oldest the mesh supports"
            ),
            format!("upgrade the cluster to Kubernetes 1.{OLDEST_MINOR} or newer"),
        )
    } else {
        Line::Pass(format!("Kubernetes {version} is 1.{OLDEST_MINOR} or newer"))
    };
    let native = if minor >= NATIVE_SIDECARS_SINCE_MINOR {
        Line::Info(format!(
            "native sidecars (Kubernetes 1.{NATIVE_SIDECARS_SINCE_MINOR}+): the sidecar starts \
             as an init container that keeps running"
        ))
    } else {
        Line::Info(format!(
            "native sidecars need Kubernetes 1.{NATIVE_SIDECARS_SINCE_MINOR}; here the sidecar \
             is a regular container and the app starts once its postStart hook saw it ready"
        ))
    };
    vec![supported, native]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(major: &str, minor: &str) -> Info {
        Info {
            major: major.into(),
            minor: minor.into(),
            git_version: format!("v{major}.{minor}"),
            ..Info::default()
        }
    }

    #[test]
    fn versions_below_1_26_fail_and_native_sidecars_start_at_1_29() {
        let failed = |lines: &[Line]| lines.iter().any(|l| matches!(l, Line::Fail { .. }));
        let native = |lines: &[Line]| {
            lines
                .iter()
                .any(|l| matches!(l, Line::Info(text) if text.starts_with("native sidecars (")))
        };
        let old = judge(&info("1", "25"));
        assert!(failed(&old) && !native(&old));
        let classic = judge(&info("1", "28+"));
        assert!(!failed(&classic) && !native(&classic));
        let current = judge(&info("1", "29"));
        assert!(!failed(&current) && native(&current));
        assert!(failed(&judge(&info("2", "0"))));
        assert!(failed(&judge(&info("1", "x"))));
    }
}
