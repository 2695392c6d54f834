"""The package itself: installed (not the source tree), typed, with the documented names."""

from __future__ import annotations

from pathlib import Path

import kaito
from conftest import REPO


def test_imports_the_installed_wheel_not_the_source_tree() -> None:
    location = Path(kaito.__file__).resolve()
    assert not location.is_relative_to(REPO / "kaito-py"), location
    assert "site-packages" in location.parts


def test_ships_type_information() -> None:
    package = Path(kaito.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_kaito.pyi").is_file()


def test_version_and_default_model() -> None:
    assert kaito.__version__.count(".") == 2
    assert kaito.DEFAULT_MODEL == "smollm2-135m-instruct"


def test_exception_hierarchy() -> None:
    for cls in (
        kaito.InvalidSpecError,
        kaito.InvalidRequestError,
        kaito.ModelLoadError,
        kaito.ModelNotFoundError,
        kaito.GenerationError,
        kaito.OverloadedError,
    ):
        assert issubclass(cls, kaito.KaitoError)
    assert issubclass(kaito.InvalidSpecError, ValueError)
    assert issubclass(kaito.InvalidRequestError, ValueError)
    assert issubclass(kaito.ModelNotFoundError, kaito.ModelLoadError)
    assert issubclass(kaito.ModelNotFoundError, LookupError)
