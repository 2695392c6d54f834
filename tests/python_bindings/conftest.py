"""Fixtures for the tests of the `kaito` Python package (kaito-py).

The suite runs against the INSTALLED wheel (see kaito-py/test.sh), never the source tree.

Environment:
  KAITO_TEST_MODEL   path of the SmolLM2-135M-Instruct GGUF; when unset, the library fetches
                     the bundled default preset into its cache (network on first use).
  KAITO_SHARED_DIR   the `shared/` folder holding kaito-reference/examples; default: the first
                     of <repo>/shared and <repo>/../shared that has it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

import kaito

REPO = Path(__file__).resolve().parents[2]


def model_arg() -> Optional[str]:
    """The model the tests load: KAITO_TEST_MODEL, or None (the bundled default)."""
    env = os.environ.get("KAITO_TEST_MODEL")
    if env and not Path(env).is_file():
        pytest.fail(f"KAITO_TEST_MODEL={env} does not exist", pytrace=False)
    return env or None


def examples_dir() -> Path:
    candidates: List[Path] = []
    if os.environ.get("KAITO_SHARED_DIR"):
        candidates.append(Path(os.environ["KAITO_SHARED_DIR"]))
    candidates += [REPO / "shared", REPO.parent / "shared"]
    for shared in candidates:
        examples = shared / "kaito-reference" / "examples"
        if examples.is_dir():
            return examples
    pytest.fail(
        "KAITO's example manifests not found in any of "
        + ", ".join(str(c / "kaito-reference" / "examples") for c in candidates)
        + "; set KAITO_SHARED_DIR",
        pytrace=False,
    )


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


@pytest.fixture(scope="session")
def kaito_examples() -> Path:
    return examples_dir()
