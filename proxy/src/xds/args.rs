//! The command line of discovery mode: the control plane's address and the node metadata the
//! proxy introduces itself with (set by the injector or the lab from the pod's downward API).

use std::{collections::BTreeMap, path::PathBuf};

use mesh_proto::discovery::v1::Node;

use crate::workload::Workload;

use super::{ClientSettings, DiscoveryClient, DiscoveryTls, XdsError};

/// Discovery mode options; every option also reads from the environment variable named.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DiscoveryArgs {
    /// The control plane's discovery address, e.g. https://mesh-control-plane.mesh-system:15012;
    /// config then comes from it instead of --config. https:// needs --discovery-root-cert;
    /// http:// is plain h2c.
    #[arg(long, env = "MESH_DISCOVERY_ADDRESS", conflicts_with = "config")]
    pub discovery_address: Option<String>,
    /// The mesh root certificate (PEM) that the control plane's certificate must chain to.
    #[arg(long, env = "MESH_DISCOVERY_ROOT_CERT")]
    pub discovery_root_cert: Option<PathBuf>,
    /// The name the control plane's certificate must carry, when not the address's host.
    #[arg(
        long,
        env = "MESH_DISCOVERY_SERVER_NAME",
        requires = "discovery_root_cert"
    )]
    pub discovery_server_name: Option<String>,
    /// Use the incremental (delta) stream instead of state of the world.
    #[arg(long, env = "MESH_DISCOVERY_DELTA")]
    pub discovery_delta: bool,
    /// The pod's name (node metadata); defaults to $HOSTNAME.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The pod's namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub pod_namespace: String,
    /// The pod's labels as k=v,k2=v2.
    #[arg(long, env = "MESH_POD_LABELS", value_parser = parse_labels, default_value = "")]
    pub pod_labels: BTreeMap<String, String>,
    /// A downward-API labels file (k="v" per line), read at start; adds to --pod-labels.
    #[arg(long, env = "MESH_POD_LABELS_FILE")]
    pub pod_labels_file: Option<PathBuf>,
    /// The pod's service account: its workload identity.
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "default")]
    pub service_account: String,
    /// The pod's IP.
    #[arg(long, env = "POD_IP", default_value = "")]
    pub pod_ip: String,
    /// The workload the pod belongs to (its Deployment, StatefulSet, ...), as the injector
    /// found it; defaults to the pod's name.
    #[arg(long, env = "MESH_WORKLOAD_NAME")]
    pub workload_name: Option<String>,
}

impl DiscoveryArgs {
    /// The discovery client, when an address is given (discovery mode).
    pub fn client(&self) -> Result<Option<DiscoveryClient>, XdsError> {
        let Some(address) = &self.discovery_address else {
            return Ok(None);
        };
        let tls = self
            .discovery_root_cert
            .as_deref()
            .map(|root| DiscoveryTls::load(root, self.discovery_server_name.clone()))
            .transpose()?;
        let settings = ClientSettings {
            address: address.clone(),
            tls,
            delta: self.discovery_delta,
            node: self.node()?,
        };
        DiscoveryClient::new(settings).map(Some)
    }

    /// The pod's workload, as its metrics name it.
    pub fn workload(&self) -> Result<Workload, XdsError> {
        let node = self.node()?;
        let name = self.workload_name.as_deref().unwrap_or(&node.pod);
        Ok(Workload::new(name, &node.namespace, &node.labels))
    }

    /// The node metadata: id `<pod>.<namespace>`, labels from the flag and the file.
    pub fn node(&self) -> Result<Node, XdsError> {
        let pod = self
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "mesh-proxy".to_owned());
        let mut labels = self.pod_labels.clone();
        if let Some(path) = &self.pod_labels_file {
            let text = std::fs::read_to_string(path).map_err(|source| XdsError::LabelsFile {
                path: path.clone(),
                source,
            })?;
            labels.extend(parse_labels_file(&text));
        }
        Ok(Node {
            id: format!("{pod}.{}", self.pod_namespace),
            pod,
            namespace: self.pod_namespace.clone(),
            labels,
            service_account: self.service_account.clone(),
            ip: self.pod_ip.clone(),
            proxy_version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }
}

/// Parses `k=v,k2=v2` (empty for none).
fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                Ok((key.trim().to_owned(), value.trim().to_owned()))
            }
            _ => Err(format!(
                "label {pair:?} is not key=value; write labels as app=web,version=v1"
            )),
        })
        .collect()
}

/// Parses a downward-API labels file: `key="value"` per line, values quoted and escaped.
fn parse_labels_file(text: &str) -> impl Iterator<Item = (String, String)> + '_ {
    text.lines().filter_map(|line| {
        let (key, value) = line.split_once('=')?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((key.trim().to_owned(), unescape(value)))
    })
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('n') => '\n',
            Some(other) => other,
            None => '\\',
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The flags as mesh-proxy has them, beside its --config.
    #[derive(Parser)]
    struct Cli {
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        discovery: DiscoveryArgs,
    }

    #[test]
    fn node_metadata_comes_from_flags_and_the_labels_file() {
        let dir = std::env::temp_dir().join(format!("mesh-xds-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("labels");
        std::fs::write(
            &file,
            "pod-template-hash=\"5d4f\"\nquote=\"say \\\"hi\\\"\"\n",
        )
        .expect("labels file");
        let cli = Cli::try_parse_from([
            "mesh-proxy",
            "--discovery-address=http://127.0.0.1:15012",
            "--pod-name=web-1",
            "--pod-namespace=shop",
            "--pod-labels=app=web, version=v1",
            &format!("--pod-labels-file={}", file.display()),
            "--service-account=web",
            "--pod-ip=10.244.1.7",
        ])
        .expect("parses");
        let node = cli.discovery.node().expect("node");
        assert_eq!(node.id, "web-1.shop");
        assert_eq!(node.service_account, "web");
        assert_eq!(node.ip, "10.244.1.7");
        let labels: Vec<(&str, &str)> = node
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("app", "web"),
                ("pod-template-hash", "5d4f"),
                ("quote", "say \"hi\""),
                ("version", "v1")
            ]
        );
        assert!(cli.discovery.client().expect("client").is_some());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn static_mode_without_an_address_and_never_both() {
        let cli = Cli::try_parse_from(["mesh-proxy"]).expect("parses");
        assert!(cli.discovery.client().expect("no client").is_none());
        let both = Cli::try_parse_from([
            "mesh-proxy",
            "--config=a.yaml",
            "--discovery-address=http://cp:15012",
        ]);
        assert!(both.is_err());
    }

    #[test]
    fn tls_needs_a_root_and_a_root_needs_tls() {
        let error = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).expect("parses");
            cli.discovery.client().err().expect("refused").to_string()
        };
        let https = error(&["mesh-proxy", "--discovery-address=https://cp:15012"]);
        assert!(https.contains("no --discovery-root-cert"), "{https}");
        let root = rcgen::generate_simple_self_signed(vec!["cp".to_owned()]).expect("cert");
        let root_file =
            std::env::temp_dir().join(format!("mesh-xds-args-root-{}", std::process::id()));
        std::fs::write(&root_file, root.cert.pem()).expect("root file");
        let root_flag = format!("--discovery-root-cert={}", root_file.display());
        let plain = error(&[
            "mesh-proxy",
            "--discovery-address=http://cp:15012",
            &root_flag,
        ]);
        assert!(plain.contains("is plain h2c; write https://"), "{plain}");
        let cli = Cli::try_parse_from([
            "mesh-proxy",
            "--discovery-address=https://cp:15012",
            &root_flag,
        ])
        .expect("parses");
        assert!(cli.discovery.client().expect("client").is_some());
        std::fs::remove_file(&root_file).expect("cleanup");
        let name_alone = Cli::try_parse_from([
            "mesh-proxy",
            "--discovery-address=https://cp:15012",
            "--discovery-server-name=cp",
        ]);
        assert!(name_alone.is_err(), "a server name without a root");
    }

    #[test]
    fn malformed_labels_say_how_to_write_them() {
        let error = parse_labels("app=web,oops").expect_err("not key=value");
        assert!(error.contains("app=web,version=v1"), "{error}");
        assert!(parse_labels("").expect("empty").is_empty());
    }
}
