"""What runs in a Ray actor: one trial (``trainable``), its search context taken once per
worker process from the driver's object store, early-stopping rungs asked of the board actor
on the driver's node. Ray is imported only when these run."""
from __future__ import annotations

import base64
import json
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from autocompress import errors
from autocompress.config import SearchConfig

_CACHE: dict[str, Any] = {}    # per worker process: the search context, built once


class _RemoteBoard:
    """Board proxy used inside trials: asks the board actor on the driver's node."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def decide(self, rung: int, number: int, accuracy: float, costs: Any,
               protected: bool, margin: float = 0.0, floor: float = -1.0) -> bool:
        import ray

        return bool(ray.get(self.handle.decide.remote(rung, number, accuracy, list(costs),
                                                      protected, margin, floor)))


def trainable(config: dict[str, Any], payload: dict[str, Any]) -> None:
    """One trial in a Ray actor. Its outcome always comes back as a result: the record and
    weights; a user error (``AutocompressError``: the driver stops the search with it); or
    any other error outside the trial's own handling (e.g. the search context failing to
    build on this node), recorded as the trial's failure. A trial that ends with no result
    lost its worker process (killed, out of memory, node gone)."""
    import traceback

    from ray import tune

    try:
        tune.report(_run(config, payload))
    except errors.AutocompressError as exc:
        tune.report({"user_error": json.dumps({"kind": type(exc).__name__, "loc": exc.loc,
                                               "message": exc.raw_message, "hint": exc.hint})})
    except Exception as exc:
        tune.report({"crash": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-4)}"})


def _run(config: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
    from autocompress.search.objective import run_trial

    torch.set_num_threads(payload["threads"])
    cfg: SearchConfig = payload["cfg"]
    key = f"{cfg.path}:{payload['run_id']}"
    if key not in _CACHE:
        _CACHE.clear()
        try:
            _set_up(key, payload)
        except errors.AutocompressError:
            raise
        except Exception as exc:
            if unpickling(exc):         # every trial here would fail in no time: stop
                raise node_error(exc) from exc
            raise                       # a one-off (out of memory, a lost object): this trial
    board = None if payload["board"] is None else _RemoteBoard(payload["board"])
    with tempfile.TemporaryDirectory(prefix="autocompress-", dir=scratch_dir()) as tmp:
        rec = run_trial(_CACHE[key], _CACHE[f"{key}:teacher"], config["params"],
                        number=config["number"], seed=config["seed"], trial_dir=Path(tmp),
                        baseline=config["baseline"], note=config["note"], board=board)
        weights = Path(tmp, "model.pt")
        blob = base64.b64encode(weights.read_bytes()).decode() if weights.exists() else ""
    return {"record": json.dumps(rec.to_dict(), default=float), "weights_b64": blob}


def _set_up(key: str, payload: dict[str, Any]) -> None:
    """This worker's search context and teacher, cached under ``key``."""
    import ray

    from autocompress.search.setup import build_context

    cfg = payload["cfg"]
    ctx = ray.get(payload["ctx"]) if payload["ctx"] is not None else \
        build_context(cfg, reduction=payload["reduction"])
    train = replace(ctx.cfg.train, device=payload["device"])   # the GPU Ray gave, or none
    ctx = replace(ctx, cfg=replace(ctx.cfg, train=train))
    teacher = payload["teacher"]     # your own teacher's class unpickles only once its
    if teacher.model is None:        # module is importable: it is built here instead
        own = payload["own_teacher"]
        teacher = replace(teacher, model=own.build(ctx.data).eval())
    _CACHE[key], _CACHE[f"{key}:teacher"] = ctx, teacher    # both or neither


def unpickling(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says this node's Python cannot rebuild
    the driver's objects: another autocompress or a missing module of yours (``AttributeError:
    Can't get attribute``, ``ModuleNotFoundError``), which fails every trial sent here.

    >>> unpickling(AttributeError("Can't get attribute 'ResolvedSpace'")), unpickling(MemoryError())
    (True, False)
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ImportError, pickle.UnpicklingError)) or \
                type(seen).__name__ == "RaySystemError" or \
                (isinstance(seen, AttributeError) and "Can't get attribute" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def node_error(exc: BaseException) -> errors.AutocompressError:
    """A Ray node that cannot set up the driver's search context (most often: another
    autocompress, or your own modules, than the driver's: the context does not unpickle).
    Recorded as each trial's failure, it failed every trial sent there at once, so the
    search ran out of trials with nothing trained; it stops the search instead."""
    import ray

    first = (str(exc).strip().splitlines() or [""])[0]
    where = ray.util.get_node_ip_address()
    return errors.AutocompressError(
        f"the Ray node at {where} cannot set up the search ({type(exc).__name__}: {first}; "
        f"it runs autocompress from {Path(errors.__file__).parent})", loc="Ray cluster",
        hint="every node needs the driver's Python environment: the same autocompress "
             "(same version or commit) and your own data/model modules")


def scratch_dir(cwd: Path | None = None) -> str | None:
    """Where a trial writes its files before they go to the driver: the actor's working
    directory, which Tune makes the trial's folder under Ray's temp dir on that node
    (``.../working_dirs/<trial>``), so a worker killed mid-trial leaves them there, removed
    with Ray's temp dir, not in the system's /tmp; None (the system's) when Ray did not."""
    cwd = Path.cwd() if cwd is None else cwd
    return str(cwd) if "working_dirs" in cwd.parts else None


def user_error(data: str) -> errors.AutocompressError:
    """The user error ``trainable`` reported, rebuilt in the driver (same class, place, hint)."""
    err = json.loads(data)
    kind = getattr(errors, err["kind"], errors.AutocompressError)
    if not (isinstance(kind, type) and issubclass(kind, errors.AutocompressError)):
        kind = errors.AutocompressError
    return kind(err["message"], loc=err["loc"], hint=err["hint"])
