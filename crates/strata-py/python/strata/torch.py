"""Capture the activations of a PyTorch model into a strata activation store.

``strata.torch`` hooks the named submodules of any :class:`torch.nn.Module`, runs the model
over a dataset batch by batch and streams each layer's outputs into an activation store
(Arrow IPC ``.arrow`` or Parquet ``.parquet``), the format that ``strata cka`` and
``strata layers`` read. Only a batch or two are held in memory.

>>> import strata.torch
>>> strata.torch.capture(model, loader, "acts.arrow", ["layer*"], pool="mean")  # doctest: +SKIP
PosixPath('acts.arrow')
>>> res = strata.torch.compare(model_a, model_b, loader, pool="mean")  # doctest: +SKIP

This module needs PyTorch; importing it without PyTorch raises :class:`ImportError` (the rest
of strata works without it).

Layer selection
---------------
Layers are module names as given by ``model.named_modules()`` (``"layer1.0.conv1"``). They
become the column names of the store. ``layers`` takes exact names and :mod:`fnmatch` glob
patterns (``"layer*.conv?"``). By default every *leaf* module that runs in the forward pass
is captured, in the order the modules first run, where

* a leaf is a module without submodules;
* a module whose submodules never run as modules counts as a leaf (``nn.MultiheadAttention``,
  whose ``out_proj`` is used only through its weights); leaves that never run are skipped
  (their names are kept under ``"skipped"`` in the store's metadata);
* torch.ao quantization modules (QAT and fused modules such as ``ConvBnReLU2d``, quant stubs)
  are leaves, and their fake-quantizers and observers are never layers: the captured output of
  a QAT module is its fake-quantized output, as the next layer sees it.

Pooling
-------
``pool`` reduces the spatial or token axes of each output (after moving the batch axis first,
see ``batch_first``). The *feature axis* is kept and every other non-batch axis is reduced:

* rank 2 ``(B, D)``: nothing to reduce, all modes keep ``(B, D)``;
* rank 3 ``(B, T, D)`` (transformer-like): the feature axis is the last one, the token axis 1
  is reduced: ``(B, T, D) -> (B, D)``;
* rank >= 4 ``(B, C, H, W, ...)`` (convolutional): the feature axis is 1 (channels), all
  spatial axes are reduced: ``(B, C, H, W) -> (B, C)``.

Modes: ``"flatten"`` keeps everything (per-example shape ``output.shape[1:]``), ``"mean"`` and
``"max"`` average / take the maximum over the reduced axes, ``"cls"`` / ``"first"`` take index 0
along them (the first token of a sequence). Pass ``feature_dim`` to override the convention
(e.g. ``feature_dim=1`` for ``Conv1d`` outputs ``(B, C, L)``). ``pool``, ``output``,
``batch_first`` and ``feature_dim`` also take a dict ``{layer name: value}``.
"""

from __future__ import annotations

try:
    import torch
    from torch import nn
except ImportError as _e:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "strata.torch needs PyTorch (pip install torch); the rest of strata works without it"
    ) from _e

import contextlib
import fnmatch
import itertools
import os
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

import strata as _strata

__all__ = ["capture", "compare", "layer_names"]

PoolMode = str
"""One of ``"flatten"``, ``"mean"``, ``"max"``, ``"cls"``, ``"first"``."""
Selector = Union[int, str, Callable[[Any], Any], None]
"""Picks the tensor out of a module output that is a tuple, list, dict or object."""

POOL_MODES = ("flatten", "mean", "max", "cls", "first")
CALLS_MODES = ("last", "first", "error")

_FQ_TYPES: tuple[type, ...] = ()
_AO_STUB_TYPES: tuple[type, ...] = ()
try:  # torch.ao quantization bookkeeping modules: never layers themselves
    from torch.ao.quantization import DeQuantStub, FakeQuantizeBase, ObserverBase, QuantStub

    _FQ_TYPES = (FakeQuantizeBase, ObserverBase)
    _AO_STUB_TYPES = (QuantStub, DeQuantStub)
except Exception:  # pragma: no cover - very old or stripped-down torch
    pass


# ---------------------------------------------------------------------------------------------
# Layer selection
# ---------------------------------------------------------------------------------------------


def _is_bookkeeping(m: nn.Module) -> bool:
    """Fake-quantizers and observers: quantization state, never a layer."""
    return bool(_FQ_TYPES) and isinstance(m, _FQ_TYPES)


def _is_ao_module(m: nn.Module) -> bool:
    """QAT, fused and quantized modules of torch.ao, and quant stubs: layers as a whole."""
    if _AO_STUB_TYPES and isinstance(m, _AO_STUB_TYPES):
        return True
    return type(m).__module__.startswith("torch.ao.nn.")


def _candidates(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, structural leaf) for every module that may be a default layer."""
    out: list[tuple[str, nn.Module, bool]] = []

    def walk(prefix: str, m: nn.Module) -> None:
        kids = [(n, c) for n, c in m.named_children() if not _is_bookkeeping(c)]
        if prefix and (not kids or _is_ao_module(m)):
            out.append((prefix, m, True))
            return
        if prefix:
            out.append((prefix, m, False))
        for n, c in kids:
            walk(f"{prefix}.{n}" if prefix else n, c)

    walk("", model)
    # A module registered under two names is visited once (the first name).
    seen: set[int] = set()
    uniq = []
    for name, m, leaf in out:
        if id(m) not in seen:
            seen.add(id(m))
            uniq.append((name, m, leaf))
    return uniq


def layer_names(model: nn.Module, layers: str | Sequence[str] | None = None) -> list[str]:
    """The module names that ``layers`` selects, without running the model.

    Parameters
    ----------
    model : torch.nn.Module
        The model.
    layers : str or sequence of str, optional
        Exact module names or :mod:`fnmatch` patterns. ``None`` lists the structural leaves
        (modules without submodules, torch.ao quantization modules); :func:`capture` further
        keeps only those that run, and promotes a module whose submodules never run.

    Returns
    -------
    list of str
        Names in ``model.named_modules()`` order (exact names in the order given).
    """
    if layers is None:
        return [n for n, _, leaf in _candidates(model) if leaf]
    return [n for n, _, _ in _resolve(model, layers)]


def _resolve(model: nn.Module, layers: str | Sequence[str]) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, explicit) for a list of names / globs; explicit names must run."""
    if isinstance(layers, str):
        layers = [layers]
    named = {n: m for n, m in model.named_modules() if n and not _is_bookkeeping(m)}
    all_named = dict(model.named_modules())
    chosen: dict[str, tuple[nn.Module, bool]] = {}
    for pat in layers:
        if not isinstance(pat, str):
            raise TypeError(f"layer names must be strings, got {type(pat).__name__}")
        if pat in all_named and pat:
            chosen.setdefault(pat, (all_named[pat], True))
            continue
        if any(ch in pat for ch in "*?["):
            hits = [n for n in named if fnmatch.fnmatchcase(n, pat)]
            if not hits:
                raise _strata.StrataError(f"no module of the model matches the pattern {pat!r}")
            for n in hits:
                chosen.setdefault(n, (named[n], False))
            continue
        close = [n for n in named if pat in n][:5]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise _strata.StrataError(
            f"the model has no module named {pat!r} (names come from model.named_modules(), "
            f"e.g. {', '.join(list(named)[:5]) or 'none'}){hint}"
        )
    if not chosen:
        raise _strata.StrataError("no layers selected")
    # A module selected under two names would be hooked twice: keep the first name.
    seen: set[int] = set()
    out = []
    for n, (m, explicit) in chosen.items():
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append((n, m, explicit))
    return out


# ---------------------------------------------------------------------------------------------
# Output selection and pooling
# ---------------------------------------------------------------------------------------------


def _first_tensor(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, Mapping):
        items: Iterable[Any] = obj.values()
    elif isinstance(obj, (tuple, list)):
        items = obj
    elif hasattr(obj, "__dataclass_fields__"):
        items = (getattr(obj, f) for f in obj.__dataclass_fields__)
    else:
        return None
    for x in items:
        t = _first_tensor(x)
        if t is not None:
            return t
    return None


def _select(out: Any, sel: Selector, name: str) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    picked = out
    if sel is not None:
        try:
            if callable(sel) and not isinstance(sel, (int, str)):
                picked = sel(out)
            elif isinstance(out, Mapping):
                if sel in out:
                    picked = out[sel]
                elif isinstance(sel, int):
                    picked = list(out.values())[sel]
                else:
                    raise KeyError(sel)
            elif isinstance(sel, int):
                picked = out[sel]
            else:
                picked = getattr(out, sel)
        except (KeyError, IndexError, AttributeError, TypeError) as e:
            raise _strata.StrataError(
                f"layer {name!r}: output={sel!r} selects nothing in its output "
                f"({_describe(out)}): {e}"
            ) from None
    t = _first_tensor(picked)
    if t is None:
        raise _strata.StrataError(
            f"layer {name!r}: its output holds no tensor ({_describe(out)}); "
            "pass output= (an index, a key or a callable) to pick one, or choose another layer"
        )
    return t


def _describe(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return f"Tensor{tuple(out.shape)}"
    if isinstance(out, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in out.items()) + "}"
    if isinstance(out, (tuple, list)):
        inner = ", ".join(_describe(v) for v in out)
        return f"({inner})" if isinstance(out, tuple) else f"[{inner}]"
    return type(out).__name__


def _pool(
    t: torch.Tensor,
    mode: str,
    batch_first: bool,
    feature_dim: int | None,
    name: str,
    copy: bool = True,
) -> torch.Tensor:
    """One output -> a C-contiguous float32 CPU tensor of shape (B, ...).

    With ``copy=False`` the result may share memory with ``t`` (a float32 CPU output kept
    as it is); the caller then checks ``t``'s version counter for later in-place changes.
    """
    t = t.detach()
    if t.is_quantized:
        t = t.dequantize()
    if t.is_complex():
        raise _strata.StrataError(f"layer {name!r}: complex outputs cannot be stored")
    if t.dim() == 0:
        raise _strata.StrataError(
            f"layer {name!r} returned a scalar (shape ()): no batch axis to store per example"
        )
    if t.dim() == 3 and not batch_first:
        t = t.transpose(0, 1)
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if mode == "flatten" or t.dim() == 2:
        # A copy, so that in-place operations later in the forward pass (ReLU(inplace=True),
        # x += identity) cannot change what was captured (unless the caller checks).
        return t.to("cpu", torch.float32, copy=copy, memory_format=torch.contiguous_format)
    nd = t.dim()
    if feature_dim is None:
        fd = nd - 1 if nd == 3 else 1
    else:
        fd = feature_dim % nd
        if not -nd <= feature_dim < nd or fd == 0:
            raise _strata.StrataError(
                f"layer {name!r}: feature_dim={feature_dim} is not a non-batch axis of its "
                f"output of shape {tuple(t.shape)}"
            )
    axes = [a for a in range(1, t.dim()) if a != fd]
    if mode in ("cls", "first"):
        for a in reversed(axes):
            t = t.select(a, 0)
        return t.to("cpu", torch.float32, copy=copy, memory_format=torch.contiguous_format)
    t = t.float()
    t = t.mean(dim=axes) if mode == "mean" else t.amax(dim=axes)
    return t.to("cpu", torch.float32, memory_format=torch.contiguous_format)


def _per_layer(value: Any, name: str, default: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get(name, default)
    return value


# ---------------------------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------------------------


class _Hooks:
    """Forward hooks on one model's layers, collecting one batch at a time.

    Used as a context manager: entering puts the model in eval mode and freezes torch.ao
    observers; leaving removes every hook and restores the modes, also on an exception.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None,
        *,
        pool: PoolMode | Mapping[str, PoolMode],
        output: Selector | Mapping[str, Selector],
        batch_first: bool | Mapping[str, bool],
        feature_dim: int | None | Mapping[str, int | None],
        calls: str,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for p in pool.values() if isinstance(pool, Mapping) else [pool]:
            if p not in POOL_MODES:
                raise ValueError(f"pool must be one of {', '.join(POOL_MODES)}; got {p!r}")
        if calls not in CALLS_MODES:
            raise ValueError(f"calls must be one of {', '.join(CALLS_MODES)}; got {calls!r}")
        self.model = model
        self.default = layers is None
        if layers is None:
            self.targets = [(n, m, False) for n, m, _ in _candidates(model)]
            self.leaf = {n for n, _, leaf in _candidates(model) if leaf}
        else:
            self.targets = _resolve(model, layers)
            self.leaf = set()
        self.explicit_order = [n for n, _, e in self.targets]
        self.pool, self.output, self.batch_first = pool, output, batch_first
        self.feature_dim, self.calls = feature_dim, calls
        self.handles: list[Any] = []
        self.buf: dict[str, torch.Tensor] = {}
        # Outputs kept without a copy: (output tensor, its version when captured). A layer
        # whose output is changed in place later in the forward pass (ReLU(inplace=True) on
        # it, `x += identity`) is copied from then on; the first batch copies every layer.
        self.kept: dict[str, tuple[torch.Tensor, int]] = {}
        self.must_copy: set[str] = set()
        self.learned = False
        self.shared: list[tuple[str, torch.Tensor, int]] = []
        self._state_ptrs: set[int] = set()  # storages of parameters and buffers: always copied
        self.order: list[str] = []
        self.ncalls: dict[str, int] = {}
        self.active = False
        self.layers: list[str] | None = None  # fixed after the first batch
        self.skipped: list[str] = []
        self._modes: list[tuple[nn.Module, bool]] = []
        self._observers: list[tuple[torch.Tensor, torch.Tensor]] = []

    # -- context ------------------------------------------------------------------------------

    def __enter__(self) -> _Hooks:
        self._modes = [(m, m.training) for m in self.model.modules()]
        self._state_ptrs = {
            t.untyped_storage().data_ptr()
            for t in itertools.chain(self.model.parameters(), self.model.buffers())
        }
        try:
            self.model.eval()
            for m in self.model.modules():
                enabled = getattr(m, "observer_enabled", None)
                if _is_bookkeeping(m) and isinstance(enabled, torch.Tensor):
                    self._observers.append((enabled, enabled.clone()))
                    enabled.fill_(0)
            for name, mod, _ in self.targets:
                self.handles.append(mod.register_forward_hook(self._make_hook(name)))
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()
        for buf, saved in self._observers:
            buf.copy_(saved)
        self._observers.clear()
        if self._modes:
            self.model.train(self._modes[0][1])  # runs train() overrides
            for m, mode in self._modes:
                if m.training != mode:
                    m.training = mode
        self._modes.clear()
        self.buf.clear()

    # -- collection ---------------------------------------------------------------------------

    def _make_hook(self, name: str) -> Callable[..., None]:
        pool = _per_layer(self.pool, name, "flatten")
        sel = _per_layer(self.output, name, None)
        bf = _per_layer(self.batch_first, name, True)
        fd = _per_layer(self.feature_dim, name, None)
        buf, order, ncalls, calls = self.buf, self.order, self.ncalls, self.calls
        kept, must_copy = self.kept, self.must_copy

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if not self.active:
                return
            k = ncalls.get(name, 0)
            ncalls[name] = k + 1
            if k == 0:
                order.append(name)
            elif calls == "first":
                return
            elif calls == "error":
                raise _strata.StrataError(
                    f"module {name!r} ran more than once in one forward pass (a module reused "
                    "at several places); pass calls='first' or calls='last', or hook another module"
                )
            t = _select(out, sel, name)
            if t.is_inference() or t.is_quantized:
                buf[name] = _pool(t, pool, bf, fd, name)
                return
            copy = (
                not self.learned
                or name in must_copy
                or t.untyped_storage().data_ptr() in self._state_ptrs
            )
            r = _pool(t, pool, bf, fd, name, copy=copy)
            buf[name] = r
            # Watch the output for in-place changes: while learning (first batch), and when
            # the result may share its memory.
            if not self.learned or (
                not copy and r.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
            ):
                kept[name] = (t, t._version)
            else:
                kept.pop(name, None)

        return hook

    def forward(self, args: tuple, kwargs: dict) -> dict[str, np.ndarray]:
        """Run the model on one batch; the captured layers as (b, ...) float32 arrays."""
        while True:  # runs again only when must_copy grew, so at most once per layer
            self.buf.clear()
            self.kept.clear()
            self.order.clear()
            self.ncalls.clear()
            self.active = True
            try:
                self.model(*args, **kwargs)
            finally:
                self.active = False
            changed = {n for n, (t, v) in self.kept.items() if t._version != v}
            # What the writer must check again before writing (the next batch's forward pass
            # runs while this one is written).
            self.shared = [(n, t, v) for n, (t, v) in self.kept.items() if self.learned]
            self.kept.clear()
            if not self.learned:
                self.must_copy |= changed
                self.learned = True
                break
            if not changed:
                break
            # An output kept without a copy was changed in place after it was captured (the
            # model behaves differently from the first batch): run this batch again, copying.
            self.must_copy |= changed
        if self.layers is None:
            self._fix_layers()
        assert self.layers is not None
        arrays: dict[str, np.ndarray] = {}
        missing = [n for n in self.layers if n not in self.buf]
        if missing:
            raise _strata.StrataError(
                f"layer(s) {', '.join(map(repr, missing))} ran in the first batch but not in "
                "this one; every captured layer must run on every batch"
            )
        rows = None
        for n in self.layers:
            a = self.buf[n].numpy()
            if rows is None:
                rows, first = a.shape[0], n
            elif a.shape[0] != rows:
                raise _strata.StrataError(
                    f"layer {n!r} gave {a.shape[0]} rows but {first!r} gave {rows}: the first "
                    "axis of every output must be the batch axis (for (T, B, D) outputs of "
                    "sequence models pass batch_first=False)"
                )
            arrays[n] = a
        self.buf.clear()
        return arrays

    def _fix_layers(self) -> None:
        """After the first batch: which layers ran, in which order."""
        ran = set(self.order)
        if self.default:
            # Innermost modules that ran: structural leaves, or modules none of whose
            # (non-bookkeeping) descendants ran.
            names = [n for n, _, _ in self.targets]
            keep = []
            for n in self.order:
                if n in self.leaf:
                    keep.append(n)
                elif not any(o.startswith(n + ".") for o in ran):
                    keep.append(n)
            self.skipped = [n for n in names if n in self.leaf and n not in ran]
            # Non-layers (containers) were hooked only to find out what runs.
            for n in ran - set(keep):
                del self.buf[n]
            self.layers = keep
        else:
            explicit = {n for n, _, e in self.targets if e}
            never = [n for n in self.explicit_order if n in explicit and n not in ran]
            if never:
                raise _strata.StrataError(
                    f"module(s) {', '.join(map(repr, never))} did not run in the forward pass "
                    "(a container such as nn.ModuleList is never called itself, and some "
                    "modules use their submodules' weights directly), so there is nothing "
                    "to capture"
                )
            self.skipped = [n for n in self.explicit_order if n not in ran]
            # Exact names in the order given; pattern matches in the order they ran.
            pos = {n: i for i, n in enumerate(self.order)}
            self.layers = self._ordered(explicit, ran, pos)
        if not self.layers:
            raise _strata.StrataError("none of the selected modules ran in the forward pass")
        # Drop hooks of modules that are not layers (containers hooked for discovery).
        if self.default and len(self.layers) < len(self.handles):
            keep_set = set(self.layers)
            kept = []
            for (n, _, _), h in zip(self.targets, self.handles):
                if n in keep_set:
                    kept.append(h)
                else:
                    h.remove()
            self.handles = kept
            self.targets = [t for t in self.targets if t[0] in keep_set]

    def _ordered(self, explicit: set[str], ran: set[str], pos: dict[str, int]) -> list[str]:
        out: list[str] = []
        pending: list[str] = []  # a run of pattern matches, sorted by first call
        for n in self.explicit_order:
            if n not in ran:
                continue
            if n in explicit:
                out.extend(sorted(pending, key=pos.__getitem__))
                pending = []
                out.append(n)
            else:
                pending.append(n)
        out.extend(sorted(pending, key=pos.__getitem__))
        return out


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        # Asynchronous only towards an accelerator (a copy to the CPU must be complete).
        return obj.to(device, non_blocking=device.type != "cpu")
    if isinstance(obj, Mapping):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_to(v, device) for v in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to(v, device) for v in obj)
    return obj


def _split(batch: Any, input_key: Any) -> tuple[tuple, dict]:
    """A batch -> (positional args, keyword args) of the forward call."""
    if isinstance(batch, torch.Tensor):
        return (batch,), {}
    if isinstance(batch, Mapping):
        if input_key is None:
            return (), dict(batch)
        if input_key not in batch:
            raise _strata.StrataError(
                f"input_key={input_key!r} is not a key of the batch (keys: {list(batch)})"
            )
        return (batch[input_key],), {}
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise _strata.StrataError("an empty batch (an empty tuple or list)")
        return (batch[0 if input_key is None else input_key],), {}
    return (batch,), {}


def _batches(data: Any, max_batches: int | None) -> Iterable[Any]:
    if isinstance(data, torch.Tensor):
        raise TypeError(
            "data must be an iterable of batches (a DataLoader, a list of tensors, ...), "
            "not a single tensor: wrap it, e.g. [x] or x.split(256)"
        )
    if max_batches is None:
        return data
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    return itertools.islice(data, max_batches)


class _Progress:
    def __init__(self, enabled: bool, data: Any, max_batches: int | None, label: str) -> None:
        self.enabled = enabled
        self.label = label
        try:
            total: int | None = len(data)
        except TypeError:
            total = None
        if max_batches is not None:
            total = max_batches if total is None else min(total, max_batches)
        self.total = total
        self.t0 = time.perf_counter()
        self.last = 0.0

    def step(self, batches: int, rows: int, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not final and now - self.last < 0.2:
            return
        self.last = now
        of = f"/{self.total}" if self.total is not None else ""
        dt = now - self.t0
        rate = rows / dt if dt > 0 else 0.0
        sys.stderr.write(
            f"\r{self.label}: batch {batches}{of}, {rows} examples, {dt:.1f} s "
            f"({rate:.0f} examples/s)"
        )
        if final:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _run(
    hooks: Sequence[_Hooks],
    data: Any,
    *,
    device: str | torch.device | None,
    input_key: Any,
    max_batches: int | None,
    progress: _Progress,
    sink: Callable[[list[dict[str, np.ndarray]]], None],
) -> tuple[int, int]:
    """Feed every batch to every model; hand the captured arrays to ``sink``."""
    devices = [
        torch.device(device) if device is not None else _model_device(h.model) for h in hooks
    ]
    nb = rows = 0
    with torch.no_grad():
        for batch in _batches(data, max_batches):
            args, kwargs = _split(batch, input_key)
            per_model = []
            for h, dev in zip(hooks, devices):
                per_model.append(h.forward(_to(args, dev), _to(kwargs, dev)))
            b = [next(iter(a.values())).shape[0] for a in per_model]
            if len(set(b)) != 1:
                raise _strata.StrataError(f"the models gave different batch sizes: {b}")
            sink(per_model)
            nb += 1
            rows += b[0]
            progress.step(nb, rows)
    if nb == 0:
        raise _strata.StrataError("data yielded no batches")
    progress.step(nb, rows, final=True)
    return nb, rows


_STOP = object()


class _Background:
    """Writes batches on one worker thread while the next batch runs through the model.

    The store writer releases the GIL, so writing overlaps the forward pass. At most one batch
    waits in the queue. A failed write is raised in the caller at the next :meth:`put` or at
    :meth:`close`; leaving with an exception discards what is still queued.
    """

    def __init__(self, write: Callable[[Any], None]) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._cancel = False
        self._thread = threading.Thread(
            target=self._work, name="strata-capture-writer", daemon=True
        )
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is None and not self._cancel:
                try:
                    self._write(item)
                except BaseException as e:  # handed to the caller
                    self._error = e

    def put(self, item: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def __enter__(self) -> _Background:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._cancel = True
            if self._thread.is_alive():
                self._queue.put(_STOP)
                self._thread.join()


def _checked(hooks: _Hooks, arrays: dict[str, np.ndarray]) -> tuple:
    """A batch for the writer thread, with the outputs it holds without a copy."""
    return arrays, hooks.shared


def _write_checked(writer: Any, item: tuple) -> None:
    arrays, shared = item
    for name, t, version in shared:
        if t._version != version:
            raise _strata.StrataError(
                f"the output of layer {name!r} was changed in place after its batch ran (by the "
                "model's next forward pass: a module returning a tensor it keeps as state); "
                "capture it through output=lambda o: o.clone()"
            )
    writer.write(arrays)


def _meta(model: nn.Module, hooks: _Hooks, pool: Any, user: Mapping[str, Any] | None) -> dict:
    meta: dict[str, Any] = {
        "producer": "strata.torch.capture",
        "model": type(model).__qualname__,
        "torch": torch.__version__,
        "pool": pool if isinstance(pool, str) else dict(pool),
    }
    if hooks.skipped:
        meta["skipped"] = hooks.skipped
    if user:
        meta.update(user)
    return meta


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def capture(
    model: nn.Module,
    data: Iterable[Any],
    out: str | os.PathLike[str],
    layers: str | Sequence[str] | None = None,
    *,
    pool: PoolMode | Mapping[str, PoolMode] = "flatten",
    output: Selector | Mapping[str, Selector] = None,
    device: str | torch.device | None = None,
    input_key: Any = None,
    max_batches: int | None = None,
    meta: Mapping[str, Any] | None = None,
    progress: bool = False,
    batch_first: bool | Mapping[str, bool] = True,
    feature_dim: int | None | Mapping[str, int | None] = None,
    calls: str = "last",
) -> Path:
    """Capture the activations of ``model``'s layers over ``data`` into an activation store.

    The model runs under :func:`torch.no_grad` in eval mode, with torch.ao observers frozen
    (a QAT model's scales and zero points do not move). Each batch's layer outputs are converted
    to float32 on the CPU (bf16/f16 and quantized tensors included) and written to the store by
    a background thread while the next batch runs, so memory holds about two batches. Afterwards
    (also after an exception) every hook is removed and every module's training mode restored;
    on an exception the partial store is removed.

    Outputs are copied when captured only where needed: the first batch copies every layer and
    records which outputs the model later changes in place (``ReLU(inplace=True)``,
    ``x += identity``); those, outputs on an accelerator and outputs that are parameters or
    buffers are copied from then on, the others are written from the model's own tensors. A
    batch in which a kept output is changed in place after all is run again, copying it.

    Parameters
    ----------
    model : torch.nn.Module
        Any module. It is not moved; inputs are moved to ``device``.
    data : iterable
        A DataLoader or any iterable of batches (iterated once). A batch is a tensor (the
        input), a tuple or list whose first element is the input (``(inputs, targets)``), or a
        dict: ``batch[input_key]`` is the input, or with ``input_key=None`` the dict is passed
        as keyword arguments (``model(**batch)``).
    out : str or path-like
        The store to write, ``.arrow`` (Arrow IPC) or ``.parquet``. Replaced atomically.
    layers : str or sequence of str, optional
        Module names from ``model.named_modules()``, exact or :mod:`fnmatch` patterns. Exact
        names are stored in the order given, pattern matches in the order they run. An exact
        name that never runs is an error; pattern matches that never run are skipped. Default:
        every leaf module that runs (see the module docstring). The store's layer names are
        the module names.
    pool : {"flatten", "mean", "max", "cls", "first"} or dict, default "flatten"
        How to reduce spatial / token axes: ``"flatten"`` keeps the whole output (per-example
        shape ``output.shape[1:]``); ``"mean"``/``"max"`` reduce every axis after the batch
        axis except the feature axis (``(B, C, H, W) -> (B, C)``, ``(B, T, D) -> (B, D)``);
        ``"cls"``/``"first"`` take the first token (``(B, T, D) -> (B, D)``). The feature
        axis is the last one for rank-3 outputs (token sequences) and axis 1 for rank >= 4
        (channels); override with ``feature_dim``. A dict gives a mode per layer (default
        ``"flatten"`` for layers not in it).
    output : int, str, callable or dict, optional
        For modules whose output is a tuple, list, dict or object: which element to store (an
        index, a key or attribute name, or a callable ``output -> tensor``); a dict gives a
        selector per layer. Tensor outputs are stored as they are. Default: the first tensor
        found (depth first), an error if there is none.
    device : str or torch.device, optional
        Where inputs are moved. Default: the device of the model's first parameter (CPU for a
        model without any).
    input_key : int or str, optional
        Which element of a tuple/list/dict batch is the input (default: the first element of a
        tuple or list; a dict is passed as keyword arguments).
    max_batches : int, optional
        Stop after this many batches.
    meta : dict, optional
        Free JSON-serializable metadata recorded in the store (merged over what capture
        records itself: producer, model class, torch version, pool, skipped layers).
    progress : bool, default False
        Print a progress line to stderr.
    batch_first : bool or dict, default True
        Whether rank-3 outputs are ``(B, T, D)``. Pass ``False`` for sequence models that
        work in ``(T, B, D)`` (``nn.TransformerEncoder`` with ``batch_first=False``, RNNs
        without ``batch_first``): rank-3 outputs are then transposed to ``(B, T, D)`` before
        pooling and storing. A dict gives a value per layer (default ``True``).
    feature_dim : int or dict, optional
        The axis kept by ``"mean"``, ``"max"``, ``"cls"``/``"first"`` (an axis of the
        batch-first output), e.g. ``1`` for ``Conv1d`` outputs ``(B, C, L)``. Default: the last
        axis for rank 3, axis 1 for rank >= 4.
    calls : {"last", "first", "error"}, default "last"
        What to store for a module that runs several times in one forward pass (a reused
        activation module): its last output, its first, or raise an error.

    Returns
    -------
    pathlib.Path
        The path of the store.

    Raises
    ------
    strata.StrataError
        Unknown layer names, outputs without a tensor, shapes that change between batches,
        empty data, or a store that cannot be written.
    """
    out_path = Path(os.fspath(out))
    existed = out_path.exists()
    progress_line = _Progress(progress, data, max_batches, "strata.torch.capture")
    try:
        with _Hooks(
            model,
            layers,
            pool=pool,
            output=output,
            batch_first=batch_first,
            feature_dim=feature_dim,
            calls=calls,
        ) as hooks, contextlib.ExitStack() as stack:
            writer: list[_Background] = []
            shapes: dict[str, tuple[int, ...]] = {}

            def sink(per_model: list[dict[str, np.ndarray]]) -> None:
                arrays = per_model[0]
                if not writer:
                    shapes.update((n, tuple(a.shape[1:])) for n, a in arrays.items())
                    w = stack.enter_context(
                        _strata.StoreWriter(str(out_path), shapes, _meta(model, hooks, pool, meta))
                    )
                    bg = _Background(lambda item: _write_checked(w, item))
                    writer.append(stack.enter_context(bg))
                else:
                    _check_shapes(shapes, arrays, pool)
                writer[0].put(_checked(hooks, arrays))

            _run(
                [hooks],
                data,
                device=device,
                input_key=input_key,
                max_batches=max_batches,
                progress=progress_line,
                sink=sink,
            )
            writer[0].close()  # the last writes, and their errors
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                out_path.unlink()
        raise
    return out_path


def _check_shapes(
    shapes: Mapping[str, tuple[int, ...]], arrays: Mapping[str, np.ndarray], pool: Any
) -> None:
    for n, a in arrays.items():
        if tuple(a.shape[1:]) != shapes[n]:
            mode = _per_layer(pool, n, "flatten")
            hint = (
                " (with pool='flatten' every batch must give the same shape: variable-length "
                "sequences or image sizes need pool='mean', 'max' or 'cls')"
                if mode == "flatten"
                else ""
            )
            raise _strata.StrataError(
                f"layer {n!r} gave per-example shape {tuple(a.shape[1:])} but the first batch "
                f"gave {shapes[n]}{hint}"
            )


def compare(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Iterable[Any],
    layers_a: str | Sequence[str] | None = None,
    layers_b: str | Sequence[str] | None = None,
    *,
    pool: PoolMode | Mapping[str, PoolMode] = "flatten",
    kernel: str = "linear",
    batch_size: int | None = None,
    minibatch: bool = False,
    output: Selector | Mapping[str, Selector] = None,
    device: str | torch.device | None = None,
    input_key: Any = None,
    max_batches: int | None = None,
    batch_first: bool | Mapping[str, bool] = True,
    feature_dim: int | None | Mapping[str, int | None] = None,
    calls: str = "last",
    progress: bool = False,
    tmpdir: str | os.PathLike[str] | None = None,
    **cka_options: Any,
) -> Any:
    """CKA between the layers of two models on the same data, in one call.

    Both models run on every batch (``data`` is iterated once, so a shuffling DataLoader
    still feeds both the same examples). By default the activations go to two temporary
    stores (removed afterwards) and :func:`strata.cka_matrix` computes the CKA matrix over all
    examples; with ``minibatch=True`` or ``batch_size`` nothing is stored and
    :class:`strata.MinibatchCKA` accumulates minibatch CKA (Nguyen et al. 2021) batch by
    batch, in bounded memory.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        The models (may be the same object, e.g. to compare a model's layers with each other).
    data : iterable
        Batches, as for :func:`capture`.
    layers_a, layers_b : str or sequence of str, optional
        Layers of each model, as for :func:`capture` (default: every leaf that runs).
    pool, output, device, input_key, max_batches, batch_first, feature_dim, calls, progress
        As for :func:`capture`, applied to both models.
    kernel : str, default "linear"
        CKA kernel, passed to :func:`strata.cka_matrix` / :class:`strata.MinibatchCKA`.
    batch_size : int, optional
        Minibatch CKA with this many examples per minibatch (the examples regrouped in order,
        whatever the data's batch size; the last minibatch may be shorter, and is skipped
        under 4 examples), nothing stored: what ``strata cka A B --batch-size N`` computes on
        the two models' stores.
    minibatch : bool, default False
        Minibatch CKA with the data's own batches as the minibatches, nothing stored.
    tmpdir : path-like, optional
        Where the temporary stores go (default: the system temporary directory).
    **cka_options
        Further keyword arguments of :func:`strata.cka_matrix` (``threshold``, ``estimator``)
        or, for minibatch CKA, of :class:`strata.MinibatchCKA` (``threshold``).

    Returns
    -------
    strata.SimilarityResult
        ``values[i, j]`` = CKA between ``layers_a[i]`` of model A and ``layers_b[j]`` of
        model B.
    """
    if batch_size is not None and batch_size < 4:
        raise ValueError(f"batch_size must be at least 4 (minibatch CKA), got {batch_size}")
    opts = dict(
        pool=pool, output=output, batch_first=batch_first, feature_dim=feature_dim, calls=calls
    )
    # The same model with the same selection runs once per batch; otherwise each side has its
    # own hooks (a model given twice with different layers runs twice per batch).
    same = model_a is model_b and layers_a == layers_b
    specs = [(model_a, layers_a)] if same else [(model_a, layers_a), (model_b, layers_b)]
    line = _Progress(progress, data, max_batches, "strata.torch.compare")
    run = dict(device=device, input_key=input_key, max_batches=max_batches, progress=line)

    with contextlib.ExitStack() as stack:
        hooks = [stack.enter_context(_Hooks(m, sel, **opts)) for m, sel in specs]
        if minibatch or batch_size is not None:
            acc = _strata.MinibatchCKA(kernel=kernel, **cka_options)
            chunks = _Rechunk(batch_size)

            def mb_sink(per_model: list[dict[str, np.ndarray]]) -> None:
                for a, b in chunks.push(per_model[0], per_model[-1]):
                    acc.update(a, b)

            _run(hooks, data, sink=mb_sink, **run)
            for a, b in chunks.flush():
                acc.update(a, b)
            return acc.result()

        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="strata-compare-", dir=tmpdir))
        paths = [Path(tmp) / f"model_{i}.arrow" for i in range(len(hooks))]
        writers: list[Any] = []
        shapes: list[dict[str, tuple[int, ...]]] = []
        # Writers close normally after the last batch, or are aborted by an exception.
        wstack = stack.enter_context(contextlib.ExitStack())

        def write_all(items: list[tuple[Any, tuple]]) -> None:
            for w, item in items:
                _write_checked(w, item)

        def sink(per_model: list[dict[str, np.ndarray]]) -> None:
            if not writers:
                for h, p, arrays in zip(hooks, paths, per_model):
                    s = {n: tuple(a.shape[1:]) for n, a in arrays.items()}
                    shapes.append(s)
                    w = _strata.StoreWriter(str(p), s, _meta(h.model, h, pool, None))
                    writers.append(wstack.enter_context(w))
                writers.append(wstack.enter_context(_Background(write_all)))
            else:
                for s, arrays in zip(shapes, per_model):
                    _check_shapes(s, arrays, pool)
            *stores, bg = writers
            bg.put([(w, _checked(h, a)) for w, h, a in zip(stores, hooks, per_model)])

        _run(hooks, data, sink=sink, **run)
        writers[-1].close()
        wstack.close()
        # Hooks are removed (and training modes restored) before the CKA is computed.
        for h in reversed(hooks):
            h.__exit__(None, None, None)
        stores = [_strata.open(str(p)) for p in paths]
        acts_a = {n: stores[0].read(n) for n in stores[0].layers}
        acts_b = {n: stores[-1].read(n) for n in stores[-1].layers}
        return _strata.cka_matrix(acts_a, None if same else acts_b, kernel=kernel, **cka_options)


class _Rechunk:
    """Regroups batches of rows into minibatches of exactly ``size`` rows (the last one may be
    shorter), as ``strata cka --batch-size`` does; ``size=None`` passes batches through."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        self.pending: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
        self.rows = 0

    def push(
        self, a: dict[str, np.ndarray], b: dict[str, np.ndarray]
    ) -> Iterable[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        if self.size is None:
            yield a, b
            return
        self.pending.append((a, b))
        self.rows += next(iter(a.values())).shape[0]
        while self.rows >= self.size:
            a_all, b_all = self._joined()
            yield _rows(a_all, 0, self.size), _rows(b_all, 0, self.size)
            rest = (_rows(a_all, self.size, None), _rows(b_all, self.size, None))
            self.rows -= self.size
            self.pending = [rest] if self.rows else []

    def flush(self) -> Iterable[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        if self.rows:
            yield self._joined()
        self.pending, self.rows = [], 0

    def _joined(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        if len(self.pending) == 1:
            return self.pending[0]
        a0, b0 = self.pending[0]
        return (
            {n: np.concatenate([p[0][n] for p in self.pending]) for n in a0},
            {n: np.concatenate([p[1][n] for p in self.pending]) for n in b0},
        )


def _rows(d: dict[str, np.ndarray], start: int, stop: int | None) -> dict[str, np.ndarray]:
    return {n: v[start:stop] for n, v in d.items()}
