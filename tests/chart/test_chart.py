"""The mesh chart, rendered by the real Helm engine and checked against Kubernetes' schemas.

Regenerate the golden render with UPDATE_GOLDEN=1 scripts/chart-test.
"""

from __future__ import annotations

import difflib
import os

import helm_python as helm
import pytest
import yaml

from chartlib import (
    CLUSTER_SCOPED,
    GOLDEN_DIR,
    KUBE_VERSIONS,
    NAMESPACE,
    find,
    lint,
    objects,
    objects_of,
    one,
    rendered,
    template,
    validate,
    value_sets,
)

SETS = list(value_sets())


# --- helm lint and helm template over every value set --------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("set_name", SETS)
def test_lint_is_clean_in_strict_mode(set_name, kube_version):
    report = lint(value_sets()[set_name], kube_version)
    # Severity 1 is information ("icon is recommended"); strict mode fails on warnings (2)
    # and errors (3), and so does this test.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], "\n".join(
        f"{m['path']}: {m['error']}" for m in problems
    ) or "\n".join(report["errors"])


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("set_name", SETS)
def test_every_object_is_valid_kubernetes(set_name, kube_version):
    objs = objects_of(set_name)
    assert len(objs) >= 9, f"only {len(objs)} objects rendered"
    skipped = {}
    for obj in objs:
        reason = validate(obj, kube_version)
        if reason:
            skipped[obj["kind"]] = reason
    # The only custom resources the chart renders are the Gateway API's, which
    # test_gateway_objects_are_read_by_mesh checks; any other kind must not be skipped.
    assert set(skipped) <= {"GatewayClass", "Gateway"}, f"skipped: {skipped}"


@pytest.mark.parametrize("set_name", SETS)
def test_objects_are_in_the_release_namespace_or_cluster_scoped(set_name):
    for obj in objects_of(set_name):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert namespace is None, f"{obj['kind']} {obj['metadata']['name']} is cluster-scoped"
        else:
            assert namespace == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}: {namespace}"


@pytest.mark.parametrize("set_name", SETS)
def test_no_two_objects_share_kind_and_name(set_name):
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects_of(set_name)]
    assert len(keys) == len(set(keys)), sorted(keys)


# --- values the schema refuses ---------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"replicas": 0}, "/replicas", id="replicas-0"),
    pytest.param({"replicas": "2"}, "/replicas", id="replicas-string"),
    pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="pull-policy"),
    pytest.param({"image": {"tag": "v1 beta"}}, "/image/tag", id="tag-with-space"),
    pytest.param({"replicaz": 2}, "replicaz", id="unknown-top-level-key"),
    pytest.param({"injector": {"proxy": {"loglevel": "debug"}}}, "loglevel", id="unknown-nested-key"),
    pytest.param({"injector": {"nativeSidecars": "maybe"}}, "/injector/nativeSidecars", id="native-sidecars"),
    pytest.param({"resources": {"requests": {"cpu": 1}}}, "/resources/requests/cpu", id="quantity-not-string"),
    pytest.param({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory", id="bad-quantity"),
    pytest.param({"webhook": {"failurePolicy": "Retry"}}, "/webhook/failurePolicy", id="failure-policy"),
    pytest.param({"webhook": {"timeoutSeconds": 31}}, "/webhook/timeoutSeconds", id="webhook-timeout"),
    pytest.param({"istioCRDs": {"install": "yes"}}, "/istioCRDs/install", id="crds-install-string"),
    pytest.param(
        {"outboundTrafficPolicy": {"mode": "DENY_ALL"}},
        "/outboundTrafficPolicy/mode",
        id="outbound-traffic-policy",
    ),
    pytest.param(
        {"telemetry": {"tracingProviders": {"otel": "collector"}}},
        "/telemetry/tracingProviders/otel",
        id="tracing-provider-without-port",
    ),
]


@pytest.mark.parametrize("values,named", BAD_VALUES)
def test_helm_rejects_bad_values_naming_them(values, named):
    with pytest.raises(helm.HelmError) as caught:
        template(values)
    message = str(caught.value)
    assert "schema" in message and named in message, message


@pytest.mark.parametrize("values,named", BAD_VALUES[:3])
def test_lint_reports_bad_values(values, named):
    report = lint(values, KUBE_VERSIONS[0])
    assert any(named in e for e in report["errors"]), report


# --- the golden render ------------------------------------------------------------------------


def test_default_render_matches_golden():
    golden = GOLDEN_DIR / "default.yaml"
    actual = rendered("default")["manifest"]
    if not actual.endswith("\n"):
        actual += "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(actual)
        pytest.skip(f"wrote {golden}")
    assert golden.exists(), f"{golden} is missing: run UPDATE_GOLDEN=1 scripts/chart-test"
    expected = golden.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile="golden/default.yaml",
                tofile="helm template (now)",
                n=2,
            )
        )
        pytest.fail(
            "the default render differs from the golden file "
            "(UPDATE_GOLDEN=1 scripts/chart-test accepts it):\n" + diff,
            pytrace=False,
        )


# --- the webhook ------------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", SETS)
def test_webhook_selects_enabled_namespaces_and_calls_the_injector(set_name):
    config = one(objects_of(set_name), "MutatingWebhookConfiguration", "mesh-sidecar-injector")
    [hook] = config["webhooks"]
    assert hook["name"] == "sidecar-injector.mesh.io"
    assert hook["clientConfig"]["service"] == {
        "name": "mesh-injector",
        "namespace": NAMESPACE,
        "path": "/inject",
        "port": 443,
    }
    # The control plane sets caBundle; the chart must not, or an upgrade would clear it.
    assert "caBundle" not in hook["clientConfig"]
    assert hook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["namespaceSelector"]["matchLabels"] == {"mesh-injection": "enabled"}
    assert {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": [NAMESPACE],
    } in hook["namespaceSelector"]["matchExpressions"]
    assert hook["objectSelector"] == {
        "matchExpressions": [{"key": "mesh.io/inject", "operator": "NotIn", "values": ["false"]}]
    }
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["reinvocationPolicy"] == "Never"
    expected_policy = value_sets()[set_name].get("webhook", {}).get("failurePolicy", "Fail")
    assert hook["failurePolicy"] == expected_policy


def test_webhook_failure_policy_and_timeout_follow_values():
    [hook] = one(objects_of("custom-image"), "MutatingWebhookConfiguration", "mesh-sidecar-injector")["webhooks"]
    assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Ignore", 5)
    [hook] = one(objects_of("default"), "MutatingWebhookConfiguration", "mesh-sidecar-injector")["webhooks"]
    assert (hook["failurePolicy"], hook["timeoutSeconds"]) == ("Fail", 10)


def test_webhook_services_reach_the_webhook_port():
    objs = objects_of("default")
    pod = one(objs, "Deployment", "mesh-control-plane")["spec"]["template"]
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc-xds": 15012, "http-monitoring": 15014, "https-webhook": 15017}
    for name in ("mesh-injector", "mesh-control-plane"):
        service = one(objs, "Service", name)
        for key, value in service["spec"]["selector"].items():
            assert pod["metadata"]["labels"].get(key) == value, f"{name} selects no pod"
        by_port = {p["port"]: p for p in service["spec"]["ports"]}
        assert by_port[443]["targetPort"] == 15017
    cp_ports = {p["name"]: (p["port"], p["targetPort"]) for p in one(objs, "Service", "mesh-control-plane")["spec"]["ports"]}
    assert cp_ports == {
        "grpc-xds": (15012, 15012),
        "http-monitoring": (15014, 15014),
        "https-webhook": (443, 15017),
    }


# --- RBAC --------------------------------------------------------------------------------------


def grants(rules):
    """Each rule flattened to (apiGroup, resource, verb, resourceNames)."""
    return {
        (group, resource, verb, tuple(rule.get("resourceNames", ())))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_role_has_no_wildcards_and_only_reads_secrets():
    role = one(objects_of("default"), "ClusterRole", "mesh-control-plane")
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert not any("*" in v for v in rule.get(field, [])), f"wildcard in {field}: {rule}"
        assert "nonResourceURLs" not in rule
    # Gateways' certificates are read; no Secret is written outside the release namespace.
    secrets = {g[2] for g in grants(role["rules"]) if g[1].split("/")[0] == "secrets"}
    assert secrets == {"get", "list", "watch"}, secrets


def test_cluster_role_grants_exactly_what_the_control_plane_uses():
    role = one(objects_of("default"), "ClusterRole", "mesh-control-plane")
    read = ("get", "list", "watch")
    expected = set()
    for group, resources in {
        "": ("pods", "services", "namespaces", "secrets"),
        "discovery.k8s.io": ("endpointslices",),
        "networking.istio.io": ("virtualservices", "destinationrules", "gateways", "serviceentries", "sidecars", "workloadentries"),
        "security.istio.io": ("peerauthentications", "authorizationpolicies"),
        "telemetry.istio.io": ("telemetries",),
        "gateway.networking.k8s.io": (
            "gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "referencegrants",
        ),
    }.items():
        expected |= {(group, r, v, ()) for r in resources for v in read}
    expected |= {
        ("gateway.networking.k8s.io", f"{r}/status", v, ())
        for r in ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes")
        for v in ("update", "patch")
    }
    expected |= {("authentication.k8s.io", "tokenreviews", "create", ())}
    expected |= {
        (group, r, v, ())
        for group, resources in {"": ("services", "serviceaccounts"), "apps": ("deployments",)}.items()
        for r in resources
        for v in ("create", "patch")
    }
    expected |= {
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", v, ("mesh-sidecar-injector",))
        for v in ("get", "patch")
    }
    expected |= {(g, "events", v, ()) for g in ("", "events.k8s.io") for v in ("create", "patch")}
    expected |= {
        ("", "configmaps", v, ()) for v in ("get", "list", "watch", "create", "update", "patch")
    }
    actual = grants(role["rules"])
    assert actual == expected, f"extra: {sorted(actual - expected)}; missing: {sorted(expected - actual)}"


def test_secrets_and_leases_only_in_the_release_namespace():
    objs = objects_of("default")
    role = one(objs, "Role", "mesh-control-plane")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role["rules"]) == {
        ("", "secrets", "create", ()),
        ("", "secrets", "get", ("mesh-ca-root",)),
        ("", "secrets", "update", ("mesh-ca-root",)),
        ("coordination.k8s.io", "leases", "get", ()),
        ("coordination.k8s.io", "leases", "create", ()),
        ("coordination.k8s.io", "leases", "update", ()),
    }
    for kind, ref_kind in (("RoleBinding", "Role"), ("ClusterRoleBinding", "ClusterRole")):
        binding = one(objs, kind, "mesh-control-plane")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": ref_kind,
            "name": "mesh-control-plane",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "mesh-control-plane", "namespace": NAMESPACE}
        ]
    one(objs, "ServiceAccount", "mesh-control-plane")


# --- the Deployment ---------------------------------------------------------------------------


def control_plane(set_name):
    return one(objects_of(set_name), "Deployment", "mesh-control-plane")


@pytest.mark.parametrize("set_name", SETS)
def test_control_plane_runs_locked_down(set_name):
    pod = control_plane(set_name)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mesh-control-plane"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["name"] == "control-plane"
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 65532 and sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in sc["capabilities"] and not sc.get("privileged")
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}


def test_control_plane_command_args_env_probes_and_mounts():
    deployment = control_plane("default")
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == "mesh:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == ["mesh-control-plane"]
    assert container["args"] == [
        "--xds-addr=0.0.0.0:15012",
        "--monitoring-addr=0.0.0.0:15014",
        "--webhook-addr=0.0.0.0:15017",
        "--webhook-config=mesh-sidecar-injector",
        "--injector-settings=/etc/mesh/injector/settings.yaml",
        "--ca-secret=mesh-ca-root",
        "--xds-san=mesh-control-plane.mesh-system.svc,"
        "mesh-control-plane.mesh-system.svc.cluster.local,mesh-injector.mesh-system.svc",
        "--log=info",
        "--outbound-traffic-policy=ALLOW_ANY",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15014}
    assert container["livenessProbe"]["tcpSocket"] == {"port": 15014}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    settings = mounts["/etc/mesh/injector"]
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == settings["name"]]
    assert volume["configMap"]["name"] == "mesh-injector"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "mesh-control-plane"}
    assert pod["metadata"]["labels"]["app"] == "mesh-control-plane"
    assert deployment["metadata"]["labels"]["app"] == "mesh-control-plane"


def test_tracing_providers_become_control_plane_flags():
    values = {"telemetry": {"tracingProviders": {
        "otel": "otel-collector.observability.svc.cluster.local:4317",
        "jaeger": "http://jaeger-collector.tracing:4317",
    }}}
    deployment = one(objects(template(values)["manifest"]), "Deployment", "mesh-control-plane")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    flags = [a for a in container["args"] if a.startswith("--tracing-provider=")]
    assert flags == [
        "--tracing-provider=jaeger=http://jaeger-collector.tracing:4317",
        "--tracing-provider=otel=otel-collector.observability.svc.cluster.local:4317",
    ]


def test_outbound_traffic_policy_becomes_a_control_plane_flag():
    for values, mode in [({}, "ALLOW_ANY"), ({"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"}}, "REGISTRY_ONLY")]:
        deployment = one(objects(template(values)["manifest"]), "Deployment", "mesh-control-plane")
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert f"--outbound-traffic-policy={mode}" in container["args"]


def test_custom_image_reaches_the_control_plane_and_the_injector():
    [container] = control_plane("custom-image")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com:5000/platform/mesh:0.2.0-rc.1"
    assert container["imagePullPolicy"] == "Always"
    assert "--log=info,mesh_control_plane=debug" in container["args"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "768Mi"}
    pod = control_plane("custom-image")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_settings_changes_roll_the_control_plane():
    def checksum(values):
        deployment = one(objects(template(values)["manifest"]), "Deployment", "mesh-control-plane")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/injector-settings"]

    base = checksum({})
    assert len(base) == 64
    assert checksum({"injector": {"proxy": {"concurrency": 3}}}) != base
    assert checksum({"logLevel": "debug"}) == base


@pytest.mark.parametrize("set_name", SETS)
def test_anti_affinity_only_with_more_than_one_replica(set_name):
    spec = control_plane(set_name)["spec"]
    replicas = value_sets()[set_name].get("replicas", 1)
    assert spec["replicas"] == replicas
    affinity = spec["template"]["spec"].get("affinity")
    if replicas > 1:
        [term] = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        assert term["podAffinityTerm"]["labelSelector"] == {
            "matchLabels": {"app": "mesh-control-plane"}
        }
    else:
        assert affinity is None


def test_ha_spreads_and_is_protected_by_a_pdb():
    objs = objects_of("ha")
    pdb = one(objs, "PodDisruptionBudget", "mesh-control-plane")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "mesh-control-plane"}}}
    spec = one(objs, "Deployment", "mesh-control-plane")["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["template"]["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_no_pdb_with_one_replica_or_when_disabled():
    assert not find(objects_of("default"), "PodDisruptionBudget")
    objs = objects(template({"replicas": 3, "pdb": {"enabled": False}})["manifest"])
    assert not find(objs, "PodDisruptionBudget")
    assert one(objs, "Deployment", "mesh-control-plane")["spec"]["template"]["spec"]["affinity"]


# --- the injector's settings ------------------------------------------------------------------


def settings_of(set_name):
    config_map = one(objects_of(set_name), "ConfigMap", "mesh-injector")
    assert set(config_map["data"]) == {"settings.yaml"}
    return yaml.safe_load(config_map["data"]["settings.yaml"])


def test_injector_settings_default():
    assert settings_of("default") == {
        "image": "mesh:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "discoveryAddress": "https://mesh-control-plane.mesh-system.svc:15012",
        "nativeSidecars": "auto",
        "proxy": {
            "logLevel": "info",
            "concurrency": 2,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            },
        },
    }


def test_injector_settings_follow_values():
    settings = settings_of("custom-image")
    assert settings["image"] == "registry.example.com:5000/platform/mesh:0.2.0-rc.1"
    assert settings["imagePullPolicy"] == "Always"
    assert settings["nativeSidecars"] is False
    assert settings["proxy"] == {
        "logLevel": "debug",
        "concurrency": 4,
        "resources": {
            "requests": {"cpu": "50m", "memory": "32Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        },
    }


@pytest.mark.parametrize(
    "value,written", [("auto", "auto"), (True, True), ("true", True), (False, False), ("false", False)]
)
def test_native_sidecars_are_written_as_auto_or_a_boolean(value, written):
    manifest = template({"injector": {"nativeSidecars": value}})["manifest"]
    config_map = one(objects(manifest), "ConfigMap", "mesh-injector")
    assert yaml.safe_load(config_map["data"]["settings.yaml"])["nativeSidecars"] == written


def test_another_namespace_moves_every_address():
    out = template({}, namespace="mesh")
    objs = objects(out["manifest"])
    settings = yaml.safe_load(one(objs, "ConfigMap", "mesh-injector")["data"]["settings.yaml"])
    assert settings["discoveryAddress"] == "https://mesh-control-plane.mesh.svc:15012"
    [container] = one(objs, "Deployment", "mesh-control-plane")["spec"]["template"]["spec"]["containers"]
    assert (
        "--xds-san=mesh-control-plane.mesh.svc,mesh-control-plane.mesh.svc.cluster.local,"
        "mesh-injector.mesh.svc" in container["args"]
    )
    [hook] = one(objs, "MutatingWebhookConfiguration", "mesh-sidecar-injector")["webhooks"]
    assert hook["clientConfig"]["service"]["namespace"] == "mesh"
    assert "meant to be installed in mesh-system" in out["notes"]


# --- the Istio CRDs ---------------------------------------------------------------------------

ISTIO_CRDS = {
    "virtualservices.networking.istio.io": ("VirtualService", ["vs"], ["v1", "v1beta1", "v1alpha3"]),
    "destinationrules.networking.istio.io": ("DestinationRule", ["dr"], ["v1", "v1beta1", "v1alpha3"]),
    "gateways.networking.istio.io": ("Gateway", ["gw"], ["v1", "v1beta1", "v1alpha3"]),
    "serviceentries.networking.istio.io": ("ServiceEntry", ["se"], ["v1", "v1beta1", "v1alpha3"]),
    "sidecars.networking.istio.io": ("Sidecar", [], ["v1", "v1beta1", "v1alpha3"]),
    "workloadentries.networking.istio.io": ("WorkloadEntry", ["we"], ["v1", "v1beta1", "v1alpha3"]),
    "peerauthentications.security.istio.io": ("PeerAuthentication", ["pa"], ["v1", "v1beta1"]),
    "authorizationpolicies.security.istio.io": ("AuthorizationPolicy", ["ap"], ["v1", "v1beta1"]),
    "telemetries.telemetry.istio.io": ("Telemetry", ["telemetry"], ["v1", "v1alpha1"]),
}


def test_istio_crds_are_installed_and_kept():
    crds = {c["metadata"]["name"]: c for c in find(objects_of("default"), "CustomResourceDefinition")}
    assert set(crds) == set(ISTIO_CRDS)
    for name, (kind, short_names, versions) in ISTIO_CRDS.items():
        crd = crds[name]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        spec = crd["spec"]
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["kind"] == kind
        assert spec["names"]["shortNames"] == short_names
        assert [v["name"] for v in spec["versions"]] == versions
        assert [v["name"] for v in spec["versions"] if v["storage"]] == ["v1"]
        for version in spec["versions"]:
            assert version["served"] is True
            assert version["subresources"] == {"status": {}}
            schema = version["schema"]["openAPIV3Schema"]
            assert schema["type"] == "object"
            for part in ("spec", "status"):
                assert schema["properties"][part] == {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                }
            assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_no_gateway_api_crds():
    groups = {c["spec"]["group"] for c in find(objects_of("default"), "CustomResourceDefinition")}
    assert groups == {"networking.istio.io", "security.istio.io", "telemetry.istio.io"}


def test_istio_crds_absent_when_not_installed():
    objs = objects_of("no-istio-crds")
    assert not find(objs, "CustomResourceDefinition")
    assert "istioCRDs.install=false" in rendered("no-istio-crds")["notes"]
    # Everything else is still there.
    one(objs, "Deployment", "mesh-control-plane")
    one(objs, "MutatingWebhookConfiguration", "mesh-sidecar-injector")


# --- notes ------------------------------------------------------------------------------------


def test_notes_give_the_next_steps():
    notes = rendered("default")["notes"]
    for step in ("mesh-injection=enabled", "mesh check", "mesh proxy-status"):
        assert step in notes, notes
    assert "meant to be installed" not in notes
