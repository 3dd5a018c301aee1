"""Throughput of grounding + segmentation, and the latency of click-to-refine.

    python bench/pipeline.py [--device auto] [--batch-sizes 1,4,16] [--images 32]
                             [--size 640x480] [--real-arch] [--repeat 5]

Models are random-initialised and saved to a temporary folder, then loaded through
the real backends (``ml/stages/backends``) exactly as users' checkpoints are; random
weights are fine for speed. By default they are the tiny models of the tests
(tests/ml/vision_fixtures.py). With ``--real-arch`` they are the default
configurations of the real architectures: ``GroundingDinoConfig()`` (Swin-T + BERT-base,
900 queries, 800/1333 px input), ``SamConfig()`` (ViT-B image encoder, 1024 px) and
segment_anything's ``vit_b`` — meant for a GPU (on a CPU it takes minutes).

Per batch size ``b`` (images per grounder and segmenter call, also their
``batch_size`` option), ``--images`` noisy images of ``--size`` pixels with one
B-A-S triplet (3 phrases) each are grounded with thresholds 0 (every phrase gets a
box) and each box is segmented; the embedding cache is cleared first, so every
image is encoded once. Printed: images/s of grounding, of segmentation (for each
SAM backend) and of both in a row. Refine: one click + box on an image whose
embedding is cached vs. one that is not (median of ``--repeat``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's packages

import numpy as np
import torch
from PIL import Image as PILImage

from ml.stages.backends.grounding_dino import GroundingDinoGrounder
from ml.stages.backends.sam_hf import HFSamSegmenter
from ml.stages.backends.sam_meta import MetaSamSegmenter
from ml.stages.types import Box, ImageInput
from tests.ml import vision_fixtures as tiny

TRIPLET = ["stormy beach at dusk", "dark heavy clouds", "lone fisherman"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--images", type=int, default=32, help="images per measurement")
    parser.add_argument("--size", default="640x480", help="WxH of the images")
    parser.add_argument(
        "--real-arch", action="store_true", help="default (full-size) configs, random weights"
    )
    parser.add_argument("--repeat", type=int, default=5, help="refine timings: median of this many")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return parser.parse_args()


# -- models -------------------------------------------------------------------------------
def build_real_grounding_dino(folder: Path) -> Path:
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    config = GroundingDinoConfig()
    vocab = tiny.write_bert_vocab(folder / "vocab.txt", size=config.text_config.vocab_size)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(), tokenizer=BertTokenizer(str(vocab))
    ).save_pretrained(folder)
    return folder


def build_real_sam_hf(folder: Path) -> Path:
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    SamModel(SamConfig()).save_pretrained(folder)
    SamProcessor(SamImageProcessor()).save_pretrained(folder)
    return folder


def build_models(root: Path, real: bool, device: str, batch_size: int) -> dict[str, object]:
    """The grounder and both segmenters, saved under ``root`` (once) and loaded by the backends."""
    gd, sam, pth = root / "grounding-dino", root / "sam-hf", root / "sam-meta.pth"
    model_type = "vit_b" if real else tiny.TINY_SAM_TYPE
    if not real:
        from segment_anything import sam_model_registry

        sam_model_registry[tiny.TINY_SAM_TYPE] = tiny.build_tiny_meta_sam
    if not gd.exists():
        if real:
            from segment_anything import sam_model_registry

            build_real_grounding_dino(gd)
            build_real_sam_hf(sam)
            torch.save(sam_model_registry["vit_b"]().state_dict(), pth)
        else:
            tiny.build_tiny_grounding_dino(gd)
            tiny.build_tiny_sam_hf(sam)
            tiny.save_tiny_meta_sam(pth)
    common = {"device": device, "batch_size": batch_size}
    return {
        "grounder": GroundingDinoGrounder(
            model_path=str(gd), box_threshold=0.0, text_threshold=0.0, **common
        ),
        "sam (transformers)": HFSamSegmenter(model_path=str(sam), **common),
        "sam (segment_anything)": MetaSamSegmenter(checkpoint=str(pth), model_type=model_type, **common),
    }


# -- measurements -------------------------------------------------------------------------
def make_images(n: int, width: int, height: int) -> list[ImageInput]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        out.append(
            tiny.image_input(PILImage.fromarray(pixels, "RGB"), key=f"bench-{i}", fmt="JPEG", quality=90)
        )
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def in_chunks(images: list[ImageInput], size: int) -> list[list[ImageInput]]:
    return [images[i : i + size] for i in range(0, len(images), size)]


def throughput(models: dict, images: list[ImageInput], batch: int) -> dict[str, float]:
    grounder = models["grounder"]
    device = grounder.device
    chunks = in_chunks(images, batch)
    grounder.ground(chunks[0][:1], [TRIPLET])  # warm-up
    seconds, detections = timed(
        lambda: [d for c in chunks for d in grounder.ground(c, [TRIPLET] * len(c))], device
    )
    rates = {"grounding": len(images) / seconds}
    boxes = [[d.box for d in ds if d.box is not None] for ds in detections]
    box_chunks = in_chunks(boxes, batch)
    for name in ("sam (transformers)", "sam (segment_anything)"):
        segmenter = models[name]
        segmenter.segment(images[:1], [[Box(0, 0, 10, 10)]])  # warm-up
        segmenter.cache.clear()
        seconds, _ = timed(lambda s=segmenter: [s.segment(c, b) for c, b in zip(chunks, box_chunks)], device)
        rates[name] = len(images) / seconds
    return rates


def refine_latency(segmenter, image: ImageInput, repeat: int) -> tuple[float, float]:
    """Median seconds of one refine without and with the image's embedding cached."""
    w, h = image.width, image.height
    box, click = Box(w * 0.2, h * 0.2, w * 0.7, h * 0.8), [(w * 0.45, h * 0.5)]
    device = segmenter.device
    uncached, cached = [], []
    for _ in range(repeat):
        segmenter.cache.clear()
        uncached.append(timed(lambda: segmenter.refine(image, box, click, [1]), device)[0])
        cached.append(timed(lambda: segmenter.refine(image, box, click, [1]), device)[0])
    return statistics.median(uncached), statistics.median(cached)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    images = make_images(args.images, width, height)
    with tempfile.TemporaryDirectory(prefix="emoverse-bench-") as tmp:
        rows = []
        refine = {}
        for batch in batch_sizes:
            models = build_models(Path(tmp), args.real_arch, args.device, batch)
            rates = throughput(models, images, batch)
            rows.append((batch, rates))
            if not refine:
                for name in ("sam (transformers)", "sam (segment_anything)"):
                    refine[name] = refine_latency(models[name], images[0], args.repeat)
        device = models["grounder"].device
    kind = "real architectures (default configs)" if args.real_arch else "tiny test models"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"\n{kind}, random weights, on {device} ({name}); {args.images} images of {width}x{height}, 3 phrases each"
    )
    print(
        f"\n{'batch':>5} | {'ground img/s':>12} | {'SAM-HF img/s':>12} | {'SAM-Meta img/s':>14} | {'ground+SAM-HF img/s':>19}"
    )
    print("-" * 76)
    for batch, r in rows:
        both = 1.0 / (1.0 / r["grounding"] + 1.0 / r["sam (transformers)"])
        print(
            f"{batch:>5} | {r['grounding']:>12.2f} | {r['sam (transformers)']:>12.2f} | "
            f"{r['sam (segment_anything)']:>14.2f} | {both:>19.2f}"
        )
    print(f"\nclick-to-refine (box + 1 click, median of {args.repeat}):")
    for name, (uncached, cached) in refine.items():
        print(f"  {name:<24} uncached {uncached * 1000:8.1f} ms   cached embedding {cached * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
