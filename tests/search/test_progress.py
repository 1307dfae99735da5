"""The per-trial line reads the run's counts and best from the records, so several workers
(and a resumed run) print the run's figures, not each process's own."""
from __future__ import annotations

import io
from dataclasses import replace
from types import SimpleNamespace

from autocompress.config import load_config
from autocompress.search.loop import show
from autocompress.search.progress import Progress
from autocompress.search.records import RecordLog, TrialRecord, append_record, read_records

from ..conftest import TINY, write_config


def _rec(n: int, acc: float, ms: float) -> TrialRecord:
    return TrialRecord(number=n, state="complete", params={}, seed=n,
                       metrics={"accuracy": acc}, cost={"stm32f746": {"latency_ms": ms}},
                       constraints={"stm32f746.max_latency_ms": ms - 50.0})


def _session(tmp_path, progress):
    cfg = load_config(write_config(tmp_path, TINY))
    path = tmp_path / "records.jsonl"
    return SimpleNamespace(records_path=path, log=RecordLog(path), cfg=cfg, progress=progress,
                           ctx=SimpleNamespace(objectives=("accuracy", "stm32f746.latency_ms")))


def test_line_shows_the_runs_best_not_this_processes(tmp_path):
    out = io.StringIO()
    progress = Progress(total=3, profile="stm32f746", stream=out)
    session = _session(tmp_path, progress)
    append_record(session.records_path, _rec(0, 0.93, 3.0))   # another worker's trial
    mine = _rec(1, 0.80, 1.0)
    append_record(session.records_path, mine)
    show(session, mine)
    line = out.getvalue().splitlines()[-1]
    assert line.startswith("[2/3] trial 1") and "best 0.930" in line and "front 2" in line
    alone = Progress(total=3, profile="stm32f746", stream=io.StringIO())
    alone.trial(mine, 1)
    assert alone.best == 0.80                      # without the run's figure: its own


def test_eta_after_a_resume_counts_only_this_processes_trials():
    out = io.StringIO()
    progress = Progress(total=20, profile="stm32f746", stream=out, done=15)  # resumed at 15
    progress.start -= 10.0                                # 10 s for its first trial here
    progress.trial(_rec(15, 0.9, 1.0), 1)
    eta = float(out.getvalue().split("eta")[1].strip().rstrip("s"))
    assert 35 <= eta <= 45                                 # 4 left x 10 s, not 4 x 10/16 s


def test_eta_leaves_out_the_set_up_and_columns_line_up():
    import time

    out = io.StringIO()
    progress = Progress(total=5, profile="stm32f746", stream=out)
    progress.start -= 100.0                               # 100 s of set-up (the teacher)
    first = replace(_rec(0, 0.9, 1.0), started_at=time.time() - 10.0)   # then a 10 s trial
    progress.trial(first, 1)
    eta = float(out.getvalue().split("eta")[1].strip().rstrip("s"))
    assert 35 <= eta <= 45                                 # 4 left x 10 s, not 4 x 110 s
    base = replace(_rec(1, 0.9, 1.0), baseline="uniform-int8")
    progress.trial(base, 1)
    plain, tagged = out.getvalue().splitlines()
    assert "<uniform-int8>" in tagged and plain.index("acc ") == tagged.index("acc ")


def test_the_line_names_the_profile_when_the_run_has_several():
    """A 0.0534 ms phone latency keeps its digits; with several profiles the line says whose
    cost it shows."""
    rec = TrialRecord(number=0, state="complete", params={}, seed=0,
                      metrics={"accuracy": 0.9}, cost={"pixel4": {"latency_ms": 0.0534}})
    one, two = io.StringIO(), io.StringIO()
    Progress(total=1, profile="pixel4", stream=one).trial(rec, 1)
    Progress(total=1, profile="pixel4", stream=two, label=True).trial(rec, 1)
    assert " 0.0534 ms" in one.getvalue() and "pixel4" not in one.getvalue()
    assert "pixel4: 0.0534 ms" in two.getvalue()


def test_a_stopped_trial_says_at_which_rung_and_with_what_accuracy():
    rec = TrialRecord(number=9, state="pruned", params={}, seed=9, rung=1,
                      metrics={"rung_accuracy/1": 0.141}, cost={"pixel4": {"latency_ms": 1.59}})
    out = io.StringIO()
    Progress(total=10, profile="pixel4", stream=out).trial(rec, 1)
    assert out.getvalue().rstrip().endswith("stopped at rung 1 (acc 0.141)")


def test_two_workers_counters_neither_repeat_nor_skip(tmp_path):
    """Worker A appends trial 0, worker B trial 1, then both print: A's line counted B's
    record too ([2/3] twice, [1/3] never, 28 of 205 lines in a 2-worker run)."""
    a_out, b_out = io.StringIO(), io.StringIO()
    a = _session(tmp_path, Progress(total=3, profile="stm32f746", stream=a_out))
    b = _session(tmp_path, Progress(total=3, profile="stm32f746", stream=b_out))
    first, second = _rec(0, 0.9, 3.0), _rec(1, 0.8, 1.0)
    append_record(a.records_path, first)
    append_record(b.records_path, second)
    show(b, second)
    show(a, first)
    assert a_out.getvalue().startswith("[1/3] trial 0")
    assert b_out.getvalue().startswith("[2/3] trial 1")


def test_the_incremental_log_reads_only_complete_lines_and_matches_a_full_read(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    assert log.read() == []
    append_record(path, _rec(0, 0.9, 3.0))
    assert [r["number"] for r in log.read()] == [0]
    line = path.read_text().splitlines()[0].replace('"number": 0', '"number": 1')
    with open(path, "a") as fh:                      # another worker mid-append
        fh.write(line[:40])
    assert [r["number"] for r in log.read()] == [0]
    with open(path, "a") as fh:
        fh.write(line[40:] + "\n")
    append_record(path, _rec(2, 0.7, 1.0))
    assert [r["number"] for r in log.read()] == [0, 1, 2] == \
        [r["number"] for r in read_records(path)]
    with open(path, "a") as fh:                       # torn by a kill, then another append
        fh.write('{"number": 3, "sta')
    append_record(path, _rec(0, 0.95, 3.0))           # a later record of trial 0 wins
    assert log.read() == read_records(path, warn=False)
    assert log.read()[0]["metrics"]["accuracy"] == 0.95 and log.counted_before(2) == 1


def test_eta_follows_the_recent_pace_when_trials_slow_down(monkeypatch):
    """A GP sampler's asks grow with the run: the ETA from the whole run's mean pace said
    61 s with about 270 s left."""
    from autocompress.search import progress as progress_mod

    clock = [0.0]
    monkeypatch.setattr(progress_mod.time, "perf_counter", lambda: clock[0])
    out = io.StringIO()
    progress = Progress(total=30, profile="stm32f746", stream=out)
    for n in range(20):
        clock[0] += 1.0 if n < 10 else 10.0              # 10 quick trials, then slow ones
        progress.trial(_rec(n, 0.9, 1.0), 1)
    eta = float(out.getvalue().splitlines()[-1].split("eta")[1].strip().rstrip("s"))
    assert eta == 100.0                                   # 10 left x 10 s, not x 5.5 s


def test_quiet_hides_trial_lines_but_not_warnings():
    """``--quiet`` hid "trial N interrupted", the teacher warning and the time limit too."""
    out = io.StringIO()
    progress = Progress(total=3, profile="stm32f746", stream=out, quiet=True)
    progress.trial(_rec(0, 0.9, 1.0), front_size=1)
    progress.say("teacher t: val accuracy 0.9")
    progress.warn("trial 1 interrupted (its worker was lost)")
    assert out.getvalue() == "trial 1 interrupted (its worker was lost)\n"


def test_progress_pickles_without_its_stream():
    """Ray Tune pickles the searcher, which holds the progress: with a stdout that cannot be
    pickled (pytest's capture) the Ray backend failed ('cannot pickle CaptureIO')."""
    import pickle
    import sys
    import threading

    class Notebook(io.StringIO):
        lock = None

    out = Notebook()
    out.lock = threading.Lock()
    progress = Progress(total=3, profile="stm32f746", stream=out)
    again = pickle.loads(pickle.dumps(progress))
    assert again.stream is sys.stdout and again.total == 3
