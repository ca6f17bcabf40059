"""Rendering the mesh chart with the real Helm engine and validating what comes out.

Helm comes from the PyPI package helm-python-sdk: its wheel carries libhelm_c (Helm's own Go
SDK built as a C library) and calls it with ctypes, so there is no helm binary to fetch and
nothing is downloaded at run time. `template()` is Helm's install action in client-only
dry-run mode, which is what `helm template` runs: values checked against values.schema.json,
templates rendered, objects in Helm's install order, each after a `# Source:` line.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART = REPO / "charts" / "mesh"
VALUES_DIR = HERE / "values"
GOLDEN_DIR = HERE / "golden"

RELEASE = "mesh"
NAMESPACE = "mesh-system"

#: The Kubernetes versions every object is validated against: the first with native sidecars
#: on by default, and the newest the installed kubernetes-validate knows.
KUBE_VERSIONS = ("1.29.0", kv_utils.latest_version())

#: Kinds kubernetes-validate has no schema for (custom resources), each with the reason it is
#: not validated. A kind missing from the schemas and from this list fails the test.
NOT_IN_KUBERNETES_SCHEMAS: dict[tuple[str, str], str] = {
    ("gateway.networking.k8s.io/v1", kind): "a Gateway API custom resource: mesh's own reader, "
    "whose types are generated from the Gateway API CRDs, checks it instead "
    "(test_gateway_objects_are_read_by_mesh)"
    for kind in ("GatewayClass", "Gateway")
}

#: Kinds that are cluster-scoped; every other object must be in the release namespace.
CLUSTER_SCOPED = {
    "GatewayClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
}


def value_sets() -> dict[str, dict[str, Any]]:
    """The chart's defaults (no values) and each file in tests/chart/values/, by name."""
    sets: dict[str, dict[str, Any]] = {"default": {}}
    for path in sorted(VALUES_DIR.glob("*.yaml")):
        sets[path.stem] = yaml.safe_load(path.read_text()) or {}
    return sets


def template(values: dict[str, Any] | None = None, namespace: str = NAMESPACE) -> dict[str, str]:
    """`helm template mesh charts/mesh -n NAMESPACE` with `values`: the manifest and the notes.

    Raises a helm_python.HelmError (HelmValuesError for values the schema rejects) when Helm
    refuses.
    """
    with helm.Config(namespace=namespace, storage_driver="memory") as config:
        release = config.install(
            str(CHART), RELEASE, values or {}, namespace=namespace, dry_run="client"
        )
    return {"manifest": release["manifest"], "notes": release.get("notes") or ""}


@functools.lru_cache(maxsize=None)
def rendered(set_name: str) -> dict[str, str]:
    """The render of a named value set, cached for the session."""
    return template(value_sets()[set_name])


def objects(manifest: str) -> list[dict[str, Any]]:
    """The objects of a multi-document manifest, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def objects_of(set_name: str) -> list[dict[str, Any]]:
    """The objects a named value set renders."""
    return objects(rendered(set_name)["manifest"])


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The objects of `kind` (and `name`, when given)."""
    return [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The single object of `kind` named `name`."""
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def validate(obj: dict[str, Any], kube_version: str) -> str | None:
    """Validates `obj` strictly (unknown fields fail) against Kubernetes `kube_version`.

    Returns None when valid, or the reason it is skipped (a listed custom kind). Raises
    AssertionError with the object, the field path and the problem otherwise.
    """
    __tracebackhide__ = True
    label = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kv_utils.SchemaNotFoundError as err:
        reason = NOT_IN_KUBERNETES_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        if reason is None:
            raise AssertionError(
                f"{label}: no Kubernetes {kube_version} schema for {obj['apiVersion']} "
                f"{obj['kind']} ({err.message}); a custom kind must be listed in "
                "NOT_IN_KUBERNETES_SCHEMAS with its reason"
            ) from None
        return reason
    except kv_utils.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "(top)"
        raise AssertionError(
            f"{label} is not valid Kubernetes {err.version}: at {path}: {err.message}"
        ) from None
    return None


def lint(values: dict[str, Any], kube_version: str) -> dict[str, Any]:
    """`helm lint --strict` of the chart with `values`, for Kubernetes `kube_version`."""
    return helm.lint(
        str(CHART),
        values,
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{kube_version}",
    )
