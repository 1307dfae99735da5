"""Getting a Ray for the Ray backend: a local one with its session files in the run dir
(and the leftovers of a killed run's Ray stopped), or a running one joined at ``--address``
(checked first by ``ray_address``, so that a wrong address fails at once); ``ray.init`` keeps
the caller's SIGTERM handler. A local Ray starts in a background thread (:class:`LocalRay`)
while the driver sets up. ray is imported inside the functions only."""
from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from autocompress.errors import AutocompressError
from autocompress.search.ray_reap import (
    ORPHAN_PREFIX,
    reap_orphans,
    reap_previous_ray,
    write_owner,
)

SOCKET_MAX = 107 - 64          # AF_UNIX path limit minus Ray's session_<time>/sockets/... part
#: What a trial's actor imports, imported by each of a local Ray's worker processes as Ray
#: starts it (Ray's ``preload_python_modules``). The raylet starts one worker per CPU at once,
#: during the driver's set-up, and Tune's actors take those (see :func:`tune_on_prestarted`),
#: so an actor no longer pays about 2 s here (torch 1.1 s, Ray Tune 1.0 s) after the set-up
#: before its first trial. (A running Ray gains nothing from it: it starts a job's workers
#: when the job asks.)
PRELOAD = ("torch", "ray.tune", "autocompress.search.objective", "autocompress.search.setup",
           "autocompress.search.ray_trial")
TUNE_ENV = ("PL_DISABLE_FORK", "1")     # what Tune's actors' runtime env sets
NODE_CHECK_S = 60.0            # each node's autocompress is asked for in this (a worker start)
SIGACTION_BYTES = 512          # more than any libc's struct sigaction (glibc x86-64: 152)


def ray_temp_dir(run_dir: Path) -> Path:
    """Ray's session folder for a local Ray, remembered in ``RUN_DIR/.ray_temp``."""
    path = (run_dir / "ray_tmp").resolve()
    for folder, stopped in reap_orphans():     # what kill -9'd runs left in /tmp
        print(f"removed {folder}, a killed run's Ray session folder ({stopped} leftover "
              "process(es) stopped)", flush=True)
    if len(str(path)) <= SOCKET_MAX:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=ORPHAN_PREFIX, dir="/tmp"))
        write_owner(path)
    (run_dir / ".ray_temp").write_text(f"{path}\n{run_dir.resolve()}\n")   # folder, owner
    return path


def _ray_options() -> dict[str, Any]:
    return {"include_dashboard": False, "log_to_driver": False,
            "logging_level": logging.WARNING, "configure_logging": True}


class _NotMainThread(logging.Filter):
    """Drops Ray's warning that a ``ray.init`` outside the main thread sets no SIGTERM
    handler: the caller's handler is the one wanted (see :func:`init_ray`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "not the main thread" not in record.getMessage()


def init_ray(**kwargs: Any) -> None:
    """``ray.init``, keeping the caller's Python SIGTERM handler (Ray installs one that
    kills the driver on the spot; the CLI's stops the search as Ctrl-C does and says how to
    resume). Without one, Ray's handler stays. Outside the main thread Ray installs none,
    but its C++ core still takes SIGTERM for its crash handler, which printed a stack dump
    and armed a 3 s alarm that aborted the driver (exit 134, no --resume line) while it was
    still stopping: the signal's previous disposition is put back (:func:`sigaction`)."""
    import signal

    import ray

    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    before = None if main else sigaction(signal.SIGTERM)
    quiet = _NotMainThread()
    logging.getLogger("ray._private.worker").addFilter(quiet)
    try:
        ray.init(**kwargs, **_ray_options())
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)
        if before is not None:
            sigaction(signal.SIGTERM, before)
    if callable(handler):             # a Python handler (the CLI's); else Ray's stays
        signal.signal(signal.SIGTERM, handler)


def sigaction(signum: int, new: Any = None) -> Any:
    """The C-level disposition of ``signum`` (an opaque ``struct sigaction``), replaced by
    ``new`` when given: what ``signal.signal`` does, from any thread, and for a handler
    installed outside Python. None where libc has no ``sigaction``."""
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sigaction
    except (OSError, AttributeError, TypeError):   # no libc sigaction; Windows: CDLL(None)
        return None                                # raises TypeError
    old = ctypes.create_string_buffer(SIGACTION_BYTES)
    return old if call(signum, new, old) == 0 else None


class LocalRay:
    """A local Ray with ``cpus`` CPUs and its session files in the run dir (the leftovers of
    a killed run's Ray stopped first), started in a background thread so that its start
    (about 2-3 s here, mostly waiting on its own processes) overlaps the driver's set-up
    (context, teacher, study). :meth:`wait` before the first Ray call; :meth:`stop` always.

    The thread lives until :meth:`stop`: Ray starts its processes with PDEATHSIG, which
    Linux ties to the starting *thread*, so they would be killed when it ended."""

    def __init__(self, run_dir: Path, cpus: int) -> None:
        self.run_dir, self.error, self.tune_default = run_dir, None, False
        self.env_set = TUNE_ENV[0] not in os.environ
        self.temp = ray_temp_dir(run_dir)
        self.started, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(cpus,), name="ray-init",
                                       daemon=True)
        self.thread.start()

    def _run(self, cpus: int) -> None:
        os.environ.setdefault(TUNE_ENV[0], TUNE_ENV[1])   # Ray's processes inherit it
        try:
            init_ray(num_cpus=cpus, _temp_dir=str(self.temp),
                     _system_config={"preload_python_modules": list(PRELOAD)})
        except BaseException as exc:          # re-raised in the driver's thread by wait()
            self.error = exc
        finally:
            self.started.set()
        self.release.wait()

    def wait(self) -> None:
        """Until the Ray is up (its start's error raised here); then Tune's actors may run
        in the workers it started (:func:`tune_on_prestarted`)."""
        self.started.wait()
        if self.error is not None:
            raise self.error
        self.tune_default = tune_on_prestarted()

    def stop(self) -> None:
        """Shut the Ray down (after its start finished, or failed) and stop stray agents."""
        self.started.wait()
        shutdown_ray()
        self.release.set()
        self.thread.join()
        reap_previous_ray(self.run_dir)       # our /tmp folder, stray agents
        if self.tune_default:    # Tune's default back, for a later Ray in this process
            from ray.tune.execution import class_cache

            class_cache.DEFAULT_ENV_VARS[TUNE_ENV[0]] = TUNE_ENV[1]
        if self.env_set:
            os.environ.pop(TUNE_ENV[0], None)


def tune_on_prestarted() -> bool:
    """Let Tune's trial actors run in the workers a local Ray started (torch preloaded).

    Tune gives its actors a runtime env that sets ``PL_DISABLE_FORK=1`` (for PyTorch
    Lightning), and a worker runs only tasks of its own runtime env, so each actor started
    a fresh process after the set-up. :class:`LocalRay` sets the variable in the
    environment its processes inherit instead; with Tune's default dropped, its runtime env
    is empty, as the started workers' is (``tests/search/test_local_ray.py`` checks that the
    actors do land on them). Environment variables Tune propagates from the driver (AWS
    keys, ``RAY_CHDIR_TO_TRIAL_DIR``) still give its actors fresh processes: slower, not
    wrong. Returns whether it dropped the default (``LocalRay.stop`` puts it back)."""
    from ray.tune.execution import class_cache

    if class_cache.DEFAULT_ENV_VARS.get(TUNE_ENV[0]) == os.environ.get(TUNE_ENV[0]):
        class_cache.DEFAULT_ENV_VARS.pop(TUNE_ENV[0])
        return True
    return False


def shutdown_ray() -> None:
    """``ray.shutdown``, without its one-second wait on a local Ray's autoscaler monitor.

    For a Ray that ``ray.init`` started, shutdown sends each of its processes SIGTERM and
    waits up to 1 s for it: the monitor (the autoscaler's loop, which has nothing to save on
    a fixed local node) never exits in time and is killed after the full second, 1.0 of the
    1.35 s the shutdown takes here. It is killed first instead. Leaving a running Ray
    (``--address``) stops none of its processes, so there is nothing to kill."""
    import ray

    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    for info in (getattr(node, "all_processes", None) or {}).get("monitor", []):
        try:
            info.process.kill()
        except (AttributeError, OSError):         # gone already, or Ray changed its layout
            pass
    ray.shutdown()


def driver_env() -> None:
    """The Ray driver's environment, where the user has not set it: no token written to the
    home folder (``RAY_AUTH_MODE``); no Tune loggers (the records are ours) nor progress
    tables (``verbose=0``); and Ray's lines on the driver's output (a lost worker's
    "(raylet) A worker died ...") without colour codes, which ended up in log files."""
    for name, value in (("RAY_AUTH_MODE", "disabled"), ("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1"),
                        ("RAY_AIR_NEW_OUTPUT", "0"), ("RAY_COLOR_PREFIX", "0")):
        os.environ.setdefault(name, value)


def connect(address: str) -> None:
    """Join the Ray at ``address``, whose every node must run the driver's autocompress."""
    try:
        init_ray(address=address)
    except ConnectionError as exc:        # `auto` with no Ray here, or not a Ray at HOST:PORT
        raise AutocompressError(f"cannot join a Ray at {address!r} ({exc})", loc="--address",
                                hint="start one with `ray start --head`, or pass HOST:PORT; "
                                     "leave --address out to start a local Ray") from None
    try:
        check_nodes()
    except BaseException:
        shutdown_ray()
        raise


def check_nodes(timeout_s: float = NODE_CHECK_S) -> None:
    """Stop before any set-up when a node of the joined Ray runs another autocompress than
    the driver: its sources (sha256 of the package's ``.py`` files) differ. The search
    context did not unpickle there and every trial sent there failed at once; another
    version that still unpickled would score differently. Nodes that do not answer within
    ``timeout_s`` are left to the trials (a node that cannot set up the search stops it)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def sources() -> tuple[str, str]:        # pickled by value: runs on any version
        import hashlib
        import importlib.util
        from pathlib import Path

        spec = importlib.util.find_spec("autocompress")
        if spec is None or not spec.submodule_search_locations:
            return "no autocompress", ""
        root = Path(next(iter(spec.submodule_search_locations)))
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes())
        return str(root), digest.hexdigest()

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    ask = ray.remote(num_cpus=0)(sources)
    refs = [ask.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        n["NodeID"], soft=False)).remote() for n in nodes]
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    mine = sources()
    for node, ref in zip(nodes, refs, strict=True):
        try:                      # a node that is slow or fails: its trials will tell
            where, digest = ray.get(ref) if ref in done else (None, mine[1])
        except Exception:
            continue
        if digest != mine[1]:
            raise AutocompressError(
                f"the Ray node at {node.get('NodeManagerAddress')} runs another autocompress "
                f"({where}) than this driver ({mine[0]}): their sources differ",
                loc="--address", hint="install the driver's autocompress (the same version or "
                "commit) on every node, then restart its `ray start`")


def cluster_cpu_note(threads: int) -> str | None:
    """A warning when no live node of the joined Ray has ``threads`` CPUs: every trial asks
    for that many on one node, so Tune waits for such a node, silently, forever on a fixed
    cluster (nodes started with ``--num-cpus 1``, ``search.threads: 2``); an autoscaling
    cluster may add one."""
    import ray

    cpus = [float((n.get("Resources") or {}).get("CPU", 0.0)) for n in ray.nodes()
            if n.get("Alive")]
    most = int(max(cpus, default=0.0))
    if most >= threads:
        return None
    return (f"no node of this Ray cluster has {threads} CPUs (the most: {most}), and each "
            f"trial asks for search.threads = {threads} on one node: trials wait until such a "
            f"node joins (an autoscaling cluster may add one); else stop and run with --set "
            f"search.threads={max(1, most)}")
