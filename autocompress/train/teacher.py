"""Teacher: trained once per run, cached in the run dir by content hash (with its logits);
or your own trained model (``teacher.model: module:callable``), whose train-set logits are
cached the same way, keyed by its weights."""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from autocompress.compress.checkpoint import write_durable
from autocompress.data import DataBundle
from autocompress.errors import ModelError, RunDirError, load_problem, raised
from autocompress.imports import load_callable
from autocompress.models.teacher import TeacherCNN
from autocompress.stats import binomial_se
from autocompress.train.fit import TrainSettings, accuracy, fit, predict


@dataclass(frozen=True)
class Teacher:
    model: nn.Module
    train_logits: Tensor
    val_accuracy: float
    key: str


def get_teacher(run_dir: Path, data: DataBundle, *, widths: tuple[int, ...],
                settings: TrainSettings, seed: int, own: UserTeacher | None = None) -> Teacher:
    """Load the cached teacher for this data/recipe/seed, or train and cache it. The key
    hashes the train split's bytes in order (its cached logits are indexed by position: a
    reordered or relabelled split must not reuse them) and every training setting. ``own``:
    the user's trained teacher instead (built on every call; its logits cached by its
    weights' hash)."""
    train = hashlib.sha256()
    for tensor in (data.train.x, data.train.y):
        train.update(memoryview(tensor.detach().contiguous().cpu().numpy()))   # no copy
    torch.manual_seed(seed)
    model = TeacherCNN(data.input_shape[0], data.num_classes, widths) if own is None \
        else own.build(data)
    recipe: dict[str, object] = {"widths": list(widths), "settings": _recipe(settings),
                                 "seed": seed} if own is None else {
        "model": own.spec, "weights": _weights_hash(model)}
    key = hashlib.sha256(json.dumps({
        "data": data.name, "shape": data.input_shape, "classes": data.num_classes,
        "train": train.hexdigest(), **recipe}, sort_keys=True).encode()).hexdigest()[:12]
    path = run_dir / f"teacher-{key}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            if own is None:
                model.load_state_dict(blob["state_dict"])
            logits = blob["train_logits"]
        except Exception as exc:        # truncated, foreign or crafted: never unpickled
            raise RunDirError(f"the cached teacher cannot be read ({load_problem(exc)})",
                              loc=str(path), hint="delete it: the search trains the teacher "
                              "again (same data, recipe and seed)" if own is None else
                              "delete it: the search computes its logits again") from None
    else:
        if own is None:
            fit(model, data.train, settings, seed=seed)
        logits = predict(model, data.train, device=settings.device)
        if own is not None and not bool(torch.isfinite(logits).all()):   # NaN weights, say:
            bad = int((~torch.isfinite(logits)).any(1).sum())     # every trial's loss would be
            raise ModelError(f"the teacher's logits are not finite (NaN or inf) on {bad} of "
                             f"{len(logits)} training samples", loc=own.loc,  # NaN, all failed
                             hint="check the weights load_teacher loads and the model's "
                             "forward on the training data")
        buf = io.BytesIO()     # not to a path: a full disk is then an OSError, not torch's
        torch.save({"train_logits": logits} if own else
                   {"state_dict": model.state_dict(), "train_logits": logits}, buf)
        write_durable(path, buf.getvalue())
    model.eval()
    return Teacher(model=model, train_logits=logits, key=key,
                   val_accuracy=accuracy(model, data.val, device=settings.device))


def _recipe(settings: TrainSettings) -> dict[str, object]:
    """The training settings that make a teacher: not where it trains (a cache made on a GPU
    serves a resume on a CPU), and the keys of caches made before ``device`` and ``augment``
    stay the same."""
    out = asdict(settings)
    out.pop("device")
    if not settings.augment.on:    # off: the key of a cache made before augmentation existed
        out.pop("augment")
    return out


@dataclass(frozen=True)
class UserTeacher:
    """``teacher.model``: ``load_teacher(input_shape, num_classes) -> nn.Module``, trained
    (it loads its own weights: your code, trusted as a config's ``model.builder`` is)."""

    spec: str
    base_dir: Path | None = None
    loc: str = "teacher.model"

    def build(self, data: DataBundle) -> nn.Module:
        fn = load_callable(self.spec, loc=self.loc, base_dir=self.base_dir)
        args = (tuple(data.input_shape), data.num_classes)
        try:
            model = fn(*args)
        except Exception as exc:          # the user's code failed: say where, one line
            raise ModelError(f"{self.spec}{args} {raised(exc)}",
                             loc=self.loc) from exc
        if not isinstance(model, nn.Module):
            raise ModelError(f"{self.spec} returned {type(model).__name__}, expected a "
                             "torch.nn.Module", loc=self.loc, hint="signature: "
                             "load_teacher(input_shape, num_classes) -> trained nn.Module")
        try:
            model = model.cpu()        # a model returned on the GPU too: train.device moves it
            with torch.no_grad():
                out = model.eval()(data.val.x[:2])
        except Exception as exc:
            raise ModelError(f"the teacher raised {type(exc).__name__} on two validation "
                             f"images: {exc}", loc=self.loc, hint="return a model that takes "
                             f"inputs of shape (N, {', '.join(map(str, args[0]))})") from exc
        if not (isinstance(out, Tensor) and out.dim() == 2 and out.shape[1] == data.num_classes):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ModelError(f"the teacher outputs {shape}, expected logits of shape (N, "
                             f"{data.num_classes})", loc=self.loc,
                             hint=logits_hint(out, data.num_classes,
                                              "return the model that outputs one logit per class"))
        if not bool(torch.isfinite(out).all()):  # NaN weights: every trial's loss is NaN
            raise ModelError("the teacher's logits on two validation images are not finite "
                             "(NaN or inf)", loc=self.loc, hint="check the weights "
                             "load_teacher loads (a checkpoint holding NaN, say)")
        if outputs_probabilities(out):       # distillation softens logits, not probabilities
            raise ModelError("the teacher outputs probabilities (each row sums to 1: a softmax "
                             "at the end), not logits", loc=self.loc,
                             hint="return the model without its final softmax")
        return model.requires_grad_(False)


def logits_hint(out: object, num_classes: int, default: str) -> str:
    """How to fix a model output that is not (N, num_classes) logits: a (N, K, 1, 1) map
    from a 1x1 conv head needs a flatten, a tuple or dict its logits picked out."""
    if isinstance(out, Tensor) and out.dim() > 2 and out.shape[1] == num_classes and \
            all(d == 1 for d in out.shape[2:]):
        return "flatten the output: end forward with torch.flatten(x, 1), or nn.Flatten()"
    if isinstance(out, (tuple, list, dict)):
        return "return the logits tensor alone (not a tuple, list or dict); wrap the model " \
               "if it must return more"
    return default


def outputs_probabilities(out: Tensor) -> bool:
    """Whether a model's output rows (N, K) look like a softmax's: non-negative, each
    summing to 1. Cross-entropy and distillation take logits.

    >>> outputs_probabilities(torch.tensor([[0.2, 0.8]])), outputs_probabilities(torch.ones(1, 2))
    (True, False)
    """
    return out.shape[1] > 1 and bool((out >= 0).all()) and torch.allclose(
        out.sum(1), torch.ones(len(out), dtype=out.dtype), atol=1e-4)


def _weights_hash(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if isinstance(tensor, Tensor):     # as bytes: numpy has no bfloat16
            digest.update(name.encode())
            digest.update(memoryview(tensor.detach().cpu().contiguous().reshape(-1)
                                     .view(torch.uint8).numpy()))
    return digest.hexdigest()


def weak_teacher_warning(teacher_accuracy: float, student_accuracies: list[float],
                         n_val: int, se: float = 2.0, *, own: bool = False) -> str | None:
    """A warning when the teacher is measurably less accurate than the median student
    (by ``se`` binomial standard errors on ``n_val`` validation samples): distillation then
    pulls students toward the teacher's mistakes. None when it is not, or with fewer than
    three students to compare.

    >>> weak_teacher_warning(0.75, [0.85, 0.87, 0.90], 270)[:41]
    'warning: the teacher (val accuracy 0.750)'
    >>> weak_teacher_warning(0.93, [0.85, 0.87, 0.90], 270) is None
    True
    """
    if len(student_accuracies) < 3 or n_val <= 0:
        return None
    ordered = sorted(student_accuracies)
    median = ordered[len(ordered) // 2]
    p = teacher_accuracy
    if p + se * binomial_se(p, n_val) >= median:
        return None
    return (f"warning: the teacher (val accuracy {p:.3f}) is below most students (median "
            f"{median:.3f}, best {ordered[-1]:.3f}), so distillation pulls them toward its "
            "mistakes: " + ("give a stronger teacher.model" if own else "train a stronger "
                            "teacher (more teacher.epochs, more teacher.widths layers)")
            + " or search a lower distill alpha")
