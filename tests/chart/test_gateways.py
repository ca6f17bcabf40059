"""The chart's Gateway API objects: the GatewayClass mesh and the shared ingress gateway.

Kubernetes' schemas do not cover them, so mesh's own reader checks them: `mesh analyze` reads
manifests with types generated from the Gateway API CRDs and reports every field it does not
know. It needs the workspace's `mesh` binary (built by `cargo nextest run` before the chart
tests in scripts/test); without it the test is skipped on a laptop and fails in CI.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from chartlib import REPO, find, objects, objects_of, one, template

MESH = REPO / "target" / "debug" / "mesh"


def test_gateway_class_is_rendered_as_asked():
    assert not find(objects_of("default"), "GatewayClass"), "auto: helm template serves no Gateway API"
    for value, rendered in ((True, True), (False, False), ("auto", False)):
        objs = objects(template({"gateways": {"gatewayClass": value}})["manifest"])
        assert bool(find(objs, "GatewayClass")) == rendered, value
    cls = one(objects_of("ingress-gateway"), "GatewayClass", "mesh")
    assert cls["spec"]["controllerName"] == "mesh.io/gateway-controller"
    assert "namespace" not in cls["metadata"]


def test_ingress_gateway_is_a_gateway_of_class_mesh_labelled_for_istio_gateways():
    assert not find(objects_of("default"), "Gateway")
    gateway = one(objects_of("ingress-gateway"), "Gateway", "mesh-ingressgateway")
    assert gateway["metadata"]["namespace"] == "mesh-system"
    assert gateway["metadata"]["annotations"]["networking.istio.io/service-type"] == "NodePort"
    spec = gateway["spec"]
    assert spec["gatewayClassName"] == "mesh"
    assert spec["infrastructure"]["labels"]["istio"] == "ingressgateway"
    listeners = {l["name"]: l for l in spec["listeners"]}
    assert (listeners["http"]["port"], listeners["http"]["protocol"]) == (80, "HTTP")
    https = listeners["https"]
    assert (https["port"], https["protocol"]) == (443, "HTTPS")
    assert https["tls"]["certificateRefs"] == [{"name": "ingress-cert"}]
    for listener in listeners.values():
        assert listener["allowedRoutes"]["namespaces"]["from"] == "All"


def test_no_https_listener_without_a_certificate():
    objs = objects(template({"gateways": {"ingress": {"enabled": True}}})["manifest"])
    gateway = one(objs, "Gateway", "mesh-ingressgateway")
    assert [l["name"] for l in gateway["spec"]["listeners"]] == ["http"]


def test_gateway_objects_are_read_by_mesh(tmp_path):
    if not MESH.exists():
        message = f"{MESH} is not built (cargo build -p mesh-cli)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    objs = [o for o in objects_of("ingress-gateway") if o["kind"] in ("GatewayClass", "Gateway")]
    assert len(objs) == 2
    (tmp_path / "gateways.yaml").write_text(yaml.safe_dump_all(objs))
    run = subprocess.run(
        [str(MESH), "analyze", "-f", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    report = run.stdout + run.stderr
    assert run.returncode in (0, 1), report
    # Every field is known to mesh's types; the one problem is the certificate's Secret, which
    # the user creates.
    assert "not known" not in report, report
    problems = [line for line in report.splitlines() if line.startswith(("Error", "Warning"))]
    assert len(problems) == 1, report
    assert "tls.certificateRefs[0]" in problems[0], report
    assert "Secret mesh-system/ingress-cert does not exist" in problems[0], report
