"""What the injector produces is valid Kubernetes: the injected pods of the webhook's golden
test (injector/tests/golden/*.injected.yaml) and `mesh inject`'s golden output
(cli/tests/inject/*.injected.yaml), both asserted equal to the real outputs by the Rust tests,
validated strictly against the same Kubernetes versions as the chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from chartlib import KUBE_VERSIONS, REPO, objects, validate

GOLDENS = sorted(
    [*(REPO / "injector" / "tests" / "golden").glob("*.injected.yaml"),
     *(REPO / "cli" / "tests" / "inject").glob("*.injected.yaml")]
)


def test_there_are_goldens_to_validate():
    assert len(GOLDENS) >= 3, GOLDENS


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("golden", GOLDENS, ids=lambda p: str(p.relative_to(REPO)))
def test_injected_objects_are_valid_kubernetes(golden: Path, kube_version: str):
    objs = objects(golden.read_text())
    assert objs, f"{golden} holds no objects"
    for obj in objs:
        items = obj.get("items", []) if obj.get("kind") == "List" else [obj]
        for item in items:
            assert validate(item, kube_version) is None
