"""The package's shape (``../shared/DESIGN.md``: split a module when it passes ~300 lines),
and the public imports that a split must keep."""
from __future__ import annotations

from pathlib import Path

import autocompress

LIMIT = 300


def test_no_module_passes_300_lines():
    """compress/checkpoint.py (309), space/space.py (301) and export/quant_ort.py (301) had."""
    root = Path(autocompress.__file__).parent
    long = {str(p.relative_to(root)): n for p in sorted(root.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > LIMIT}
    assert long == {}


def test_the_split_modules_keep_their_public_imports():
    from autocompress.compress.checkpoint import (  # noqa: F401
        PackReport,
        load_state,
        pack_state,
        save_packed,
        unpack_state,
        write_durable,
    )
    from autocompress.space import ResolvedSpace, Rule, SearchSpace, resolve  # noqa: F401

    assert all(callable(f) for f in (load_state, pack_state, save_packed, unpack_state,
                                     write_durable, resolve, ResolvedSpace, SearchSpace))
