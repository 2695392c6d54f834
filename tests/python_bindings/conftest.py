"""Fixtures for the tests of the `kaito` Python package (kaito-py).

The suite runs against the INSTALLED wheel (see kaito-py/test.sh), never the source tree.

Environment:
  KAITO_TEST_MODEL   path of the SmolLM2-135M-Instruct GGUF; when unset, the library fetches
                     the bundled default preset into its cache (network on first use).
  KAITO_REFERENCE_DIR  KAITO's reference manifests (crds/, examples/, supported_models.yaml);
                       default: <repo>/../shared/kaito-reference, else <repo>/shared/kaito-reference.
                       When set, only that path is used (a missing path means "absent"). The older
                       KAITO_SHARED_DIR (the folder holding kaito-reference/) still works.
  CI                   when set (not empty, 0 or false), the KAITO examples are required: their
                       absence fails the run instead of skipping it.

The Workspace tests always run on the project's own manifests (kaito-k8s/tests/fixtures, which
cover every feature KAITO's examples exercise) and, when the reference manifests are there, on
KAITO's examples too; without them those are skipped with one notice, never a collection error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import pytest

import kaito

REPO = Path(__file__).resolve().parents[2]


def model_arg() -> Optional[str]:
    """The model the tests load: KAITO_TEST_MODEL, or None (the bundled default)."""
    env = os.environ.get("KAITO_TEST_MODEL")
    if env and not Path(env).is_file():
        pytest.fail(f"KAITO_TEST_MODEL={env} does not exist", pytrace=False)
    return env or None


FIXTURES = REPO / "kaito-k8s" / "tests" / "fixtures"


def under_ci() -> bool:
    """True under CI: `CI` set to anything but empty, 0 or false (as the Rust tests decide)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def reference_candidates() -> List[Path]:
    """Where KAITO's reference manifests may be; an explicitly set variable is the only candidate."""
    if os.environ.get("KAITO_REFERENCE_DIR"):
        return [Path(os.environ["KAITO_REFERENCE_DIR"])]
    if os.environ.get("KAITO_SHARED_DIR"):
        return [Path(os.environ["KAITO_SHARED_DIR"]) / "kaito-reference"]
    return [REPO.parent / "shared" / "kaito-reference", REPO / "shared" / "kaito-reference"]


def reference_dir() -> Optional[Path]:
    """KAITO's reference manifests, or None when absent (see reference_notice)."""
    return next((c for c in reference_candidates() if c.is_dir()), None)


def reference_notice() -> str:
    return (
        "NOTICE: KAITO's reference manifests not found ("
        + ", ".join(str(c) for c in reference_candidates())
        + "); KAITO's own examples are skipped, the project's fixtures (kaito-k8s/tests/fixtures)"
        " still run. Set KAITO_REFERENCE_DIR to include them."
    )


def our_fixtures() -> List[Path]:
    """The project's own manifests: always there."""
    files = sorted(FIXTURES.glob("*.yaml"))
    assert len(files) >= 20, f"fixtures missing in {FIXTURES}: {files}"
    return files


def kaito_examples() -> Optional[List[Path]]:
    """KAITO's example manifests, or None when the reference manifests are absent."""
    found = reference_dir()
    if found is None:
        return None
    files = sorted((found / "examples").glob("*.yaml"))
    assert files, f"{found}/examples holds no manifests"
    return files


def manifest_params(select: Callable[[Path], bool]) -> List[Any]:
    """pytest params over our fixtures and KAITO's examples that `select` keeps. Without KAITO's
    examples one placeholder param stands for them: skipped with the notice, or (under CI) None,
    which the test turns into a failure through `require_manifest`."""
    params: List[Any] = [pytest.param(p, id=f"ours/{p.name}") for p in our_fixtures() if select(p)]
    examples = kaito_examples()
    if examples is None:
        marks = [] if under_ci() else [pytest.mark.skip(reason=reference_notice())]
        params.append(pytest.param(None, id="kaito/examples-absent", marks=marks))
    else:
        params += [pytest.param(p, id=f"kaito/{p.name}") for p in examples if select(p)]
    return params


def require_manifest(path: Optional[Path]) -> Path:
    """The manifest of a `manifest_params` test; fails the placeholder (reference manifests
    absent under CI)."""
    if path is None:
        pytest.fail(
            "KAITO's reference manifests are required under CI and were not found at "
            + ", ".join(str(c) for c in reference_candidates())
            + "; set KAITO_REFERENCE_DIR",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def model() -> Optional[str]:
    return model_arg()


@pytest.fixture(scope="session")
def llm(model: Optional[str]) -> kaito.LLM:
    """The model shared by the session: one inference thread, a small context, 4 sequences."""
    return kaito.LLM(model, threads=1, ctx_size=512, parallel=4)


@pytest.fixture(scope="session")
def small_llm(model: Optional[str]) -> kaito.LLM:
    """One sequence and no queue: a second concurrent request is refused with OverloadedError."""
    return kaito.LLM(model, threads=1, ctx_size=512, parallel=1, max_queue=0)


@pytest.fixture(scope="session")
def server(llm: kaito.LLM) -> Iterator[kaito.Server]:
    with kaito.serve(llm) as srv:
        yield srv
