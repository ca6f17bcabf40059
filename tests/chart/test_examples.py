"""The kind guide's example app (examples/kind/*.yaml) is valid Kubernetes, so the README's
steps apply as written; the Istio kinds in it are checked by the Rust tests (mesh analyze)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chartlib import KUBE_VERSIONS, REPO, objects, validate

EXAMPLES = sorted((REPO / "examples" / "kind").glob("*.yaml"))
ISTIO_GROUPS = ("networking.istio.io/", "security.istio.io/")


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_objects_are_valid_kubernetes(example: Path, kube_version: str):
    checked = 0
    for obj in objects(example.read_text()):
        if obj["apiVersion"].startswith(ISTIO_GROUPS):
            continue
        assert validate(obj, kube_version) is None
        checked += 1
    assert checked >= 5, f"{example}: only {checked} Kubernetes objects"
