"""Load every configured pipeline backend, run it on one image, report timings or what is missing."""

from __future__ import annotations

import io
import mimetypes
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from PIL import Image as PILImage
from skimage import (
    data as skimage_data,  # sample photographs shipped with the package: no network
)

from annotations.models import Image
from ml.config import get_registry
from ml.inputs import image_input
from ml.stages.check import check
from ml.stages.types import ImageInput


def _file_input(path: Path) -> ImageInput:
    data = path.read_bytes()
    with PILImage.open(io.BytesIO(data)) as im:
        width, height = im.size
    return ImageInput(key=path.name, data=data, width=width, height=height, mime_type=mimetypes.guess_type(path.name)[0] or "image/jpeg")


def _demo_input() -> ImageInput:
    buf = io.BytesIO()
    PILImage.fromarray(skimage_data.astronaut()).save(buf, format="JPEG", quality=90)
    return ImageInput(key="skimage-astronaut", data=buf.getvalue(), width=512, height=512, mime_type="image/jpeg")


class Command(BaseCommand):
    help = "Load every configured ML backend, run it on one image and print what loaded, from where and how long each stage took."

    def add_arguments(self, parser):
        parser.add_argument("--image", type=int, help="Database id of the image to run on (default: the first image, else a sample photo).")
        parser.add_argument("--file", type=Path, help="An image file to run on instead.")
        parser.add_argument("--no-run", action="store_true", help="Only load the backends.")
        parser.add_argument(
            "--throughput", type=int, default=8, metavar="N",
            help="Then run each stage on N copies of the image and print images/s per stage (default 8; "
                 "each API stage makes N more calls; 0 skips it).",
        )

    def handle(self, *args, image=None, file=None, no_run=False, throughput=8, **options):
        source = settings.EMOVERSE_ML_CONFIG or "(EMOVERSE_ML_CONFIG is not set: nothing is configured)"
        self.stdout.write(f"Configuration: {source}")
        target, readable = None, True
        if not no_run:
            try:
                target = self._target(image, file)
            except (OSError, ValueError) as exc:  # a missing or unreadable file: load the backends anyway
                readable = False
                self.stdout.write(f"  FAILED   read the image: {type(exc).__name__}: {exc}")
        if throughput < 0:
            raise CommandError("--throughput must be 0 or more")
        if not check(get_registry(), target, self.stdout, throughput=throughput) or not readable:
            raise CommandError("ml_check found missing or failing stages (see above).")

    def _target(self, image: int | None, file: Path | None) -> ImageInput:
        if file is not None:
            if not file.is_file():
                raise CommandError(f"{file} is not a file")
            return _file_input(file)
        if image is not None:
            found = Image.objects.filter(pk=image).first()
            if found is None:
                raise CommandError(f"no image with id {image}")
            return image_input(found)
        first = Image.objects.order_by("id").first()
        return image_input(first) if first is not None else _demo_input()
