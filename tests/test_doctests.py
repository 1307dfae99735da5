"""The examples in the package's docstrings run as tests, so they cannot drift from the code.
The export modules' examples are left out: they call into model files on disk
(``model.onnx``) and illustrate usage; the export tests run those functions for real."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import autocompress

ILLUSTRATIVE = {"autocompress.export.onnx_io", "autocompress.export.quant_ort"}


def _with_examples() -> list[str]:
    """Modules with at least one example that runs (not marked ``+SKIP``)."""
    out = []
    for info in pkgutil.walk_packages(autocompress.__path__, "autocompress."):
        if info.name in ILLUSTRATIVE:
            continue
        tests = doctest.DocTestFinder().find(importlib.import_module(info.name))
        if any(not e.options.get(doctest.SKIP) for t in tests for e in t.examples):
            out.append(info.name)
    return sorted(out)


@pytest.mark.parametrize("name", _with_examples())
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
