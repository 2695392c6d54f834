"""The model store's limit and read-only tiers, as `kaito.LLM` takes them (the CLI's
`--cache-max-gib` and `--cache-tier`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

import kaito

PRESET = "smollm2-135m-instruct"


def default_store() -> Path:
    """The store the test command filled (`kaito pull` of the bundled preset)."""
    if os.environ.get("KAITO_CACHE_DIR"):
        return Path(os.environ["KAITO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kaito"


def files(root: Path) -> List[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "held" not in p.parts)


@pytest.fixture
def tier() -> Path:
    store = default_store()
    if not any(p.name.startswith("pypi") for p in (store / "refs").glob("*")):
        pytest.skip(f"NOTICE: the bundled preset is not in {store} (run `kaito pull` first)")
    return store


def test_a_tier_serves_without_the_network_and_is_not_written(tmp_path: Path, tier: Path) -> None:
    before = [(p, p.stat().st_size) for p in files(tier / "blobs")]
    llm = kaito.LLM(PRESET, cache_dir=tmp_path / "store", cache_tiers=[tier], threads=1)
    answer = llm.generate("The capital of France is", max_tokens=4, temperature=0)
    assert "Paris" in answer
    # The model now lives in this store too (hard-linked or copied from the tier).
    assert files(tmp_path / "store" / "blobs"), "nothing was brought into the store"
    assert [(p, p.stat().st_size) for p in files(tier / "blobs")] == before


def test_a_cache_limit_smaller_than_the_model_is_refused(tmp_path: Path, tier: Path) -> None:
    with pytest.raises(kaito.KaitoError, match="more than the model cache may hold"):
        kaito.LLM(PRESET, cache_dir=tmp_path / "store", cache_tiers=[tier], cache_max_gib=0.01)
    with pytest.raises(kaito.KaitoError, match="cache_max_gib"):
        kaito.LLM(PRESET, cache_dir=tmp_path / "store", cache_max_gib=-1)
