//! The mesh the control plane is measured with, as a folder of Kubernetes manifests: per
//! service a Service with a cluster IP, one EndpointSlice and its Pods, in one file per service
//! so that a change rewrites one small file.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

/// Services are spread over this many namespaces.
const NAMESPACES: usize = 20;
/// Nodes the pods are spread over (endpoint localities).
const NODES: usize = 4;

/// A generated mesh: `services` HTTP services of `endpoints` pods each.
#[derive(Clone, Copy, Debug)]
pub struct Mesh {
    /// How many services.
    pub services: usize,
    /// Endpoints (pods) per service.
    pub endpoints: usize,
}

/// One service's name, namespace and the workload its pods belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName {
    /// `svc-<i>`, also its pods' `app` label and service account.
    pub name: String,
    /// `ns-<i mod 20>`.
    pub namespace: String,
}

// === impl Mesh ===

impl Mesh {
    /// Service `i`'s name and namespace.
    pub fn service(i: usize) -> ServiceName {
        ServiceName {
            name: format!("svc-{i}"),
            namespace: format!("ns-{}", i % NAMESPACES),
        }
    }

    /// Writes the mesh into `dir` (created if missing): `namespaces.yaml` and `svc-<i>.yaml`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut namespaces = String::new();
        for n in 0..NAMESPACES.min(self.services) {
            let _ = write!(
                namespaces,
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {{ name: ns-{n}, labels: {{ mesh-injection: enabled }} }}\n"
            );
        }
        write_file(&dir.join("namespaces.yaml"), &namespaces)?;
        for i in 0..self.services {
            write_file(&self.file(dir, i), &self.service_yaml(i, None))?;
        }
        Ok(())
    }

    /// Adds a Sidecar resource to the first namespace limiting its proxies' egress to that
    /// namespace; returns what it is, for the report.
    pub fn scope_to_first_namespace(&self, dir: &Path) -> Result<String> {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: Sidecar\n\
                    metadata: { name: default, namespace: ns-0 }\n\
                    spec: { egress: [ { hosts: [\"./*\"] } ] }\n";
        write_file(&dir.join("sidecar.yaml"), yaml)?;
        let own = (0..self.services).filter(|i| i % NAMESPACES == 0).count();
        Ok(format!(
            "Sidecar egress ./* ({own} services in its namespace)"
        ))
    }

    /// Removes the Sidecar of `scope_to_first_namespace`.
    pub fn unscope(&self, dir: &Path) -> Result<()> {
        let path = dir.join("sidecar.yaml");
        fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    /// Rewrites service `i`'s file with its last endpoint not ready (`down`) or ready again,
    /// atomically (a hidden file renamed over it), so a poll never reads half a file.
    pub fn set_last_endpoint_down(&self, dir: &Path, i: usize, down: bool) -> Result<()> {
        let yaml = self.service_yaml(i, down.then_some(self.endpoints - 1));
        let path = self.file(dir, i);
        let hidden = dir.join(format!(".svc-{i}.yaml.tmp"));
        write_file(&hidden, &yaml)?;
        fs::rename(&hidden, &path).with_context(|| format!("renaming onto {}", path.display()))
    }

    fn file(&self, dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("svc-{i}.yaml"))
    }

    /// Service `i` with its EndpointSlice and Pods; endpoint `not_ready` (if any) not ready.
    fn service_yaml(&self, i: usize, not_ready: Option<usize>) -> String {
        let ServiceName { name, namespace } = Mesh::service(i);
        let meta = format!("name: {name}, namespace: {namespace}");
        let mut yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{ {meta} }}\nspec:\n  \
             clusterIP: {}\n  selector: {{ app: {name} }}\n  \
             ports: [{{ name: http, port: 80, targetPort: 8080 }}]\n",
            cluster_ip(i)
        );
        let _ = write!(
            yaml,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{ name: {name}-x, \
             namespace: {namespace}, labels: {{ kubernetes.io/service-name: {name} }} }}\n\
             addressType: IPv4\nports: [{{ name: http, port: 8080, protocol: TCP }}]\nendpoints:\n"
        );
        for e in 0..self.endpoints {
            let _ = writeln!(
                yaml,
                "- {{ addresses: [{ip}], conditions: {{ ready: {ready} }}, nodeName: node-{node}, \
                 targetRef: {{ kind: Pod, name: {name}-{e}, namespace: {namespace} }} }}",
                ip = self.pod_ip(i, e),
                ready = not_ready != Some(e),
                node = e % NODES,
            );
        }
        for e in 0..self.endpoints {
            let _ = write!(
                yaml,
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{ name: {name}-{e}, namespace: {namespace}, \
                 labels: {{ app: {name}, version: v1 }} }}\nspec: {{ serviceAccountName: {name}, \
                 nodeName: node-{node}, containers: [{{ name: app, image: app }}] }}\n\
                 status: {{ phase: Running, podIP: {ip} }}\n",
                node = e % NODES,
                ip = self.pod_ip(i, e),
            );
        }
        yaml
    }

    /// Pod `e` of service `i`: 10.128.0.1 and up.
    fn pod_ip(&self, i: usize, e: usize) -> String {
        let k = i * self.endpoints + e + 1;
        format!("10.{}.{}.{}", 128 + k / 65_536, (k / 256) % 256, k % 256)
    }
}

/// Service `i`'s cluster IP: 10.96.0.1 and up.
fn cluster_ip(i: usize) -> String {
    let k = i + 1;
    format!("10.{}.{}.{}", 96 + k / 65_536, (k / 256) % 256, k % 256)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
