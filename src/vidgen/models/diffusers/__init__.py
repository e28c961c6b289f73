"""Pretrained models through Hugging Face diffusers (the optional extra `pip install 'vidgen[diffusers]'`).

- `vae`: video VAEs (NVIDIA Cosmos tokenizer, CogVideoX, LTX-Video, Wan 2.1) as reconstruct models.
- `t2v`: open-domain text-to-video (Wan 2.1, LTX-Video, CogVideoX) behind `generate_frames`.

Their registry entries have `format = "diffusers"`: the weights are a folder (a pinned Hub snapshot or a
local directory, registry/snapshots.py), which the builders here load with diffusers' `from_pretrained`.
Importing this package (the registry does, to list architectures) needs neither diffusers nor the network;
building a model without diffusers installed raises a `VidgenError` saying what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from vidgen.errors import VidgenError

INSTALL_HINT = "pip install 'vidgen[diffusers]'  (diffusers, transformers, accelerate)"

DTYPES = ("float32", "float16", "bfloat16")  # what entries may name


def require_diffusers() -> ModuleType:
    """The diffusers module, or a one-line error naming the extra to install."""
    try:
        import diffusers
    except ImportError as err:
        raise VidgenError(f"this model runs through Hugging Face diffusers, which is not installed ({err})",
                          hint=INSTALL_HINT) from None
    return diffusers


def torch_dtype(name: str) -> Any:
    """`"bfloat16"` -> torch.bfloat16, for the dtypes the entries may name."""
    import torch

    if name not in DTYPES:
        raise TypeError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def dtype_kwarg(value: Any) -> dict[str, Any]:
    """`{"dtype": value}` for `from_pretrained` where diffusers renamed `torch_dtype` (it warns about the old
    name), else `{"torch_dtype": value}`, which every version reads."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:
        return {"torch_dtype": value}
    return {"dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype": value}


def require_pretrained(pretrained: str | None, arch: str) -> str:
    if not pretrained:
        raise VidgenError(f"arch {arch!r} loads pretrained diffusers weights and cannot be built from a config alone",
                          hint="use it through a registry entry (format = \"diffusers\"), e.g. --model NAME")
    return pretrained
