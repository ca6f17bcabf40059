//! `mesh lab status`: the lab's nodes, pods and Services as tables, kubectl-style.

use std::fmt::Write;

use crate::{
    cluster::{PodRole, ServiceKind},
    state::LabState,
};

/// Renders the state as the tables `mesh lab status` prints.
pub fn render(state: &LabState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lab {} (supervisor pid {})",
        state.name, state.supervisor_pid
    );
    let mut nodes = vec![row(["NODE", "IP", "POD SUBNET"])];
    for node in &state.plan.nodes {
        nodes.push(vec![
            node.name.clone(),
            node.ip.to_string(),
            format!("{}/24", node.pod_subnet),
        ]);
    }
    table(&mut out, &nodes);
    out.push('\n');
    let mut pods = vec![row([
        "NAMESPACE",
        "NAME",
        "READY",
        "RESTARTS",
        "IP",
        "NODE",
        "SIDECAR",
    ])];
    for pod in &state.plan.pods {
        let Some(status) = state.pods.get(&pod.key()) else {
            continue;
        };
        let running = status
            .containers
            .values()
            .filter(|c| c.pid.is_some())
            .count();
        // The DNS pod's server runs inside the supervisor: one container, up while the lab is.
        let (running, total) = match pod.role {
            PodRole::ClusterDns => (1, 1),
            PodRole::Containers(_) => (running, status.containers.len()),
        };
        let restarts: u32 = status.containers.values().map(|c| c.restarts).sum();
        pods.push(vec![
            pod.namespace.clone(),
            pod.name.clone(),
            format!(
                "{running}/{total}{}",
                if status.ready { "" } else { " (not ready)" }
            ),
            restarts.to_string(),
            pod.ip.to_string(),
            pod.node.clone(),
            if pod.meshed() { "mesh-proxy" } else { "-" }.to_owned(),
        ]);
    }
    table(&mut out, &pods);
    out.push('\n');
    let mut services = vec![row([
        "NAMESPACE",
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "PORT(S)",
        "ENDPOINTS",
    ])];
    for service in &state.plan.services {
        let ports: Vec<String> = service
            .ports
            .iter()
            .map(|p| {
                let protocol = format!("{:?}", p.protocol).to_uppercase();
                match p.node_port {
                    Some(node_port) => format!("{}:{node_port}/{protocol}", p.port),
                    None => format!("{}/{protocol}", p.port),
                }
            })
            .collect();
        let endpoints: Vec<String> = match service.ports.first() {
            Some(port) => state
                .plan
                .endpoints(service, port, |pod| {
                    state.pods.get(&pod.key()).is_some_and(|s| s.ready)
                })
                .iter()
                .map(|e| format!("{}:{}", e.ip, e.port))
                .collect(),
            None => Vec::new(),
        };
        services.push(vec![
            service.namespace.clone(),
            service.name.clone(),
            match service.kind {
                ServiceKind::ClusterIp => "ClusterIP",
                ServiceKind::NodePort => "NodePort",
                ServiceKind::Headless => "ClusterIP",
            }
            .to_owned(),
            service
                .cluster_ip
                .map_or_else(|| "None".to_owned(), |ip| ip.to_string()),
            ports.join(","),
            if endpoints.is_empty() {
                "<none>".to_owned()
            } else {
                endpoints.join(",")
            },
        ]);
    }
    table(&mut out, &services);
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// Writes rows as left-aligned columns separated by three spaces.
fn table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}   ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
