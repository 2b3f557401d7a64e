"""Inpaint test images by iterative decoding: one image for a figure (``inpaint_one``,
``inpaint_columns``, ``pipeline_stages``: the decoding that ``labcore.viz`` draws), or a whole
test set into the course's three folders under the output directory (``labcore inpaint``; its
flags: ``labcore.cli.inpaint``):

- ``test_results/image_XXX.png``   the inpainted image (one per test image; FID reads this folder)
- ``mask_scheduling/test_XXX.png`` a strip: the initial latent mask, then the mask after each
                                   step (white = known token, black = still masked), 4x enlarged
- ``imga/test_XXX.png``            a strip: the masked input, then the decoded image after each step
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image
from tqdm.auto import tqdm

from labcore.data import collate_test
from labcore.dataset_files import image_number
from labcore.decoding import DecodingSettings, decode_step
from labcore.maskgit import InpaintResult, MaskGit
from labcore.validate import integer

FOLDERS = ("test_results", "mask_scheduling", "imga")


def strip_number(name: str, fallback: int) -> str:
    """'image_012.png' -> '012': the course pairs test_XXX with image_XXX (the position without digits)."""
    number = image_number(name)
    return f"{int(number) if number is not None else fallback:03d}"


def mask_strip(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """(S+1, 16, 16) bool masks -> (S+1, 3, 16*patch, 16*patch) frames: white known, black masked."""
    known = (~masks).float()[:, None]                                           # (S+1, 1, 16, 16)
    return F.interpolate(known, scale_factor=patch, mode="nearest").expand(-1, 3, -1, -1)


def _strip(frames: torch.Tensor) -> torch.Tensor:
    return make_grid(frames, nrow=len(frames), padding=2, pad_value=0.5)       # (3, h, (S+1)*w) one row


def inpaint_one(maskgit: MaskGit, test_set, image_index: int, settings: DecodingSettings | None = None,
                step=decode_step) -> tuple[dict, InpaintResult]:
    """Inpaint test image ``image_index`` of ``test_set`` alone, seeded with the settings' seed:
    its item (name, image, mask, target) and the ``InpaintResult`` of a batch of one.
    The decoding a figure of one image draws (``labcore.viz.show_decoding``, ``pipeline_figure``);
    ``step``: the step function it decodes with (labcore's ``decode_step`` or yours)."""
    settings = DecodingSettings.resolve(settings)
    if not 0 <= image_index < len(test_set):
        raise ValueError(f"image_index must be in [0, {len(test_set) - 1}], got {image_index}")
    item = test_set[image_index]
    device = next(maskgit.parameters()).device
    image, mask = item["image"][None].to(device), item["mask"][None].to(device)  # (1, 3, 64, 64), (1, 1, 64, 64)
    return item, maskgit.inpaint(image, mask, settings, step=step)


def inpaint_columns(maskgit: MaskGit, test_set, image_index: int, settings: DecodingSettings | None,
                    columns: dict[str, dict], step=decode_step) -> tuple[dict, dict[str, InpaintResult]]:
    """Test image ``image_index`` inpainted once per column: ``columns`` maps a label to the
    settings' changes (e.g. ``{"S = 6": dict(sweet_spot=6)}``, ``{"τ = 0": dict(choice_temperature=0)}``).
    Every column starts from the settings' seed, so columns differ by their change alone. Returns
    the item and {label: InpaintResult}: what ``labcore.viz.sweet_spot_figure`` and
    ``decoding_order_figure`` draw."""
    if not columns:
        raise ValueError("columns: give at least one column (label -> settings changes)")
    settings = DecodingSettings.resolve(settings)
    results = {}
    for label, changes in columns.items():
        item, results[label] = inpaint_one(maskgit, test_set, image_index, settings.replace(**changes), step)
    return item, results


def pipeline_stages(maskgit: MaskGit, test_set, image_index: int = 250,
                    settings: DecodingSettings | None = None) -> dict:
    """What ``labcore.viz.pipeline_figure`` draws of test image ``image_index``, as its keyword
    arguments: the item, its ``InpaintResult`` with ``settings`` (default: the defaults), the
    (16, 16) codebook ids of the masked input (VQGAN encoder + quantiser), K, the normalisation
    and the settings: ``viz.pipeline_figure(**pipeline_stages(maskgit, test_set))``."""
    settings = DecodingSettings.resolve(settings)
    item, result = inpaint_one(maskgit, test_set, image_index, settings)
    image = item["image"][None].to(next(maskgit.parameters()).device)          # (1, 3, 64, 64)
    tokens = maskgit.encode_to_z(image).view(result.latent_mask.shape[-2:])     # (1, 256) -> (16, 16)
    return dict(item=item, result=result, tokens=tokens, num_codes=maskgit.num_codebook_vectors,
                normalization=test_set.normalization, settings=settings)


def inpaint_test_set(maskgit: MaskGit, test_set, output_dir: str | Path, settings: DecodingSettings | None = None,
                     batch_size: int = 32, limit: int | None = None, steps: bool = True,
                     device: torch.device | str = "cpu", progress: bool = True, strips: int | None = None,
                     step=decode_step) -> dict:
    """Inpaint ``test_set`` (a ``labcore.data.InpaintingTestSet``) with ``settings`` (default: the
    defaults) and write the course's folders. One random stream, seeded with the settings' seed,
    runs through every batch. ``steps=False`` writes test_results/ only; ``strips=N`` writes the
    per-step strips (mask_scheduling/, imga/) for the first N images only (each strip costs T extra
    VQGAN decodes per image: on a CPU most of the time). ``step``: the step function every batch
    decodes with (labcore's ``decode_step`` or your own with its signature: ``MaskGit.inpaint``).
    Returns {folder name: files written}."""
    settings = DecodingSettings.resolve(settings)
    batch_size = integer("batch_size", batch_size, 1)
    strips = None if strips is None else integer("strips", strips, 0)
    folders = {name: Path(output_dir) / name for name in (FOLDERS if steps else FOLDERS[:1])}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    maskgit = maskgit.to(device).eval()
    generator = settings.generator()  # CPU generator: the same numbers on every device
    count = len(test_set) if limit is None else min(limit, len(test_set))
    written = dict.fromkeys(folders, 0)
    for start in tqdm(range(0, count, batch_size), desc="inpaint", unit="batch", disable=not progress):
        batch = collate_test([test_set[i] for i in range(start, min(start + batch_size, count))])
        images, masks = batch["image"].to(device), batch["mask"].to(device)    # (B, 3, 64, 64), (B, 1, 64, 64)
        result = maskgit.inpaint(images, masks, settings, generator=generator, step=step)
        with_strips = len(images) if strips is None else max(0, min(len(images), strips - start))  # in this batch
        _write_batch(maskgit, result, batch, start, folders, test_set.normalization, with_strips if steps else 0,
                     written)
    return written


def _write_batch(maskgit: MaskGit, result: InpaintResult, batch: dict, start: int, folders: dict, norm,
                 with_strips: int, written: dict) -> None:
    """Save one batch's outputs to test_results/, and the strips of its first ``with_strips`` images
    to mask_scheduling/ and imga/; count the files in ``written``."""
    outputs = norm.denormalize(result.images.cpu()).clamp(0, 1)                # (B, 3, 64, 64) in [0, 1]
    if with_strips:
        step_images = norm.denormalize(result.trace.images(maskgit).cpu()).clamp(0, 1)  # (S, B, 3, 64, 64)
        step_masks = result.trace.masks().cpu()                                 # (S+1, B, 16, 16)
        inputs = norm.denormalize(batch["image"]).clamp(0, 1)                   # (B, 3, 64, 64)
    for b, name in enumerate(batch["name"]):
        save_image(outputs[b], folders["test_results"] / f"{Path(name).stem}.png")
        written["test_results"] += 1
        if b < with_strips:
            number = strip_number(name, start + b)
            save_image(_strip(mask_strip(step_masks[:, b], maskgit.patch)),
                       folders["mask_scheduling"] / f"test_{number}.png")
            save_image(_strip(torch.cat([inputs[b:b + 1], step_images[:, b]])), folders["imga"] / f"test_{number}.png")
            written["mask_scheduling"] += 1
            written["imga"] += 1
