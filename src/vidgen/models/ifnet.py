"""RIFE IFNet (HD v3, release 3.6): coarse-to-fine intermediate flow estimation for x2 interpolation.

Own implementation of the architecture of Huang et al., "Real-Time Intermediate Flow Estimation for
Video Frame Interpolation" (ECCV 2022), checked for numerical parity against the upstream MIT code
(`train_log/IFNet_HDv3.py`). Module names follow the upstream checkpoint so its state dict loads
with `strict=True` once the DataParallel `module.` prefix is stripped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import register_arch
from vidgen.models.pyramid import laplacian_l1

# Block i of the cascade sees the frames downscaled by these factors (divided by the user scale).
_BLOCK_SCALES = (4.0, 2.0, 1.0)
# Each IFBlock halves the resolution twice, and the coarsest block works at 1/4: 4 * 2 * 2 * 2 = 32.
_BASE_MULTIPLE = 32
# A few resolutions at most are live at once (inference: one; training: crop size + eval size).
_MAX_CACHED_GRIDS = 8


def pad_multiple(scale: float) -> int:
    """Spatial multiple that inputs must be padded to for a given IFNet `scale`."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(_BASE_MULTIPLE, int(_BASE_MULTIPLE / scale))


def check_inputs(img0: Tensor, img1: Tensor, scale: float) -> None:
    """IFNet's input contract: two equally shaped (B,3,H,W) batches, H and W multiples of pad_multiple(scale)."""
    multiple = pad_multiple(scale)
    height, width = img0.shape[-2:]
    if img1.shape != img0.shape or height % multiple or width % multiple:
        raise ValueError(
            f"IFNet needs two equally shaped (B,3,H,W) inputs with H, W multiples of {multiple} "
            f"at scale {scale}; got {tuple(img0.shape)} and {tuple(img1.shape)}"
        )


def _conv_prelu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    # A Sequential (not a custom module) so parameter names are `<i>.0.weight` / `<i>.1.weight`
    # exactly as in the upstream checkpoint.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.PReLU(out_channels))


def _upsample_head(channels: int, out_channels: int) -> nn.Sequential:
    """Two stride-2 transposed convs: features at 1/4 of the block's input back to its resolution."""
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1),
        nn.PReLU(channels // 2),
        nn.ConvTranspose2d(channels // 2, out_channels, 4, 2, 1),
    )


def _swap_flow_halves(flow: Tensor) -> Tensor:
    """(flow to frame 0, flow to frame 1) -> (flow to frame 1, flow to frame 0)."""
    return torch.cat((flow[:, 2:4], flow[:, 0:2]), 1)


def _resize(x: Tensor, factor: float) -> Tensor:
    # `recompute_scale_factor=False` makes the sampling positions use `factor` itself, as upstream.
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


class IFBlock(nn.Module):
    """One cascade stage: predicts a flow residual (4 ch) and a blend-mask residual (1 ch)."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(
            _conv_prelu(in_channels, channels // 2, stride=2),
            _conv_prelu(channels // 2, channels, stride=2),
        )
        self.convblock0 = nn.Sequential(_conv_prelu(channels, channels), _conv_prelu(channels, channels))
        self.convblock1 = nn.Sequential(_conv_prelu(channels, channels), _conv_prelu(channels, channels))
        self.convblock2 = nn.Sequential(_conv_prelu(channels, channels), _conv_prelu(channels, channels))
        self.convblock3 = nn.Sequential(_conv_prelu(channels, channels), _conv_prelu(channels, channels))
        self.conv1 = _upsample_head(channels, 4)
        self.conv2 = _upsample_head(channels, 1)

    def forward(self, x: Tensor, flow: Tensor, scale: float) -> tuple[Tensor, Tensor]:
        """`x`: images + mask at full size, `flow` in pixels; the block runs at 1/scale of that size."""
        x = _resize(x, 1.0 / scale)
        # Flow is measured in pixels, so shrinking the image shrinks the displacement too.
        flow = _resize(flow, 1.0 / scale) * (1.0 / scale)
        features = self.conv0(torch.cat((x, flow), 1))
        for residual in (self.convblock0, self.convblock1, self.convblock2, self.convblock3):
            features = residual(features) + features
        flow = _resize(self.conv1(features), scale) * scale
        mask = _resize(self.conv2(features), scale)
        return flow, mask


class IFNet(nn.Module):
    """Three-block IFNet predicting the temporal midpoint of two frames.

    `block_tea` is the privileged-distillation teacher (it also sees the ground-truth middle frame).
    Inference never runs it; it stays a submodule so upstream checkpoints load strictly and training
    can distil from it.
    """

    def __init__(self, channels: int = 90) -> None:
        super().__init__()
        # 7 = warped frame 0 (3) + warped frame 1 (3) + mask (1); + 4 flow channels.
        self.block0 = IFBlock(7 + 4, channels)
        self.block1 = IFBlock(7 + 4, channels)
        self.block2 = IFBlock(7 + 4, channels)
        # The teacher additionally gets the ground-truth frame (3 channels).
        self.block_tea = IFBlock(10 + 4, channels)
        # Base sampling grids keyed by (device, dtype, H, W). Per instance, not global, so models on
        # different devices or in different threads never share mutable state.
        self._grids: dict[tuple[torch.device, torch.dtype, int, int], Tensor] = {}

    def _base_grid(self, like: Tensor, height: int, width: int) -> Tensor:
        """Identity sampling grid in grid_sample's normalised [-1, 1] coordinates, shape (1, H, W, 2)."""
        key = (like.device, like.dtype, height, width)
        grid = self._grids.get(key)
        if grid is None:
            if len(self._grids) >= _MAX_CACHED_GRIDS:
                self._grids.clear()
            xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
            ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
            grid = torch.stack((xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)), -1)
            grid = self._grids[key] = grid.unsqueeze(0)
        return grid

    def warp(self, image: Tensor, flow: Tensor) -> Tensor:
        """Backward-warp `image` by a 2-channel pixel `flow`: out(p) = image(p + flow(p)), bilinear."""
        height, width = image.shape[-2:]
        # Sampling positions need ~1e-4 precision in [-1, 1]: a float16/bfloat16 grid is off by up
        # to several pixels at 720p (and CPU grid_sample returns NaNs in half precision), so the
        # warp always samples in at least float32, like CUDA autocast does, and casts back.
        sample_dtype = torch.promote_types(image.dtype, torch.float32)
        flow = flow.to(sample_dtype)
        # With align_corners=True, -1 and +1 are the centres of the edge pixels, so one pixel is
        # 2 / (size - 1) in normalised units.
        offset = torch.stack(
            (flow[:, 0] / ((width - 1.0) / 2.0), flow[:, 1] / ((height - 1.0) / 2.0)), -1
        )
        grid = self._base_grid(flow, height, width) + offset
        # Border padding: samples that leave the frame repeat the edge instead of fading to black.
        warped = F.grid_sample(
            image.to(sample_dtype), grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return warped.to(image.dtype)

    def forward(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> Tensor:
        """Midpoint frame. img0/img1: (B,3,H,W) float in [0,1], H and W multiples of pad_multiple(scale).

        The caller pads (RIFE pads with zeros at the bottom/right) and crops the result back.
        """
        return self.midpoint_with_flow(img0, img1, scale)[0]

    def midpoint_with_flow(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(midpoint frame, flow from the midpoint to img0 (ch 0-1) and to img1 (ch 2-3), mask logit).

        The flows and mask let a caller place a frame at other times than 1/2 (see `retime`).
        """
        check_inputs(img0, img1, scale)
        batch, _, height, width = img0.shape
        flow = img0.new_zeros(batch, 4, height, width)
        mask = img0.new_zeros(batch, 1, height, width)
        warped0, warped1 = img0, img1
        for block, block_scale in zip((self.block0, self.block1, self.block2), _BLOCK_SCALES):
            # The network is made symmetric in time: each block also sees the swapped pair (mask
            # negated, flow halves swapped), and the two answers are averaged. Two calls rather than
            # one doubled batch, which is slower on CPU.
            forward_flow, forward_mask = block(torch.cat((warped0, warped1, mask), 1), flow, block_scale / scale)
            backward_flow, backward_mask = block(
                torch.cat((warped1, warped0, -mask), 1), _swap_flow_halves(flow), block_scale / scale
            )
            flow = flow + (forward_flow + _swap_flow_halves(backward_flow)) / 2
            mask = mask + (forward_mask - backward_mask) / 2
            warped0 = self.warp(img0, flow[:, 0:2])
            warped1 = self.warp(img1, flow[:, 2:4])
        # The mask is a per-pixel logit for "take frame 0"; it resolves occlusions between the two.
        weight0 = torch.sigmoid(mask)
        return warped0 * weight0 + warped1 * (1 - weight0), flow, mask

    def training_outputs(
        self, img0: Tensor, img1: Tensor, gt: Tensor, scale: float = 1.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """RIFE's training forward with privileged distillation: (student midpoint, extra loss terms).

        Student: the same 3-block symmetric cascade as `midpoint_with_flow` (each block also sees the
        swapped pair; answers averaged), keeping every block's flow and blended frame.

        Teacher: `block_tea` refines the student's final flow and mask seeing the ground-truth middle
        frame `gt` as well, at the finest block scale (1 / `scale`), as in RIFE's `IFNet.forward`. It
        follows the student's time-symmetric convention: it is also run on the swapped pair (warped
        frames exchanged, mask negated, flow halves swapped; `gt`, being the midpoint, is the same for
        both orders) and the two residuals are averaged. This is the convention the released HD v3.6
        student was trained with, so a fine-tune from the released weights, whose `block_tea` is trained,
        starts from a consistent teacher.

        Extra terms, weighted as in RIFE's `Model.update` (`loss_tea + 0.01 * loss_distill`):
        - "teacher_recon": Laplacian-pyramid L1 of the teacher's frame against `gt` (weight 1). Its
          gradient also reaches the student blocks through the flow the teacher starts from, as upstream.
        - "distill": 0.01 * sum over the three student blocks of the mean over pixels of
          ||flow_student - stopgrad(flow_teacher)||_2 (over the 4 flow channels, RMS as upstream), counted
          only where the teacher's frame is more accurate than that block's frame by more than 0.01
          (mean absolute error over channels).

        The student prediction is the final block's blended frame (what `forward` returns); the trainer
        applies its main reconstruction loss to it.
        """
        check_inputs(img0, img1, scale)
        if gt.shape != img0.shape:
            raise ValueError(f"ground truth shape {tuple(gt.shape)} differs from the inputs' {tuple(img0.shape)}")
        batch, _, height, width = img0.shape
        flow = img0.new_zeros(batch, 4, height, width)
        mask = img0.new_zeros(batch, 1, height, width)
        warped0, warped1 = img0, img1
        student_flows: list[Tensor] = []
        student_frames: list[Tensor] = []
        for block, block_scale in zip((self.block0, self.block1, self.block2), _BLOCK_SCALES):
            forward_flow, forward_mask = block(torch.cat((warped0, warped1, mask), 1), flow, block_scale / scale)
            backward_flow, backward_mask = block(
                torch.cat((warped1, warped0, -mask), 1), _swap_flow_halves(flow), block_scale / scale
            )
            flow = flow + (forward_flow + _swap_flow_halves(backward_flow)) / 2
            mask = mask + (forward_mask - backward_mask) / 2
            warped0 = self.warp(img0, flow[:, 0:2])
            warped1 = self.warp(img1, flow[:, 2:4])
            weight0 = torch.sigmoid(mask)
            student_flows.append(flow)
            student_frames.append(warped0 * weight0 + warped1 * (1 - weight0))

        teacher_scale = _BLOCK_SCALES[-1] / scale
        forward_flow, forward_mask = self.block_tea(torch.cat((warped0, warped1, mask, gt), 1), flow, teacher_scale)
        backward_flow, backward_mask = self.block_tea(
            torch.cat((warped1, warped0, -mask, gt), 1), _swap_flow_halves(flow), teacher_scale
        )
        teacher_flow = flow + (forward_flow + _swap_flow_halves(backward_flow)) / 2
        teacher_mask = mask + (forward_mask - backward_mask) / 2
        teacher_weight0 = torch.sigmoid(teacher_mask)
        teacher_frame = (
            self.warp(img0, teacher_flow[:, 0:2]) * teacher_weight0
            + self.warp(img1, teacher_flow[:, 2:4]) * (1 - teacher_weight0)
        )

        teacher_error = (teacher_frame - gt).abs().mean(1, keepdim=True)
        target_flow = teacher_flow.detach()
        distill = img0.new_zeros(())
        for student_flow, student_frame in zip(student_flows, student_frames):
            teacher_better = ((student_frame - gt).abs().mean(1, keepdim=True) > teacher_error + 0.01).detach()
            # The epsilon keeps the sqrt's gradient finite where the flows agree exactly.
            distance = (((target_flow - student_flow) ** 2).mean(1, keepdim=True) + 1e-12).sqrt()
            distill = distill + (distance * teacher_better.to(distance.dtype)).mean()
        extra = {"teacher_recon": laplacian_l1(teacher_frame, gt), "distill": 0.01 * distill}
        return student_frames[-1], extra

    def retime(self, img0: Tensor, img1: Tensor, flow: Tensor, mask: Tensor, time: float) -> Tensor:
        """The frame at `time` in (0, 1) from a midpoint pass's flow and mask, assuming linear motion.

        Displacements scale with the distance in time (2t to img0, 2(1-t) to img1), and the occlusion
        weights lean towards the nearer frame; at t = 1/2 this is exactly the midpoint.
        """
        warped0 = self.warp(img0, flow[:, 0:2] * (2 * time))
        warped1 = self.warp(img1, flow[:, 2:4] * (2 * (1 - time)))
        visible0 = torch.sigmoid(mask)
        near0 = (1 - time) * visible0
        weight0 = near0 / (near0 + time * (1 - visible0))
        return warped0 * weight0 + warped1 * (1 - weight0)


def convert_rife_checkpoint(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Upstream `flownet.pkl` state dict -> IFNet state dict: strip `module.`, float32, contiguous."""
    converted: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"checkpoint entry {key!r} is {type(value).__name__}, expected a tensor")
        # DataParallel/DDP training saved every key with a `module.` prefix.
        name = key.removeprefix("module.")
        if name in converted:
            raise ValueError(f"checkpoint has both {key!r} and an unprefixed {name!r}")
        # Own storage per tensor: safetensors refuses to save tensors that share memory.
        converted[name] = value.detach().to(dtype=torch.float32, copy=True).contiguous()
    return converted


@register_arch(
    "ifnet",
    task="interpolate",
    spatial_multiple=_BASE_MULTIPLE,
    midpoint_only=True,
    retimes=True,
    dtypes=("float32", "float16", "bfloat16"),
    convert_state_dict=convert_rife_checkpoint,
    defaults={"channels": 90},
)
def build_ifnet(channels: int = 90) -> IFNet:
    """Build an IFNet with random weights; the registry loads the checkpoint into it."""
    return IFNet(channels=channels)
