"""kaito.Workspace on the project's manifests (kaito-k8s/tests/fixtures) and, when present, KAITO's
own examples: parse, validate, render, estimate, round-trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import kaito
from conftest import FIXTURES, manifest_params, require_manifest

SMOL = """
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: smol
resource:
  labelSelector:
    matchLabels: {apps: smol}
inference:
  preset:
    name: smollm2-135m-instruct
  engine:
    threads: 1
    parallel: 2
"""


def has_workspace(path: Path) -> bool:
    return "kind: Workspace" in path.read_text()


def gpu_limits(objects: List[Dict[str, Any]]) -> List[str]:
    """The GPU resources (nvidia.com/...) the rendered pods ask for."""
    found = []
    for o in objects:
        if o["kind"] != "StatefulSet":
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            found += [k for k in c.get("resources", {}).get("limits", {}) if k.startswith("nvidia.com/")]
    return found


@pytest.mark.parametrize("path", manifest_params(has_workspace))
def test_manifests_parse_validate_render_and_estimate(path: Optional[Path]) -> None:
    path = require_manifest(path)
    ws = kaito.Workspace.from_file(path)
    assert ws.name
    ws.validate()
    objects = ws.render()
    assert objects and all(isinstance(o, dict) for o in objects)
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Service"} <= kinds, kinds
    names = {o["metadata"]["name"] for o in objects}
    assert ws.name in names
    report = ws.estimate()
    assert f"Workspace {ws.name}" in report
    assert "arithmetic" in report or "nothing to estimate" in report
    # A pod given GPUs was sized for them, and the report shows how.
    if gpu_limits(objects):
        assert "GPU" in report and "arithmetic:" in report, report
    # The text round-trips through YAML and dicts.
    again = kaito.Workspace.from_yaml(ws.to_yaml())
    assert again.to_dict() == ws.to_dict()
    assert kaito.Workspace.from_dict(ws.to_dict()).to_dict() == ws.to_dict()


def test_gpu_preset_estimate_shows_its_arithmetic() -> None:
    ws = kaito.Workspace.from_file(FIXTURES / "preset_public_l4.yaml")
    report = ws.estimate()
    assert "GPU" in report and "arithmetic:" in report
    assert gpu_limits(ws.render()) == ["nvidia.com/gpu"]


def test_our_fixtures_cover_the_workspace_features() -> None:
    """The fixtures exercise what KAITO's examples do, so a clone without them still tests it."""
    texts = {p.name: p.read_text() for p in FIXTURES.glob("*.yaml") if has_workspace(p)}
    for needle in [
        "accessMode: public",
        "modelAccessSecret:",
        "imagePullSecrets:",
        "preferredNodes:",
        "mode: accelerator",
        "count: 2",
        "config:",
        "tool-call-parser:",
        "adapters:",
        "kaito.sh/performance-mode: throughput",
        "kaito.sh/bypass-resource-checks:",
        "template:",
    ]:
        assert any(needle in t for t in texts.values()), needle


def test_local_workspace_renders_our_runtime() -> None:
    ws = kaito.Workspace.from_yaml(SMOL)
    assert ws.name == "smol"
    assert repr(ws) == 'Workspace(name="smol")'
    assert ws.to_dict()["inference"]["engine"]["parallel"] == 2
    statefulset = next(o for o in ws.render() if o["kind"] == "StatefulSet")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert "kaito" in container["image"]
    assert "CPU only" in ws.estimate()


def test_bad_yaml_raises_invalid_spec() -> None:
    with pytest.raises(kaito.InvalidSpecError) as info:
        kaito.Workspace.from_yaml("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: [oops")
    assert info.value.kind == "invalid_spec"
    assert str(info.value)


def test_unknown_field_names_its_path() -> None:
    with pytest.raises(kaito.InvalidSpecError, match=r"inference\.preset.*nam"):
        kaito.Workspace.from_yaml(SMOL.replace("    name: smollm2", "    nam: smollm2"))


def test_not_a_workspace() -> None:
    with pytest.raises(kaito.InvalidSpecError, match="no document of kind `Workspace`"):
        kaito.Workspace.from_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")


def test_invalid_name_is_rejected() -> None:
    with pytest.raises(kaito.InvalidSpecError, match="metadata.name"):
        kaito.Workspace.from_dict(
            {
                "apiVersion": "kaito.sh/v1beta1",
                "kind": "Workspace",
                "metadata": {"name": "Not_A_Name"},
                "inference": {"preset": {"name": "smollm2-135m-instruct"}},
            }
        )


def test_missing_file_raises_kaito_error(tmp_path: Path) -> None:
    with pytest.raises(kaito.KaitoError, match="cannot read"):
        kaito.Workspace.from_file(tmp_path / "nope.yaml")


def test_unknown_gpu_preset_cannot_run_locally() -> None:
    ws = kaito.Workspace.from_yaml(SMOL.replace("smollm2-135m-instruct", "phi-4-mini-instruct"))
    with pytest.raises(kaito.InvalidSpecError, match=r"inference\.preset\.name"):
        kaito.LLM(workspace=ws)
