"""What a run dir and an export record for someone re-creating them: the export manifest
names the data its accuracies were measured on, and env.json the backend and worker count
the trials were drawn with (several workers draw other trials than one, see README)."""
from __future__ import annotations

import json
import shutil

import pytest

from autocompress.cli import main
from tests.test_errors import _in_tmp, finished_run, run_cli  # noqa: F401  (fixtures)


def test_manifest_names_the_data_its_test_accuracy_was_measured_on(finished_run, tmp_path,  # noqa: F811
                                                                    capsys):
    import autocompress as ac
    from autocompress.data import load_digits_bundle
    from autocompress.train import accuracy

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main(["export", str(run), "--trial", "1", "--out", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    manifest = json.loads((tmp_path / "e" / "manifest.json").read_text())
    data = manifest["data"]
    assert data["source"] == "digits" and data["split_seed"] == 0
    # the folder alone is enough: the split re-made from the manifest gives its accuracy
    bundle = load_digits_bundle(data["split_seed"], data["val_fraction"], data["test_fraction"])
    assert data["sizes"] == {"train": len(bundle.train), "val": len(bundle.val),
                             "test": len(bundle.test)}
    model = ac.load_export(tmp_path / "e")
    assert accuracy(model, bundle.test) == pytest.approx(manifest["accuracy"]["test_torch"],
                                                         abs=1e-9)


def test_env_json_records_backend_and_workers(finished_run, tmp_path):  # noqa: F811
    from autocompress.search.rundir import record_resume

    env = json.loads((finished_run / "env.json").read_text())
    assert env["backend"] == "optuna" and env["workers"] == 1
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    record_resume(run, {"backend": "ray", "workers": 2})
    env = json.loads((run / "env.json").read_text())
    assert env["resumes"][-1]["backend"] == "ray" and env["resumes"][-1]["workers"] == 2


def test_report_provenance_shows_the_launch_and_each_resume(tmp_path):
    """The report's provenance showed the revision the run started at only: trials run after
    a resume under another (e.g. -dirty) revision, backend or worker count looked clean."""
    from autocompress.report.provenance import read_provenance

    (tmp_path / "env.json").write_text(json.dumps({
        "seed": 0, "git_rev": "abc", "backend": "optuna", "workers": 1,
        "resumes": [{"at": "2026-11-28T01:28:36+00:00", "git_rev": "abc-dirty",
                     "backend": "ray", "workers": 2, "target_trials": 9}]}))
    details = dict(read_provenance(tmp_path).details)
    assert details["backend"] == "optuna, 1 worker(s)"
    assert "abc-dirty" in details["resume 1"] and "ray, 2 worker(s)" in details["resume 1"]
    assert "target 9 trials" in details["resume 1"]
