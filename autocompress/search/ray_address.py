"""Checking ``--address`` before any set-up, so that a wrong one stops the command at once with
exit 2 and one line (``ray.init`` retried for 20 s to minutes, printing a C++ warning every
second). The address wanted is the GCS's, the one ``ray start --head`` printed (``HOST:6379``
unless it was given ``--port``). The usual slips: a host or port where nothing listens; the
dashboard's port (8265), a web server; another port of a Ray node, its raylet's (node manager)
or object manager's, gRPC servers without the GCS's services. ray is imported here only in a
child process (:func:`serves_gcs`)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from autocompress.errors import AutocompressError

PROBE_S = 5.0                  # a Ray head that does not accept a connection in this is absent
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
HTTP2_SETTINGS = 4             # frame type of a gRPC server's first reply
REPLY_S = 2.0                  # a server silent this long is given the benefit of the doubt
GCS_PROBE_S = 10.0             # the GCS question (0.4 s here, mostly importing Ray); past it,
                               # ray.init decides
UNIMPLEMENTED = 12             # gRPC status: the server has no such service
NOT_GCS = 3                    # the child's exit code for it
DASHBOARD_PORT = 8265
GCS_HINT = ("pass the GCS address `ray start --head` printed in its `ray start "
            "--address='HOST:PORT'` line: HOST:6379 unless the head was given --port")
_ASK_GCS = f"""
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1])
except Exception as exc:
    sys.exit({NOT_GCS} if getattr(exc, "rpc_code", None) == {UNIMPLEMENTED} else 0)
"""


def check_address(address: str) -> None:
    """Fail fast, before any set-up, on an ``--address`` no Ray answers at, or one where
    something other than a Ray head's GCS answers. ``auto`` is checked only through
    ``RAY_ADDRESS``; without it Ray looks for a head started on this machine, and
    ``ray_cluster.connect`` reports a miss. A Ray Client address (``ray://``) is only
    checked to answer gRPC."""
    target = os.environ.get("RAY_ADDRESS", "") if address == "auto" else address
    if not target:
        return
    host, sep, port = target.removeprefix("ray://").rpartition(":")
    if not (sep and host and port.isdigit()):
        raise AutocompressError(f"expected HOST:PORT or auto, got {target!r}", loc="--address",
                                hint=f"{GCS_HINT}, e.g. 10.0.0.5:6379")
    loc = "--address" if address != "auto" else "RAY_ADDRESS"
    try:
        reply = _http2_reply(host.removeprefix("[").removesuffix("]"), int(port))   # IPv6
    except OSError as exc:
        raise AutocompressError(f"no Ray answers at {target} ({exc.strerror or exc})", loc=loc,
                                hint="start the head there with `ray start --head --port "
                                     f"{port}`, or {GCS_HINT}") from None
    dashboard = "; 8265 is the dashboard's port" if int(port) == DASHBOARD_PORT else ""
    if reply is not None and not (len(reply) >= 4 and reply[3] == HTTP2_SETTINGS):
        said = (reply[:24].decode("ascii", "replace").splitlines() or [""])[0].strip()
        raise AutocompressError(
            f"{target} answers, but not as a Ray head (it replied {said or 'nothing'!r} to "
            "gRPC)", loc=loc,
            hint=GCS_HINT + dashboard)
    if reply and not target.startswith("ray://") and not serves_gcs(target):
        raise AutocompressError(
            f"{target} answers gRPC, but not as a Ray head's GCS (it may be another port of a "
            "Ray node: its raylet's or object manager's)", loc=loc, hint=GCS_HINT)


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


def serves_gcs(target: str) -> bool:
    """False when the gRPC server at ``target`` has no GCS service (it answers Ray's own GCS
    client UNIMPLEMENTED: a raylet, an object manager, another gRPC server); True when it
    answers as a GCS, and when that is not known within GCS_PROBE_S (``ray.init`` decides
    then). Asked in a child process: Ray's client logs to stderr and waits on its own
    schedule (a connect timeout of 2 s instead of 20: one try)."""
    env = {**os.environ, "RAY_py_gcs_connect_timeout_s": "2"}
    try:
        done = subprocess.run([sys.executable, "-c", _ASK_GCS, target], env=env,
                              capture_output=True, timeout=GCS_PROBE_S, check=False)
    except subprocess.TimeoutExpired:
        return True
    return done.returncode != NOT_GCS
