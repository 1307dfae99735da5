"""Getting a Ray for the Ray backend: a local one with its session files in the run dir
(and the leftovers of a killed run's Ray stopped), or a running one joined at ``--address``,
checked first so that a wrong address fails at once; ``ray.init`` keeps the caller's SIGTERM
handler. A local Ray starts in a background thread (:class:`LocalRay`) while the driver sets
up. ray is imported inside the functions only."""
from __future__ import annotations

import logging
import os
import socket
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

PROBE_S = 5.0                  # a Ray head that does not accept a connection in this is absent
SOCKET_MAX = 107 - 64          # AF_UNIX path limit minus Ray's session_<time>/sockets/... part
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4             # frame type of a gRPC server's first reply
REPLY_S = 2.0                  # a server silent this long is given the benefit of the doubt
#: What a trial's actor imports, imported by each of a local Ray's worker processes as Ray
#: starts it (Ray's ``preload_python_modules``). The raylet starts one worker per CPU at once,
#: during the driver's set-up, and Tune's actors take those (see :func:`tune_on_prestarted`),
#: so an actor no longer pays about 2 s here (torch 1.1 s, Ray Tune 1.0 s) after the set-up
#: before its first trial. (A running Ray gains nothing from it: it starts a job's workers
#: when the job asks.)
PRELOAD = ("torch", "ray.tune", "autocompress.search.objective", "autocompress.search.setup",
           "autocompress.search.ray_trial")
TUNE_ENV = ("PL_DISABLE_FORK", "1")     # what Tune's actors' runtime env sets


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


def check_address(address: str) -> None:
    """Fail fast, before any set-up, on an ``--address`` no Ray answers at, or one where
    something other than a Ray head answers, e.g. the dashboard's port (``ray.init`` would
    retry for 20 s to minutes). ``auto`` is checked only through ``RAY_ADDRESS``; without it
    Ray looks for a head started on this machine, and :func:`connect` reports a miss."""
    target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
    if not target:
        return
    host, sep, port = target.removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        raise AutocompressError(f"expected HOST:PORT or auto, got {target!r}", loc="--address",
                                hint="pass the address `ray start --head` printed, e.g. "
                                     "10.0.0.5:6379")
    loc = "--address" if address != "auto" else "RAY_ADDRESS"
    try:
        reply = _http2_reply(host.removeprefix("[").removesuffix("]"), int(port))   # IPv6
    except OSError as exc:
        raise AutocompressError(f"no Ray answers at {target} ({exc.strerror or exc})", loc=loc,
                                hint="start the head there with `ray start --head --port "
                                     f"{port}`, or pass the address it printed") from None
    if reply is not None and not (len(reply) >= 4 and reply[3] == HTTP2_SETTINGS):
        said = reply[:24].decode("ascii", "replace").split("\r")[0].strip() or "nothing"
        raise AutocompressError(
            f"{target} answers, but not as a Ray head (it replied {said!r} to gRPC)", loc=loc,
            hint="pass the port `ray start --head` printed (6379 unless --port was given); "
                 "8265 is the dashboard's, not the head's")


def _http2_reply(host: str, port: int) -> bytes | None:
    """The first bytes a server at ``host:port`` sends back to an HTTP/2 connection preface
    (a Ray head's GCS, a gRPC server, answers with a SETTINGS frame at once; a web server,
    the dashboard or SSH with something else; b"" when it hangs up), or None when it stays
    silent for REPLY_S. Raises OSError when nothing accepts the connection."""
    with socket.create_connection((host, port), timeout=PROBE_S) as conn:
        conn.settimeout(REPLY_S)
        try:
            conn.sendall(HTTP2_PREFACE)
            return conn.recv(64)
        except TimeoutError:
            return None
        except ConnectionError:
            return b""


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
    resume). Without one, Ray's handler stays. Outside the main thread Ray installs none."""
    import signal

    import ray

    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    quiet = _NotMainThread()
    logging.getLogger("ray._private.worker").addFilter(quiet)
    try:
        ray.init(**kwargs, **_ray_options())
    finally:
        logging.getLogger("ray._private.worker").removeFilter(quiet)
    if callable(handler):             # a Python handler (the CLI's); else Ray's stays
        signal.signal(signal.SIGTERM, handler)


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


def connect(address: str) -> None:
    try:
        init_ray(address=address)
    except ConnectionError as exc:        # `auto` with no Ray here, or not a Ray at HOST:PORT
        raise AutocompressError(f"cannot join a Ray at {address!r} ({exc})", loc="--address",
                                hint="start one with `ray start --head`, or pass HOST:PORT; "
                                     "leave --address out to start a local Ray") from None


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
