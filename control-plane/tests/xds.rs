//! The discovery server over real gRPC on loopback, with simulated proxies (plain tonic
//! clients): convergence of many proxies, NACKs, a control-plane restart, delta pushes, push
//! order, and a proxy that stops reading. (Push latency at scale is measured by
//! `bench/control-plane`, which shares `xds/sim.rs`.)

mod xds {
    pub mod harness;
    // Shared with bench/control-plane, which reads what these tests do not (arrival times).
    #[allow(dead_code)]
    pub mod sim;
}

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc};

use mesh_control_plane::xds::{ConfigSnapshot, ProxySync, ResourceType, SyncState, SyncStatus};
use mesh_proto::{
    config::v1::{self as pb, Cluster, ClusterLoadAssignment, Endpoint, Listener, ProxyConfig},
    discovery::v1::{
        DiscoveryRequest, Node, aggregated_discovery_client::AggregatedDiscoveryClient,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Endpoint as GrpcEndpoint;
use xds::{
    harness::{ControlPlane, http_route},
    sim::{Received, Reject, SimOptions, SimProxy},
};

const ALL: [ResourceType; 5] = ResourceType::ALL;

/// A mesh of `services` HTTP services, service `i` with `endpoints` endpoints on `port`:
/// a cluster, its endpoints, an outbound listener on 10.96.x.y:80 and a route config each.
pub fn mesh(services: usize, endpoints: usize, port: u16) -> ProxyConfig {
    let mut config = ProxyConfig::default();
    for i in 0..services {
        let name = format!("svc-{i}");
        config.clusters.push(pb::Cluster {
            name: name.clone(),
            ..Default::default()
        });
        config.endpoints.push(ClusterLoadAssignment {
            cluster: name.clone(),
            endpoints: (0..endpoints)
                .map(|e| Endpoint {
                    address: format!("10.{}.{}.{}:{port}", 1 + i / 250, i % 250, 1 + e),
                    labels: [
                        ("app".to_owned(), name.clone()),
                        ("version".to_owned(), "v1".to_owned()),
                    ]
                    .into_iter()
                    .collect(),
                    ..Default::default()
                })
                .collect(),
        });
        config.listeners.push(Listener {
            name: name.clone(),
            address: format!("10.96.{}.{}:80", i / 250, 1 + i % 250),
            protocol: pb::Protocol::Http1.into(),
            route_config: name.clone(),
            ..Default::default()
        });
        config.routes.push(http_route(&name, &name, &name));
    }
    config
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn all_synced(count: usize) -> impl Fn(&SyncStatus) -> bool {
    move |status| status.proxies.len() == count && status.proxies.iter().all(ProxySync::is_synced)
}

/// The distinct ACKed versions of `ty` across proxies.
fn acked_versions(status: &SyncStatus, ty: ResourceType) -> BTreeSet<Option<String>> {
    status
        .proxies
        .iter()
        .map(|p| p.of(ty).expect("every type tracked").acked.clone())
        .collect()
}

fn types(log: &[Received]) -> Vec<ResourceType> {
    log.iter().map(|r| r.ty).collect()
}

fn reject_cluster(name: &'static str) -> Reject {
    Arc::new(move |received: &Received| {
        (received.ty == ResourceType::Cluster && received.resources.iter().any(|n| n == name))
            .then(|| format!("cluster {name:?}: lb_policy is invalid"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_proxies_converge_and_ack_every_push() {
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, mesh(20, 3, 8080))).await;
    let proxies: Vec<SimProxy> = (0..100)
        .map(|i| {
            let options = SimOptions {
                delta: i % 2 == 1,
                ..Default::default()
            };
            SimProxy::spawn(&cp.url(), &format!("web-{i}.shop"), options)
        })
        .collect();
    let first = cp.wait_status("100 proxies synced", all_synced(100)).await;
    for ty in ALL {
        assert_eq!(
            acked_versions(&first, ty).len(),
            1,
            "one {ty} version everywhere"
        );
    }
    assert_eq!(cp.metric("mesh_cp_connected_proxies", None), 100.0);
    for proxy in &proxies {
        proxy.with(|s| {
            assert_eq!(types(&s.log), ALL, "{}: one response per type", proxy.id);
            assert_eq!(s.held[&ResourceType::Endpoints].len(), 20);
        });
    }

    // One more endpoint per service: only endpoints change, everywhere.
    cp.publish(ConfigSnapshot::uniform(2, mesh(20, 4, 8080)));
    let second = cp
        .wait_status("100 proxies synced on generation 2", |s| {
            all_synced(100)(s) && s.proxies.iter().all(|p| p.generation == 2)
        })
        .await;
    assert_ne!(
        acked_versions(&second, ResourceType::Endpoints),
        acked_versions(&first, ResourceType::Endpoints)
    );
    for ty in [
        ResourceType::Cluster,
        ResourceType::Listener,
        ResourceType::Route,
    ] {
        assert_eq!(
            acked_versions(&second, ty),
            acked_versions(&first, ty),
            "{ty} unchanged"
        );
    }
    for proxy in &proxies {
        proxy.with(|s| {
            assert_eq!(
                types(&s.log[ALL.len()..]),
                [ResourceType::Endpoints],
                "{}",
                proxy.id
            );
            assert_eq!(s.log[ALL.len()].resources.len(), 20);
        });
    }
    assert_eq!(
        cp.metric("mesh_cp_pushes_total", Some(("type", "eds"))),
        200.0
    );
    assert_eq!(
        cp.metric("mesh_cp_pushes_total", Some(("type", "cds"))),
        100.0
    );
    assert_eq!(cp.metric("mesh_cp_push_duration_seconds", None), 600.0);
    assert_eq!(cp.metric("mesh_cp_nacks_total", None), 0.0);

    drop(proxies);
    cp.wait_status("every stream closed", |s| s.proxies.is_empty())
        .await;
    assert_eq!(cp.metric("mesh_cp_connected_proxies", None), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_keeps_the_acked_version_and_shows_in_sync_status() {
    let good_config = mesh(3, 1, 80);
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, good_config.clone())).await;
    let _good = SimProxy::spawn(&cp.url(), "good.shop", SimOptions::default());
    let picky = SimProxy::spawn(
        &cp.url(),
        "picky.shop",
        SimOptions {
            reject: Some(reject_cluster("bad")),
            ..Default::default()
        },
    );
    let first = cp.wait_status("both synced", all_synced(2)).await;
    let cds = |status: &SyncStatus, id: &str| {
        let proxy = status.proxy(id).next().expect("connected").clone();
        proxy.of(ResourceType::Cluster).expect("tracked").clone()
    };
    let good_cds = cds(&first, "picky.shop").acked;

    let mut bad_config = good_config.clone();
    bad_config.clusters.push(Cluster {
        name: "bad".into(),
        ..Default::default()
    });
    cp.publish(ConfigSnapshot::uniform(2, bad_config));
    let status = cp
        .wait_status("picky NACKs, good ACKs", |s| {
            cds(s, "picky.shop").nack.is_some()
                && cds(s, "good.shop").state == SyncState::Synced
                && cds(s, "good.shop").acked != good_cds
        })
        .await;
    let picky_cds = cds(&status, "picky.shop");
    assert_eq!(picky_cds.state, SyncState::Stale);
    assert_eq!(picky_cds.acked, good_cds, "the ACKed version stays");
    let nack = picky_cds.nack.expect("nack");
    assert_eq!(Some(&nack.version), picky_cds.sent.as_ref());
    assert!(
        nack.error.contains("lb_policy is invalid"),
        "{}",
        nack.error
    );
    let picky_status = status.proxy("picky.shop").next().expect("connected");
    for ty in [
        ResourceType::Endpoints,
        ResourceType::Listener,
        ResourceType::Route,
    ] {
        assert_eq!(
            picky_status.of(ty).expect("tracked").state,
            SyncState::Synced
        );
    }
    picky.with(|s| assert!(!s.held[&ResourceType::Cluster].contains_key("bad")));
    assert_eq!(cp.metric("mesh_cp_nacks_total", Some(("type", "cds"))), 1.0);

    // The fix reaches the proxy and clears the NACK.
    cp.publish(ConfigSnapshot::uniform(3, good_config));
    let fixed = cp.wait_status("picky synced again", all_synced(2)).await;
    assert_eq!(cds(&fixed, "picky.shop").nack, None);
    assert_eq!(cds(&fixed, "picky.shop").acked, good_cds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_nack_is_corrected_by_the_next_push() {
    let config = mesh(2, 1, 80);
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, config.clone())).await;
    let proxy = SimProxy::spawn(
        &cp.url(),
        "picky.shop",
        SimOptions {
            delta: true,
            reject: Some(reject_cluster("bad")),
            ..Default::default()
        },
    );
    cp.wait_status("synced", all_synced(1)).await;
    let ring = |config: &mut ProxyConfig, size| config.clusters[0].ring_size = size;

    // svc-0 changes in the same response as the rejected cluster...
    let mut rejected = config.clone();
    ring(&mut rejected, 64);
    rejected.clusters.push(Cluster {
        name: "bad".into(),
        ..Default::default()
    });
    cp.publish(ConfigSnapshot::uniform(2, rejected));
    cp.wait_status("NACK", |s| {
        s.proxies[0]
            .of(ResourceType::Cluster)
            .is_some_and(|t| t.nack.is_some())
    })
    .await;
    let before = proxy.with(|s| s.held[&ResourceType::Cluster]["svc-0"].clone());

    // ...so when the next push drops the bad cluster, svc-0 is sent again.
    let mut next = config.clone();
    ring(&mut next, 64);
    cp.publish(ConfigSnapshot::uniform(3, next));
    cp.wait_status("synced again", all_synced(1)).await;
    proxy.with(|s| {
        let last = s.log.last().expect("responses");
        assert_eq!(
            (last.ty, last.resources.as_slice()),
            (ResourceType::Cluster, ["svc-0".to_owned()].as_slice())
        );
        assert_ne!(s.held[&ResourceType::Cluster]["svc-0"], before);
        assert!(!s.held[&ResourceType::Cluster].contains_key("bad"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_reconnect_and_resync_after_a_control_plane_restart() {
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, mesh(5, 1, 80))).await;
    let addr = cp.addr;
    let proxies: Vec<SimProxy> = (0..10)
        .map(|i| {
            let options = SimOptions {
                delta: i % 2 == 1,
                reconnect: true,
                ..Default::default()
            };
            SimProxy::spawn(&cp.url(), &format!("web-{i}.shop"), options)
        })
        .collect();
    cp.wait_status("10 proxies synced", all_synced(10)).await;
    cp.stop().await;

    // A new control plane on the same address, with one more service.
    let cp = ControlPlane::start(addr, ConfigSnapshot::uniform(1, mesh(6, 1, 80))).await;
    cp.wait_status("10 proxies synced again", all_synced(10))
        .await;
    for (i, proxy) in proxies.iter().enumerate() {
        proxy
            .wait("the new service", |s| {
                s.held[&ResourceType::Cluster].len() == 6
            })
            .await;
        proxy.with(|s| {
            assert_eq!(s.streams, 2, "{}: reconnected once", proxy.id);
            let after_restart = &s.log[ALL.len()..];
            assert_eq!(types(after_restart), ALL, "{}", proxy.id);
            if i % 2 == 1 {
                // Delta proxies told the new server what they had: only svc-5 is new (and
                // the empty telemetry set is answered empty).
                for response in &after_restart[..4] {
                    assert_eq!(response.resources, ["svc-5"], "{}: {response:?}", proxy.id);
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_change_over_delta_sends_only_that_clusters_endpoints() {
    let config = mesh(3, 2, 80);
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, config.clone())).await;
    let proxy = SimProxy::spawn(
        &cp.url(),
        "web-0.shop",
        SimOptions {
            delta: true,
            ..Default::default()
        },
    );
    proxy
        .wait("first config", |s| s.acked.len() == ALL.len())
        .await;

    let mut scaled = config.clone();
    scaled.endpoints[1].endpoints.push(Endpoint {
        address: "10.9.9.9:80".into(),
        ..Default::default()
    });
    cp.publish(ConfigSnapshot::uniform(2, scaled.clone()));
    proxy
        .wait("the endpoint change", |s| s.log.len() == 6)
        .await;
    proxy.with(|s| {
        let push = &s.log[5];
        assert_eq!(push.ty, ResourceType::Endpoints);
        assert_eq!(push.resources, ["svc-1"]);
        assert!(push.removed.is_empty());
    });

    // Removing a service removes its four resources, and sends nothing else.
    let mut shrunk = scaled;
    shrunk.clusters.pop();
    shrunk.endpoints.pop();
    shrunk.listeners.pop();
    shrunk.routes.pop();
    cp.publish(ConfigSnapshot::uniform(3, shrunk));
    proxy.wait("the removal", |s| s.log.len() == 10).await;
    proxy.with(|s| {
        assert_eq!(types(&s.log[6..]), ALL[..4]);
        for push in &s.log[6..] {
            assert!(push.resources.is_empty(), "{push:?}");
            assert_eq!(push.removed, ["svc-2"]);
        }
    });
    cp.wait_status("synced", all_synced(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_push_sends_clusters_then_endpoints_then_listeners_then_routes() {
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, mesh(2, 1, 80))).await;
    let sotw = SimProxy::spawn(&cp.url(), "a.shop", SimOptions::default());
    let delta = SimProxy::spawn(
        &cp.url(),
        "b.shop",
        SimOptions {
            delta: true,
            ..Default::default()
        },
    );
    cp.wait_status("synced", all_synced(2)).await;
    for generation in 2..=4 {
        cp.publish(ConfigSnapshot::uniform(
            generation,
            mesh(generation as usize + 1, 1, 80),
        ));
    }
    for proxy in [&sotw, &delta] {
        proxy
            .wait("generation 4", |s| {
                s.held
                    .get(&ResourceType::Route)
                    .is_some_and(|r| r.len() == 5)
            })
            .await;
        proxy.with(|s| {
            // The first push has every type; later ones all but telemetry, which never
            // changes here.
            assert_eq!(types(&s.log[..ALL.len()]), ALL, "{}", proxy.id);
            let later = &s.log[ALL.len()..];
            assert_eq!(later.len() % 4, 0, "{}: whole pushes only", proxy.id);
            for push in later.chunks(4) {
                assert_eq!(types(push), ALL[..4], "{}", proxy.id);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_that_stops_reading_delays_no_other() {
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, mesh(200, 5, 1000))).await;

    // Subscribes to everything, then never reads a response.
    let channel = GrpcEndpoint::from_shared(cp.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let (requests, queue) = mpsc::unbounded_channel();
    for (i, ty) in ALL.into_iter().enumerate() {
        requests
            .send(DiscoveryRequest {
                node: (i == 0).then(|| Node {
                    id: "stuck.shop".into(),
                    ..Default::default()
                }),
                type_url: ty.type_url().into(),
                ..Default::default()
            })
            .expect("queued");
    }
    let _unread = AggregatedDiscoveryClient::new(channel)
        .stream(UnboundedReceiverStream::new(queue))
        .await
        .expect("stream opens");

    let healthy = SimProxy::spawn(&cp.url(), "healthy.shop", SimOptions::default());
    for generation in 2..=30 {
        cp.publish(ConfigSnapshot::uniform(
            generation,
            mesh(200, 5, 1000 + generation as u16),
        ));
    }
    let status = cp
        .wait_status("the healthy proxy synced on the last generation", |s| {
            s.proxy("healthy.shop")
                .any(|p| p.generation == 30 && p.is_synced())
        })
        .await;
    let stuck = status.proxy("stuck.shop").next().expect("still connected");
    assert!(!stuck.is_synced());
    drop((requests, healthy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_delta_change_goes_out_in_parts_and_counts_as_acked_after_the_last() {
    // About 600 KiB of endpoints: several parts of at most ~128 KiB.
    let config = mesh(200, 40, 80);
    let cp = ControlPlane::start(any_port(), ConfigSnapshot::uniform(1, config.clone())).await;
    let delta = SimOptions {
        delta: true,
        ..Default::default()
    };
    let proxy = SimProxy::spawn(&cp.url(), "web-0.shop", delta.clone());
    cp.wait_status("synced", all_synced(1)).await;
    proxy.with(|s| {
        let parts: Vec<&Received> = s
            .log
            .iter()
            .filter(|r| r.ty == ResourceType::Endpoints)
            .collect();
        assert!(parts.len() >= 4, "{} endpoint responses", parts.len());
        let carried: usize = parts.iter().map(|r| r.resources.len()).sum();
        assert_eq!(carried, 200, "every cluster's endpoints exactly once");
        assert_eq!(s.held[&ResourceType::Endpoints].len(), 200);
        let mut order = types(&s.log);
        order.dedup();
        assert_eq!(order, ALL, "all parts of a type before the next type");
    });

    // A proxy that rejects one part: the change is NACKed as a whole, whatever the other
    // parts' ACKs say.
    let reject_one: Reject = Arc::new(|received: &Received| {
        (received.ty == ResourceType::Endpoints
            && received.resources.iter().any(|n| n == "svc-100"))
        .then(|| "svc-100: bad endpoints".to_owned())
    });
    let _picky = SimProxy::spawn(
        &cp.url(),
        "picky.shop",
        SimOptions {
            reject: Some(reject_one),
            ..delta
        },
    );
    cp.wait_status("the NACK", |s| {
        s.proxies.iter().any(|p| {
            p.id == "picky.shop"
                && p.of(ResourceType::Endpoints)
                    .is_some_and(|t| t.nack.is_some() && t.acked.is_none())
        })
    })
    .await;
}
