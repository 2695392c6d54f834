"""The library's tracing events reach Python logging once enabled."""

from __future__ import annotations

import logging

import pytest

import kaito


def test_enable_logging_forwards_events(llm: kaito.LLM, caplog: pytest.LogCaptureFixture) -> None:
    kaito.enable_logging("INFO")
    assert kaito.enable_logging("DEBUG") is False  # already on; the first level stays
    with caplog.at_level(logging.INFO, logger="kaito"):
        with kaito.serve(llm) as srv:
            url = srv.url
    records = [r for r in caplog.records if r.name.startswith("kaito")]
    assert any(url in r.getMessage() for r in records), [r.getMessage() for r in records]
    assert any(r.name == "kaito.server" for r in records)


def test_enable_logging_rejects_bad_levels() -> None:
    with pytest.raises(ValueError, match="level"):
        kaito.enable_logging("LOUD")
