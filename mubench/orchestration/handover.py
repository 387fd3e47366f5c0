"""The files that cross the sandbox's jail: what a method declared, in; its weights, out.

The driver writes the original model's weights and the subsets the method's access level allows
(`Access.subsets`: the forget set, plus retain, plus unseen with its attributes for
counterfactual methods) into the jail's scratch folder; nothing else of the prepared run (the
oracle, the test set, the other subsets, the store, a cache path) is written, so nothing else
exists for the method to find. The child writes back the unlearned weights. Both are
safetensors files: plain tensors by name, read without unpickling anything, so a crafted file
can name wrong tensors or shapes but cannot run code in the driver. `read_weights` checks the
names, shapes, dtypes, finiteness and size before any tensor reaches a model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from mubench.errors import MethodOutputError
from mubench.request import Subset

INPUTS = "inputs.safetensors"
WEIGHTS = "unlearned.safetensors"
MODEL_PREFIX = "model/"
WEIGHTS_SLACK_BYTES = 1 << 20  # the safetensors header and alignment, beyond the tensors themselves


def write_inputs(folder: Path, state: dict[str, torch.Tensor], subsets: dict[str, Subset]) -> Path:
    """The original's weights (`model/<name>`) and each subset's `x`, `y` and attributes
    (`<part>/x`, `<part>/y`, `<part>/attr/<name>`), on the CPU."""
    tensors = {MODEL_PREFIX + name: _cpu(tensor) for name, tensor in state.items()}
    for part, subset in subsets.items():
        tensors[f"{part}/x"], tensors[f"{part}/y"] = _cpu(subset.x), _cpu(subset.y)
        for name, values in subset.attributes.items():
            tensors[f"{part}/attr/{name}"] = _cpu(values)
    path = folder / INPUTS
    save_file(tensors, str(path))
    path.chmod(0o644)  # safetensors writes 0600; the jail's user (not the driver's) reads it
    return path


def read_inputs(path: Path, device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, Subset]]:
    """(the original's state dict, the subsets on `device`; attributes stay on the CPU, as the
    harness keeps them)."""
    tensors = load_file(str(path))
    state = {name[len(MODEL_PREFIX):]: t for name, t in tensors.items() if name.startswith(MODEL_PREFIX)}
    parts = sorted({name.split("/", 1)[0] for name in tensors if not name.startswith(MODEL_PREFIX)})
    subsets = {}
    for part in parts:
        attributes = {name.rsplit("/", 1)[1]: t for name, t in tensors.items() if name.startswith(f"{part}/attr/")}
        subsets[part] = Subset(tensors[f"{part}/x"].to(device), tensors[f"{part}/y"].to(device), attributes)
    return state, subsets


def write_weights(path: Path, model: nn.Module) -> None:
    save_file({name: _cpu(tensor) for name, tensor in model.state_dict().items()}, str(path))


def read_weights(path: Path, reference: nn.Module) -> dict[str, torch.Tensor]:
    """The unlearned state dict from the child's file, refused (MethodOutputError, naming the
    tensor) unless it has exactly the reference model's tensors, shapes and dtypes, finite
    floating-point values, and no more bytes than those tensors need."""
    want = reference.state_dict()
    if not path.is_file():
        raise MethodOutputError("the isolated run wrote no weights")
    budget = sum(t.numel() * t.element_size() for t in want.values()) + WEIGHTS_SLACK_BYTES + 64 * len(want)
    size = path.stat().st_size
    if size > budget:
        raise MethodOutputError(f"the isolated run's weights file has {size} bytes, more than the model's "
                                f"{budget} (tensors the model does not have?)")
    try:
        got = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise MethodOutputError(f"the isolated run's weights file is not a readable safetensors file: {exc}") from None
    if set(got) != set(want):
        changed = sorted(set(got) ^ set(want))
        raise MethodOutputError(f"unlearn changed the architecture (parameters {changed[:5]})")
    for name, tensor in want.items():
        value = got[name]
        if tuple(value.shape) != tuple(tensor.shape) or value.dtype != tensor.dtype:
            raise MethodOutputError(f"unlearn changed the architecture (parameter {name!r}: {value.dtype} "
                                    f"{tuple(value.shape)}, the original has {tensor.dtype} {tuple(tensor.shape)})")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise MethodOutputError(f"unlearn returned non-finite weights in {name!r}")
    return got


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous()
