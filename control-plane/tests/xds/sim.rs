//! A simulated proxy: a plain tonic client of the discovery API that subscribes to every type,
//! records each response, and ACKs it, or NACKs what a test tells it to reject. Shared by the
//! control plane's tests and the control-plane benchmark (`bench/src/lib.rs` includes this file).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use mesh_control_plane::xds::ResourceType;
use mesh_proto::discovery::v1::{
    DeltaDiscoveryRequest, DiscoveryRequest, ErrorDetail, Node,
    aggregated_discovery_client::AggregatedDiscoveryClient,
};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::{Channel, Endpoint};

/// How long `SimProxy::wait` waits before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// One response as the simulated proxy saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The resource type.
    pub ty: ResourceType,
    /// The version of the whole type it carries.
    pub version: String,
    /// Resource names carried (all of them for state of the world, changes for delta).
    pub resources: Vec<String>,
    /// Resource names removed (delta).
    pub removed: Vec<String>,
    /// When it arrived; its ACK (or NACK) is queued on the stream right after.
    pub at: Instant,
}

/// Decides whether to reject a response: `Some(error)` NACKs it.
pub type Reject = Arc<dyn Fn(&Received) -> Option<String> + Send + Sync>;

/// How the simulated proxy behaves.
#[derive(Clone, Default)]
pub struct SimOptions {
    /// Use the delta stream instead of state of the world.
    pub delta: bool,
    /// Which responses to NACK (none by default).
    pub reject: Option<Reject>,
    /// Reconnect (every 20 ms) when the stream ends or cannot be opened.
    pub reconnect: bool,
    /// The workload the pod belongs to: its `app` label and service account (by default the
    /// pod's name and `default`).
    pub workload: Option<String>,
}

/// What the simulated proxy has seen and applied.
#[derive(Debug, Default)]
pub struct SimState {
    /// Every response, in order of arrival.
    pub log: Vec<Received>,
    /// Per type: the version last ACKed.
    pub acked: BTreeMap<ResourceType, String>,
    /// Per type: name to version of what the proxy holds.
    pub held: BTreeMap<ResourceType, BTreeMap<String, String>>,
    /// Streams opened so far.
    pub streams: usize,
}

/// A running simulated proxy.
pub struct SimProxy {
    /// The proxy's id, `<pod>.<namespace>`.
    pub id: String,
    state: Arc<Mutex<SimState>>,
    task: JoinHandle<()>,
}

impl SimProxy {
    /// Connects to `url` as proxy `id` (`<pod>.<namespace>`).
    pub fn spawn(url: &str, id: &str, options: SimOptions) -> SimProxy {
        let state = Arc::new(Mutex::new(SimState::default()));
        let endpoint = Endpoint::from_shared(url.to_owned()).expect("endpoint url");
        let node = node(id, options.workload.as_deref());
        let task = tokio::spawn(run(endpoint, node, options, state.clone()));
        SimProxy {
            id: id.to_owned(),
            state,
            task,
        }
    }

    /// Reads the state.
    pub fn with<T>(&self, read: impl FnOnce(&SimState) -> T) -> T {
        read(&self.state.lock().expect("sim state"))
    }

    /// Waits until the state satisfies `done`.
    pub async fn wait(&self, what: &str, done: impl Fn(&SimState) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !self.with(&done) {
            assert!(
                Instant::now() < deadline,
                "{}: timed out waiting for {what}; state: {:#?}",
                self.id,
                self.with(|s| format!("{s:?}"))
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for SimProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn node(id: &str, workload: Option<&str>) -> Node {
    let (pod, namespace) = id.split_once('.').unwrap_or((id, "default"));
    Node {
        id: id.to_owned(),
        pod: pod.to_owned(),
        namespace: namespace.to_owned(),
        labels: [("app".to_owned(), workload.unwrap_or(pod).to_owned())].into(),
        service_account: workload.unwrap_or("default").to_owned(),
        ip: "10.244.0.9".to_owned(),
        proxy_version: "sim".to_owned(),
    }
}

async fn run(endpoint: Endpoint, node: Node, options: SimOptions, state: Arc<Mutex<SimState>>) {
    loop {
        if let Ok(channel) = endpoint.connect().await {
            state.lock().expect("sim state").streams += 1;
            let client = AggregatedDiscoveryClient::new(channel);
            if options.delta {
                delta_stream(client, &node, &options, &state).await;
            } else {
                sotw_stream(client, &node, &options, &state).await;
            }
        }
        if !options.reconnect {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records a response and, unless rejected, applies it to what the proxy holds of its type.
/// Returns the NACK error if rejected, and the version of the type the proxy now runs.
fn receive(
    received: Received,
    apply: impl FnOnce(&mut BTreeMap<String, String>),
    options: &SimOptions,
    state: &Mutex<SimState>,
) -> (Option<String>, String) {
    let rejected = options.reject.as_ref().and_then(|reject| reject(&received));
    let mut state = state.lock().expect("sim state");
    let ty = received.ty;
    if rejected.is_none() {
        apply(state.held.entry(ty).or_default());
        state.acked.insert(ty, received.version.clone());
    }
    state.log.push(received);
    (rejected, state.acked.get(&ty).cloned().unwrap_or_default())
}

async fn sotw_stream(
    mut client: AggregatedDiscoveryClient<Channel>,
    node: &Node,
    options: &SimOptions,
    state: &Mutex<SimState>,
) {
    let (requests, queue) = mpsc::unbounded_channel();
    for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
        let _ = requests.send(DiscoveryRequest {
            node: (i == 0).then(|| node.clone()),
            type_url: ty.type_url().to_owned(),
            ..Default::default()
        });
    }
    let Ok(response) = client.stream(UnboundedReceiverStream::new(queue)).await else {
        return;
    };
    let mut responses = response.into_inner();
    while let Ok(Some(response)) = responses.message().await {
        let ty = ResourceType::from_type_url(&response.type_url).expect("known type");
        let resources: BTreeMap<String, String> = response
            .resources
            .iter()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();
        let received = Received {
            ty,
            version: response.version_info.clone(),
            resources: resources.keys().cloned().collect(),
            removed: Vec::new(),
            at: Instant::now(),
        };
        let (rejected, version) = receive(received, |held| *held = resources, options, state);
        let _ = requests.send(DiscoveryRequest {
            type_url: response.type_url,
            version_info: version,
            response_nonce: response.nonce,
            error_detail: rejected.map(|message| ErrorDetail { code: 3, message }),
            ..Default::default()
        });
    }
}

async fn delta_stream(
    mut client: AggregatedDiscoveryClient<Channel>,
    node: &Node,
    options: &SimOptions,
    state: &Mutex<SimState>,
) {
    let (requests, queue) = mpsc::unbounded_channel();
    for (i, ty) in ResourceType::ALL.into_iter().enumerate() {
        let initial = state
            .lock()
            .expect("sim state")
            .held
            .get(&ty)
            .cloned()
            .unwrap_or_default();
        let _ = requests.send(DeltaDiscoveryRequest {
            node: (i == 0).then(|| node.clone()),
            type_url: ty.type_url().to_owned(),
            initial_resource_versions: initial,
            ..Default::default()
        });
    }
    let Ok(response) = client
        .delta_stream(UnboundedReceiverStream::new(queue))
        .await
    else {
        return;
    };
    let mut responses = response.into_inner();
    while let Ok(Some(response)) = responses.message().await {
        let ty = ResourceType::from_type_url(&response.type_url).expect("known type");
        let received = Received {
            ty,
            version: response.system_version_info.clone(),
            resources: response.resources.iter().map(|r| r.name.clone()).collect(),
            removed: response.removed_resources.clone(),
            at: Instant::now(),
        };
        let apply = |held: &mut BTreeMap<String, String>| {
            for name in &response.removed_resources {
                held.remove(name);
            }
            for resource in &response.resources {
                held.insert(resource.name.clone(), resource.version.clone());
            }
        };
        let (rejected, _) = receive(received, apply, options, state);
        let _ = requests.send(DeltaDiscoveryRequest {
            type_url: response.type_url,
            response_nonce: response.nonce,
            error_detail: rejected.map(|message| ErrorDetail { code: 3, message }),
            ..Default::default()
        });
    }
}
