"""export: a trial's model.pt that cannot be read is a one-line error (exit 2)."""
from __future__ import annotations

import shutil

import torch

from tests.test_errors import _in_tmp, finished_run, run_cli  # noqa: F401  (fixtures)


def test_unreadable_or_newer_weights_are_an_export_error(finished_run, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    weights = run / "trials" / "0" / "model.pt"
    packed = torch.load(weights, weights_only=True)
    torch.save({**packed, "version": packed["version"] + 1}, weights)
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    assert "model.pt" in line and "cannot read the trial's saved weights" in line
    weights.write_bytes(b"not a checkpoint")
    line = run_cli(capsys, "export", str(run), "--trial", "0")
    assert "cannot read the trial's saved weights" in line
