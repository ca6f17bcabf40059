use super::{
    destination_rule::{ClientTlsMode, SimpleLb},
    *,
};

#[test]
fn istio_docs_virtual_service_reads_unchanged() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-route
  namespace: bookinfo
spec:
  hosts:
  - reviews.prod.svc.cluster.local
  http:
  - name: "reviews-v2-routes"
    match:
    - uri:
        prefix: "/wpcatalog"
    - uri:
        prefix: "/consumercatalog"
    rewrite:
      uri: "/newcatalog"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v2
  - name: "reviews-v1-route"
    route:
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v1
      weight: 90
    - destination:
        host: reviews.prod.svc.cluster.local
        subset: v2
      weight: 10
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure
    timeout: 10s
    fault:
      delay:
        percentage:
          value: 0.1
        fixedDelay: 5s
"#;
    let vs: VirtualService = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(vs.metadata.name.as_deref(), Some("reviews-route"));
    let [first, second] = &vs.spec.http[..] else {
        panic!("two http routes expected");
    };
    assert_eq!(first.matches.len(), 2);
    assert_eq!(
        first.matches[1].uri.as_ref().unwrap().prefix.as_deref(),
        Some("/consumercatalog")
    );
    assert_eq!(
        first.rewrite.as_ref().unwrap().uri.as_deref(),
        Some("/newcatalog")
    );
    assert_eq!(second.route[0].weight, Some(90));
    assert_eq!(second.route[1].destination.subset.as_deref(), Some("v2"));
    let retries = second.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, Some(3));
    assert_eq!(retries.per_try_timeout.as_deref(), Some("2s"));
    let delay = second.fault.as_ref().unwrap().delay.as_ref().unwrap();
    assert_eq!(delay.percentage.as_ref().unwrap().value, 0.1);
    assert_eq!(delay.fixed_delay.as_deref(), Some("5s"));
}

#[test]
fn destination_rule_with_policies_reads_and_keeps_unknown_enum_values() {
    let yaml = r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: bookinfo }
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 30ms }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000 }
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
    tls:
      mode: ISTIO_MUTUAL
    portLevelSettings:
    - port: { number: 80 }
      loadBalancer:
        consistentHash:
          httpCookie: { name: user, ttl: 0s }
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
    trafficPolicy:
      loadBalancer: { simple: FASTEST }
"#;
    let dr: DestinationRule = serde_yaml::from_str(yaml).unwrap();
    let policy = dr.spec.traffic_policy.as_ref().unwrap();
    assert_eq!(
        policy.load_balancer.as_ref().unwrap().simple,
        Some(SimpleLb::Random)
    );
    let pool = policy.connection_pool.as_ref().unwrap();
    assert_eq!(pool.tcp.as_ref().unwrap().max_connections, Some(100));
    assert_eq!(
        pool.http.as_ref().unwrap().http1_max_pending_requests,
        Some(10)
    );
    let outlier = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_5xx_errors, Some(7));
    assert_eq!(
        policy.tls.as_ref().unwrap().mode,
        Some(ClientTlsMode::IstioMutual)
    );
    assert_eq!(
        policy.port_level_settings[0].port.as_ref().unwrap().number,
        Some(80)
    );
    let v2 = &dr.spec.subsets[1];
    let unknown = v2
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    assert_eq!(
        unknown.simple,
        Some(SimpleLb::Unknown("FASTEST".to_owned()))
    );
    // Serializing writes Istio's spelling back.
    let json = serde_json::to_value(&dr.spec).unwrap();
    assert_eq!(json["trafficPolicy"]["tls"]["mode"], "ISTIO_MUTUAL");
    assert_eq!(
        json["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"],
        7
    );
    assert_eq!(
        json["trafficPolicy"]["connectionPool"]["http"]["http1MaxPendingRequests"],
        10
    );
}

#[test]
fn empty_lists_written_as_null_read_as_empty() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: shop }
spec:
  hosts:
  gateways:
  http:
  - route:
    - destination: { host: web }
"#;
    let vs: VirtualService = serde_yaml::from_str(yaml).unwrap();
    assert!(vs.spec.hosts.is_empty());
    assert_eq!(vs.spec.http[0].route[0].destination.host, "web");
}

#[test]
fn security_kinds_read_port_maps_and_rules() {
    let pa: PeerAuthentication = serde_yaml::from_str(
        r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  mtls: { mode: STRICT }
  portLevelMtls:
    8080: { mode: DISABLE }
"#,
    )
    .unwrap();
    assert_eq!(
        pa.spec.port_level_mtls[&8080].mode,
        Some(peer_authentication::MutualTlsMode::Disable)
    );
    let ap: AuthorizationPolicy = serde_yaml::from_str(
        r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  action: ALLOW
  rules:
  - from:
    - source: { principals: ["cluster.local/ns/shop/sa/web"] }
    to:
    - operation: { methods: ["GET"], paths: ["/api/*"] }
    when:
    - key: request.headers[version]
      values: ["v1"]
"#,
    )
    .unwrap();
    let rule = &ap.spec.rules[0];
    assert_eq!(
        rule.from[0].source.principals,
        ["cluster.local/ns/shop/sa/web"]
    );
    assert_eq!(rule.to[0].operation.paths, ["/api/*"]);
    assert_eq!(rule.when[0].values, ["v1"]);
}

#[test]
fn kinds_carry_istio_api_groups() {
    use kube::Resource;
    assert_eq!(VirtualService::api_version(&()), "networking.istio.io/v1");
    assert_eq!(ServiceEntry::plural(&()), "serviceentries");
    assert_eq!(
        AuthorizationPolicy::api_version(&()),
        "security.istio.io/v1"
    );
    assert_eq!(Gateway::kind(&()), "Gateway");
}
