"""A wrong ``--address`` is a user mistake: exit 2 with a message naming it, before any set-up
(ray.init alone would retry for minutes on an address nothing answers at)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from autocompress.errors import AutocompressError
from autocompress.search.ray_address import PROBE_S, check_address

from ..conftest import ROOT, TINY, write_config


def closed_port() -> int:
    with socket.socket() as s:           # bound, never listening, then closed: refuses
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_not_host_port_is_rejected():
    with pytest.raises(AutocompressError, match="expected HOST:PORT or auto") as exc:
        check_address("headnode")
    assert exc.value.loc == "--address"


def test_nothing_listening_fails_fast():
    port = closed_port()
    start = time.monotonic()
    with pytest.raises(AutocompressError, match=f"no Ray answers at 127.0.0.1:{port}") as exc:
        check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - start < PROBE_S
    assert exc.value.loc == "--address" and f"--port {port}" in exc.value.hint


def test_a_listening_head_passes():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")
        check_address(f"ray://127.0.0.1:{server.getsockname()[1]}")


def test_auto_is_checked_through_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    check_address("auto")                 # Ray's own lookup decides (see connect)
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{closed_port()}")
    with pytest.raises(AutocompressError, match="no Ray answers") as exc:
        check_address("auto")
    assert exc.value.loc == "RAY_ADDRESS"


def test_cli_exits_2_before_the_run_dir_is_made(tmp_path):
    cfg = write_config(tmp_path, TINY)
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "autocompress.cli", "search", str(cfg),
                          "--run-dir", str(run), "--backend", "ray",
                          "--address", f"127.0.0.1:{closed_port()}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2, res.stderr[-2000:]
    assert "error: --address: no Ray answers at 127.0.0.1:" in res.stderr
    assert "Traceback" not in res.stderr
    assert not run.exists()              # no teacher trained, nothing to clean up


def test_a_failed_join_is_a_user_error(monkeypatch):
    import ray

    from autocompress.search.ray_cluster import connect

    def refuse(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(AutocompressError, match="cannot join a Ray at 'auto'") as exc:
        connect("auto")
    assert exc.value.loc == "--address" and "ray start --head" in exc.value.hint


def serve_once(reply: bytes) -> tuple[socket.socket, int]:
    """A listening socket that answers its first connection with ``reply`` (then hangs up)."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            conn.sendall(reply)

    threading.Thread(target=answer, daemon=True).start()
    return server, server.getsockname()[1]


def test_a_port_that_is_not_a_ray_head_fails_fast():
    """The dashboard's port (8265) instead of the head's is the usual slip: a web server
    answers there, and ray.init would retry for about 20 s before giving up."""
    server, port = serve_once(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    with server:
        start = time.monotonic()
        with pytest.raises(AutocompressError, match="answers, but not as a Ray head") as exc:
            check_address(f"127.0.0.1:{port}")
    assert time.monotonic() - start < PROBE_S
    assert "'HTTP/1.1 400 Bad Request'" in str(exc.value) and "HOST:6379" in exc.value.hint


def test_a_grpc_server_passes():
    server, port = serve_once(bytes([0, 0, 0x18, 4, 0, 0, 0, 0, 0]))   # a SETTINGS frame
    with server:
        check_address(f"127.0.0.1:{port}")


def test_an_ipv6_address_is_probed_without_its_brackets():
    """'[::1]:6391' was refused ("Name or service not known"); Ray itself accepts it."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with socket.socket(socket.AF_INET6) as server:
        try:
            server.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        server.listen()
        check_address(f"[::1]:{server.getsockname()[1]}")


def test_a_cluster_without_a_node_big_enough_for_a_trial_is_named(monkeypatch):
    """Nodes of 1 CPU and search.threads 2: Tune waited for such a node, silently."""
    import ray

    from autocompress.search.ray_cluster import cluster_cpu_note

    nodes = [{"Alive": True, "Resources": {"CPU": 1.0}},
             {"Alive": False, "Resources": {"CPU": 8.0}}]              # a dead node
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    note = cluster_cpu_note(2)
    assert note and "has 2 CPUs (the most: 1)" in note and "search.threads=1" in note
    assert cluster_cpu_note(1) is None


@pytest.mark.slow
def test_another_port_of_a_ray_node_fails_fast_and_the_gcs_passes(tmp_path):
    """A node's raylet (node manager) and object manager ports are gRPC servers too: they
    passed the gRPC check, and ray.init then retried for 20 s, printing a line a second."""
    import ray

    from autocompress.search.ray_cluster import LocalRay

    local = LocalRay(tmp_path, 1)
    try:
        local.wait()
        gcs = ray.get_runtime_context().gcs_address
        node = next(n for n in ray.nodes() if n["Alive"])
        check_address(gcs)
        for port in (node["NodeManagerPort"], node["ObjectManagerPort"]):
            start = time.monotonic()
            with pytest.raises(AutocompressError, match="not as a Ray head's GCS") as exc:
                check_address(f"{node['NodeManagerAddress']}:{port}")
            assert time.monotonic() - start < PROBE_S + 5
            assert exc.value.loc == "--address" and "HOST:6379" in exc.value.hint
    finally:
        local.stop()


@pytest.mark.slow
def test_a_node_with_another_autocompress_is_refused_and_the_same_one_passes(tmp_path,
                                                                             monkeypatch):
    """A node whose autocompress differs from the driver's: the search context did not
    unpickle there and every trial sent there was recorded failed at once (exit 0, no front)."""
    import shutil

    from autocompress.search.ray_cluster import LocalRay, check_nodes

    other = tmp_path / "other"
    shutil.copytree(ROOT / "autocompress", other / "autocompress",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "autocompress" / "graph.py", "a") as fh:
        fh.write("# edited on this node\n")
    for path, fails in ((other, True), (ROOT, False)):
        monkeypatch.setenv("PYTHONPATH", str(path))     # what the node's workers import
        run = tmp_path / f"run-{path.name}"
        run.mkdir()
        local = LocalRay(run, 1)
        try:
            local.wait()
            if fails:
                with pytest.raises(AutocompressError, match="runs another autocompress") as exc:
                    check_nodes()
                assert str(other) in str(exc.value) and exc.value.loc == "--address"
            else:
                check_nodes()
        finally:
            local.stop()
