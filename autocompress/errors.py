"""Error hierarchy. Every user mistake is an :class:`AutocompressError`; the CLI prints
its message (no traceback) and exits 2. Anything else is a bug and exits 1."""
from __future__ import annotations

import difflib
import errno
import os
import pickle
import re
from collections.abc import Iterable
from pathlib import Path


class AutocompressError(Exception):
    """Base of every user-facing error. ``loc`` is ``file:line`` or a dotted field path."""

    def __init__(self, message: str, *, loc: str | None = None, hint: str | None = None) -> None:
        self.loc = loc
        self.hint = hint
        self.raw_message = message
        text = f"{loc}: {message}" if loc else message
        if hint:
            text = f"{text} ({hint})"
        super().__init__(text)


def one_line(exc: AutocompressError, prefix: str = "error") -> str:
    """How a user error is printed: one line, ``error: <loc>: <message> (<hint>)``."""
    return f"{prefix}: " + " ".join(str(exc).split("\n"))


class ConfigError(AutocompressError):
    """Bad search config (YAML syntax, unknown key, wrong type, value out of range)."""


class SpaceError(AutocompressError):
    """Bad search space (rule that matches no layer, empty choices, ...)."""


class ProfileError(AutocompressError):
    """Bad or unknown hardware profile, missing LUT entry with fallback disabled."""


class DataError(AutocompressError):
    """Bad dataset or user data callable."""


class ModelError(AutocompressError):
    """Bad model callable or a model the tools cannot inspect."""


class RunDirError(AutocompressError):
    """Run directory problems: exists without --resume, missing, corrupted."""


class ExportError(AutocompressError):
    """Export problems: unknown or infeasible trial, budget nothing meets."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return a ``did you mean 'x'?`` hint for the closest choice, or None."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
ANSI_CODE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")     # a terminal's colour/cursor code


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (Ray colours its exceptions' text).

    >>> strip_ansi("\x1b[36mray::trial()\x1b[39m (pid=7)")
    'ray::trial() (pid=7)'
    """
    return ANSI_CODE.sub("", text)


def is_disk_full(exc: BaseException) -> bool:
    """A full disk or quota: no candidate's fault (every later trial would fail the same),
    so the search stops with one line and the ``--resume`` command (not a bug, not a
    failed trial). ``BrokenPipeError`` and other OSErrors are not."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def load_problem(exc: BaseException) -> str:
    """Why torch.load failed, without PyTorch's advice to retry with ``weights_only=False``
    (that runs arbitrary code from the file: unsafe for a file that is not what it should be)."""
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        # keep the unpickler's first sentence: what it met (its advice follows)
        found = re.search(r"WeightsUnpickler error:\s*(.*?)(?:\.\s|\n\s*\n|$)", text, re.S)
        text = found.group(1) if found else ""
    text = " ".join(text.split())
    if len(text) > 320:           # a shape mismatch names both shapes within this
        text = text[:320].rsplit(" ", 1)[0] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def raised(exc: BaseException) -> str:
    """``raised ValueError: boom (mydata.py:12 in make_data)``: what your code raised and
    the innermost line of it that ran (outside this package and installed libraries), so a
    one-line error still says where to look.

    >>> try:
    ...     int("x")
    ... except ValueError as e:
    ...     raised(e).startswith("raised ValueError: invalid literal")
    True
    """
    return f"raised {type(exc).__name__}: {exc}{user_frame(exc)}"


def user_frame(exc: BaseException) -> str:
    """`` (mynets.py:12 in forward)``: the innermost line of the user's code (outside this
    package, installed libraries and generated code) that ``exc`` passed through, or ''."""
    import sysconfig
    import traceback

    skip = tuple(os.path.join(p, "") for p in (str(Path(__file__).parent), *{
        sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(skip) and not f.filename.startswith("<")
              and not {"site-packages", "dist-packages"} & set(Path(f.filename).parts)]
    return f" ({frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
