"""``torch.export`` programs (``.pt2``) in and out, without unpickling anything.

A ``.pt2`` written by ``torch.export.save`` carries a network's architecture (an FX graph of ATen
operators) and its weights, so ``snnfpga convert model.pt2`` takes any architecture the
converter supports, not only the built-in models. ``torch.export.load`` itself may unpickle
(weights saved as pickles, custom objects, example inputs it falls back to
``torch.load(weights_only=False)`` for), so :func:`load_export` first checks the archive: every
weight and constant must be stored as raw bytes, the example inputs must load with
``weights_only=True``, and no compiled (AOTInductor) code may be inside; only then is the
program deserialised, with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD`` set as a second guard.

The exported graph is rebuilt as an ``nn.Module`` of ordinary layers (``aten.linear`` becomes
an ``nn.Linear`` holding the exported weight, ``aten.batch_norm`` an ``nn.BatchNorm2d``, ...)
and handed to the same tracer as any user module (:func:`snnfpga.convert.graph.trace_fx`), so
the rules and the error messages are the converter's own. An operator with no such layer is
refused by name, with the module it came from and the list of what is supported.
"""

from __future__ import annotations

import io
import json
import operator
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import BadFile
from .graph import UnsupportedModel

__all__ = ["ExportedModel", "NotAnExportProgram", "save_export", "load_export", "from_exported_program",
           "is_export_file", "META_FILE", "SUPPORTED_OPS"]

#: the extra file of a ``.pt2`` in which ``snnfpga train`` records the architecture and data set
META_FILE = "snnfpga.json"
#: what a refused operator's error lists
SUPPORTED_OPS = ("linear (or addmm / mm by a transposed weight)", "conv2d / convolution", "batch_norm (inference mode)", "relu", "flatten / view / reshape to "
                 "[N, features]", "avg_pool2d", "adaptive_avg_pool2d(1)", "max_pool2d", "add of two tensors",
                 "dropout (inference: identity)")


class NotAnExportProgram(BadFile, ValueError):
    """A file that is not a ``torch.export.save`` archive, or one that holds pickled objects."""


@dataclass
class ExportedModel:
    """A network read from a ``.pt2``: an ``nn.Module`` of ordinary layers computing the exported
    graph, the input shape (without the batch) it was exported for, and the ``snnfpga.json``
    metadata ``snnfpga train`` wrote (empty for other programs)."""

    module: nn.Module
    in_shape: tuple[int, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def is_export_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a ``torch.export`` archive (a zip holding ``archive_format``)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/archive_format") or n == "archive_format" for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


# --------------------------------------------------------------------------- writing
def save_export(model: nn.Module, in_shape: tuple[int, ...], path: str | Path,
                meta: dict[str, Any] | None = None) -> Path:
    """Export ``model`` (in inference mode, batch dimension dynamic) for inputs of ``in_shape``
    and write it with ``torch.export.save``; ``meta`` goes into the archive as ``snnfpga.json``.
    The file appears whole or not at all (written beside, then renamed)."""
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        example = (torch.zeros((2,) + tuple(in_shape)),)
        try:
            ep = torch.export.export(model, example, dynamic_shapes=({0: torch.export.Dim.AUTO},))
        except Exception:  # a model whose batch dimension cannot be dynamic: export it for batch 2
            ep = torch.export.export(model, example)
    finally:
        model.train(was_training)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        buf = io.BytesIO()
        torch.export.save(ep, buf, extra_files={META_FILE: json.dumps(meta or {}, sort_keys=True)})
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------- reading
def _check_archive(data: bytes, path: Path) -> None:
    """Refuse anything ``torch.export.load`` would unpickle (see the module docstring)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        hint = ""
        if data[:2] == b"\x80\x02" or data[:1] == b"\x80":
            hint = " (it looks like a pickle; 'snnfpga train' checkpoints (.pt) are read with their .pt.json)"
        raise NotAnExportProgram(f"{path}: not a torch.export program: a .pt2 is the zip archive "
                                 f"torch.export.save writes{hint}") from None
    names = z.namelist()
    fmt = [n for n in names if n.split("/")[-1] == "archive_format" and n.count("/") <= 1]
    if not fmt:
        raise NotAnExportProgram(f"{path}: not a torch.export program (a zip without archive_format; "
                                 "write it with torch.export.save)")
    root = fmt[0][: -len("archive_format")]
    if z.read(fmt[0]).decode(errors="replace").strip() != "pt2":
        raise NotAnExportProgram(f"{path}: archive_format is not 'pt2'")
    models = [n for n in names if n.startswith(root + "models/") and n.endswith(".json")]
    if [n[len(root + "models/"):-5] for n in models] != ["model"]:
        raise NotAnExportProgram(f"{path}: holds {len(models)} exported programs, not one named 'model' "
                                 f"(found {[n[len(root):] for n in models]})")
    if any(n.startswith(root + "data/aotinductor/") for n in names):
        raise NotAnExportProgram(f"{path}: holds compiled AOTInductor code; save the program with "
                                 "torch.export.save, not a compiled package")
    for legacy in ("data/weights/model.pt", "data/constants/model.pt"):
        if root + legacy in names:
            raise NotAnExportProgram(f"{path}: uses the legacy pickled weight format ({legacy}); export the "
                                     "model again with this version of torch")
    for kind in ("weights", "constants"):
        cfg_name = f"{root}data/{kind}/model_{kind}_config.json"
        if cfg_name not in names:
            raise NotAnExportProgram(f"{path}: {cfg_name[len(root):]} is missing")
        try:
            cfg = json.loads(z.read(cfg_name)).get("config", {})
            entries = list(cfg.items())
        except (ValueError, AttributeError) as e:
            raise NotAnExportProgram(f"{path}: {cfg_name[len(root):]} is not a payload config ({e})") from None
        for fqn, meta in entries:
            name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
            pickled = not isinstance(meta, dict) or meta.get("use_pickle", True)
            if pickled or (kind == "constants" and not name.startswith("tensor_")):
                raise NotAnExportProgram(f"{path}: {kind[:-1]} {fqn!r} is stored as a pickled object, which is "
                                         "never loaded (it could run code); only plain tensors are accepted")
    sample = f"{root}data/sample_inputs/model.pt"
    if sample in names:
        try:
            torch.load(io.BytesIO(z.read(sample)), weights_only=True)
        except Exception as e:
            raise NotAnExportProgram(f"{path}: its example inputs are not plain tensors ({type(e).__name__}); "
                                     "they are never unpickled") from None


def load_export(path: str | Path) -> ExportedModel:
    """Read a ``torch.export.save`` archive safely and rebuild its network (:class:`ExportedModel`).

    Raises :class:`NotAnExportProgram` for a file that is not one (or holds pickles) and
    :class:`~snnfpga.convert.graph.UnsupportedModel` for an operator the converter cannot map.
    """
    path = Path(path)
    if not path.is_file():
        raise BadFile(f"{path}: file not found")
    data = path.read_bytes()
    _check_archive(data, path)
    extra: dict[str, Any] = {META_FILE: ""}
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"  # a second guard: no torch.load may unpickle
    try:
        ep = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as e:
        raise NotAnExportProgram(f"{path}: torch.export.load cannot read it ({type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else ''})") from None
    finally:
        if previous is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous
    try:
        meta = json.loads(extra.get(META_FILE) or "{}")
    except ValueError:
        raise NotAnExportProgram(f"{path}: {META_FILE} inside is not JSON") from None
    module, in_shape = from_exported_program(ep)
    return ExportedModel(module=module, in_shape=in_shape, meta=meta if isinstance(meta, dict) else {}, path=path)


# --------------------------------------------------------------------------- graph rebuilding
_IDENTITY = {"dropout", "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias", "detach",
             "lift_fresh_copy", "_to_copy"}
_IGNORED = {"sym_size", "_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size",
            "sym_constrain_range", "_assert_async"}
_RESHAPE = {"flatten", "view", "reshape", "_unsafe_view"}


def _op_name(target: Any) -> str:
    packet = getattr(target, "_overloadpacket", None)
    return getattr(packet, "__name__", None) or getattr(target, "__name__", str(target))


def _bind(node: torch.fx.Node) -> dict[str, Any]:
    """An ATen call's arguments by schema name, defaults filled in."""
    schema = node.target._schema
    out = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args):
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
    return out


def _origin(node: torch.fx.Node) -> tuple[str, str]:
    """(module path, module type) that produced ``node`` (from the export's nn_module_stack)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    return str(path), kind.rsplit(".", 1)[-1]


def _shape(node: Any) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    if isinstance(val, torch.Tensor):
        return tuple(int(s) if isinstance(s, int) else -1 for s in val.shape)
    return None


def from_exported_program(ep: torch.export.ExportedProgram) -> tuple[nn.Module, tuple[int, ...]]:
    """An ``nn.Module`` of ordinary layers computing ``ep``'s graph, and its input shape (no batch).

    Each supported ATen operator becomes the matching ``nn`` layer (weights copied) or function,
    so :func:`snnfpga.convert.graph.trace` handles the result like any user module.
    """
    gm = ep.module()
    graph = torch.fx.Graph()
    modules: dict[str, nn.Module] = {}
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    in_shape: tuple[int, ...] | None = None

    def tensor(arg: Any, what: str, where: str) -> torch.Tensor | None:
        if arg is None:
            return None
        if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
            obj: Any = gm
            for part in str(arg.target).split("."):
                obj = getattr(obj, part)
            return obj.detach().clone()
        raise UnsupportedModel(f"{where}: its {what} is computed in the graph ({arg}), not a parameter; "
                               "only layers with stored weights are supported")

    transposed: dict[torch.fx.Node, torch.Tensor] = {}  # permute / t of a 2-d parameter (decomposed linear)

    def value(arg: Any, where: str) -> torch.fx.Node:
        if not isinstance(arg, torch.fx.Node) or arg not in env:
            raise UnsupportedModel(f"{where}: reads {arg}, which is not a tensor the converter maps")
        return env[arg]

    def add_module(node: torch.fx.Node, module: nn.Module, source: torch.fx.Node) -> torch.fx.Node:
        path, _ = _origin(node)
        name = path.replace(".", "_") if path and path.replace(".", "_").isidentifier() else node.name
        base, k = name or node.name, 1
        while name in modules or not name:
            name, k = f"{base}_{k}", k + 1
        modules[name] = module
        return graph.call_module(name, (source,))

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if in_shape is not None:
                raise UnsupportedModel(f"the exported program takes more than one input ({node.name}); the "
                                       "converter needs a network of one image tensor")
            shape = _shape(node)
            if shape is None or len(shape) < 2:
                raise UnsupportedModel(f"the exported program's input {node.name} is not a batched tensor")
            in_shape = shape[1:]
            env[node] = graph.placeholder(node.name)
            continue
        if node.op == "get_attr":
            continue  # parameters: read by the layer that uses them
        if node.op == "call_module":
            if str(node.target).startswith("_guards"):
                continue  # export's input guards: the input shape is checked against the data instead
            raise UnsupportedModel(f"node {node.name}: calls module {node.target!r}; export the model with "
                                   "torch.export.export (an ATen graph)")
        if node.op == "output":
            outs = node.args[0]
            outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
            if len(outs) != 1:
                raise UnsupportedModel(f"the exported program returns {len(outs)} values, not one tensor")
            graph.output(value(outs[0], "the output"))
            continue
        path, kind = _origin(node)
        op = _op_name(node.target)
        where = f"{op} (node {node.name}" + (f", from {kind} {path!r})" if path else ")")
        if node.target is operator.getitem:
            src, idx = node.args
            if src in env and idx == 0:  # the first output of batch_norm / max_pool2d_with_indices
                env[node] = env[src]
                continue
            if src in env or isinstance(src, torch.fx.Node) and _op_name(getattr(src, "target", None)) in (
                    "_native_batch_norm_legit_no_training", "max_pool2d_with_indices"):
                continue  # an unused second output (indices, saved statistics)
            raise UnsupportedModel(f"{where}: indexes {src}, which the converter does not map")
        if op in _IGNORED:
            continue
        if not hasattr(node.target, "_schema"):
            raise UnsupportedModel(f"{where} is not supported: the converter takes the ATen operators "
                                   f"{', '.join(SUPPORTED_OPS)}")
        a = _bind(node)
        first = next(iter(a.values()), None)
        if isinstance(first, torch.fx.Node) and first.op == "get_attr":
            if op in ("permute", "t") and list(a.get("dims", [1, 0])) == [1, 0]:
                transposed[node] = tensor(first, "weight", where)  # mat2 = W.t(): the Linear holds W
                continue
            if op.endswith("_"):
                raise UnsupportedModel(f"{where}: updates {first.target!r} in place: the program was exported in "
                                       "training mode; call model.eval() before torch.export.export")
        if op in _IDENTITY:
            if op == "_to_copy" and a.get("dtype") not in (None, torch.float32):
                raise UnsupportedModel(f"{where}: casts to {a.get('dtype')}; the converter needs float32")
            if op in ("dropout", "feature_dropout", "alpha_dropout") and a.get("train"):
                raise UnsupportedModel(f"{where}: dropout in training mode; call model.eval() before "
                                       "torch.export.export")
            env[node] = value(first, where)
        elif op == "linear":
            w, b = tensor(a["weight"], "weight", where), tensor(a.get("bias"), "bias", where)
            m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(w)
                if b is not None:
                    m.bias.copy_(b)
            env[node] = add_module(node, m, value(a["input"], where))
        elif op in ("addmm", "mm"):  # a decomposed linear: input @ weight.t() (+ bias)
            mat2 = a["mat2"]
            if mat2 not in transposed:
                raise UnsupportedModel(f"{where}: multiplies by {mat2}, which is not a stored weight")
            w = transposed[mat2]
            b = tensor(a["self"], "bias", where) if op == "addmm" else None
            if op == "addmm" and (a.get("beta", 1) != 1 or a.get("alpha", 1) != 1 or b.dim() != 1):
                raise UnsupportedModel(f"{where}: only input @ weight.t() + bias is supported")
            m = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(w)
                if b is not None:
                    m.bias.copy_(b)
            env[node] = add_module(node, m, value(a["mat1"] if op == "addmm" else a["self"], where))
        elif op in ("conv2d", "convolution"):
            if op == "convolution" and (a.get("transposed") or len(a["stride"]) != 2):
                raise UnsupportedModel(f"{where}: only 2-d, non-transposed convolutions are supported")
            if isinstance(a.get("padding"), str):
                raise UnsupportedModel(f"{where}: padding must be integers, not {a['padding']!r}")
            w, b = tensor(a["weight"], "weight", where), tensor(a.get("bias"), "bias", where)
            groups = int(a.get("groups", 1))
            m = nn.Conv2d(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), stride=tuple(a["stride"]),
                          padding=tuple(a["padding"]), dilation=tuple(a["dilation"]), groups=groups,
                          bias=b is not None)
            with torch.no_grad():
                m.weight.copy_(w)
                if b is not None:
                    m.bias.copy_(b)
            env[node] = add_module(node, m, value(a["input"], where))
        elif op in ("batch_norm", "_native_batch_norm_legit_no_training"):
            if a.get("training"):
                raise UnsupportedModel(f"{where}: BatchNorm in training mode; call model.eval() before "
                                       "torch.export.export")
            mean = tensor(a["running_mean"], "running mean", where)
            var = tensor(a["running_var"], "running variance", where)
            w, b = tensor(a.get("weight"), "weight", where), tensor(a.get("bias"), "bias", where)
            rank = len(_shape(a["input"]) or ())
            cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
            m = cls(mean.shape[0], eps=float(a["eps"]), affine=w is not None)
            with torch.no_grad():
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                if w is not None:
                    m.weight.copy_(w)
                    m.bias.copy_(b if b is not None else torch.zeros_like(w))
            m.eval()
            env[node] = add_module(node, m, value(a["input"], where))
        elif op in ("relu", "relu_"):
            env[node] = graph.call_function(torch.relu, (value(first, where),))
        elif op in _RESHAPE:
            src, out = _shape(first), _shape(node)
            if out is not None and src is not None and out[1:] == src[1:]:
                env[node] = value(first, where)
            elif out is not None and len(out) == 2:
                env[node] = graph.call_function(torch.flatten, (value(first, where), 1))
            else:
                raise UnsupportedModel(f"{where}: only flattening to [N, features] is supported, not "
                                       f"{src} → {out}")
        elif op in ("add", "add_"):
            if a.get("alpha", 1) != 1 or not isinstance(a.get("other"), torch.fx.Node):
                raise UnsupportedModel(f"{where}: a residual add takes two tensors (no alpha, no constants)")
            env[node] = graph.call_function(operator.add, (value(first, where), value(a["other"], where)))
        elif op == "avg_pool2d":
            if a.get("divisor_override") is not None:
                raise UnsupportedModel(f"{where}: divisor_override is not supported")
            k = tuple(a["kernel_size"])
            m = nn.AvgPool2d(k, tuple(a.get("stride") or k), tuple(a.get("padding") or (0,)),
                             ceil_mode=bool(a.get("ceil_mode")), count_include_pad=bool(a.get("count_include_pad", True)))
            env[node] = add_module(node, m, value(first, where))
        elif op in ("max_pool2d", "max_pool2d_with_indices"):
            k = tuple(a["kernel_size"])
            m = nn.MaxPool2d(k, tuple(a.get("stride") or k), tuple(a.get("padding") or (0,)),
                             dilation=tuple(a.get("dilation") or (1,)), ceil_mode=bool(a.get("ceil_mode")))
            env[node] = add_module(node, m, value(first, where))
        elif op in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d"):
            env[node] = add_module(node, nn.AdaptiveAvgPool2d(tuple(a["output_size"])), value(first, where))
        else:
            raise UnsupportedModel(f"{where} is not supported: the converter takes the ATen operators "
                                   f"{', '.join(SUPPORTED_OPS)}")
    if in_shape is None:
        raise UnsupportedModel("the exported program takes no input")
    if any(s < 0 for s in in_shape):
        raise UnsupportedModel(f"the exported program's input shape {in_shape} is dynamic beyond the batch "
                               "dimension; export it for one image size")
    root = nn.Module()
    for name, m in modules.items():
        root.add_module(name, m)
    rebuilt = torch.fx.GraphModule(root, graph, class_name="ExportedNetwork")
    rebuilt.eval()
    return rebuilt, in_shape
