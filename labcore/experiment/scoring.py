"""Scoring a row: inpaint the test set as the row says, then FID against the ground truth (the
slow part: Inception), and two columns that need no Inception: ``psnr_masked``, the PSNR in dB of
the missing pixels only (mask == 0, images in [0, 1], mean over images), and ``token_acc``, the
share of the tokens the decoder fills (the latent mask) that equal the tokenizer's tokens of the
ground truth (1 for the oracle by definition; None for the mean colour, which has no tokens).
Outputs are clamped to [0, 1], as the PNGs ``labcore inpaint`` writes are.
"""

from __future__ import annotations

import dataclasses
import time
from functools import cached_property

import torch
from tqdm.auto import tqdm

from .. import fid, fid_files
from ..data import InpaintingTestSet, collate_test
from ..decoding import decode_step
from ..decoding_variants import CORRECT_STEP, classic_steps
from ..maskgit import MaskGit, latent_mask, paste_known_pixels
from ..metrics import psnr_masked
from ..runtime import pick_device
from .rows import MEAN_FILL, ORACLE, Row


def load_test_tensors(test_set: InpaintingTestSet, limit: int | None = None, progress: bool = True) -> dict:
    """The first ``limit`` test items as stacked tensors (images, masks, targets normalised)."""
    count = len(test_set) if limit is None else min(limit, len(test_set))
    items = [test_set[i] for i in tqdm(range(count), desc="load test set", leave=False, disable=not progress)]
    batch = collate_test(items)
    if batch["target"] is None:
        raise ValueError("the test set has no ground truth (no ground_truth/ folder or test_gt.csv): FID needs one")
    return batch


class Experiment:
    """Scores inpainting settings on one test set with one MaskGit: FID against the ground truth,
    PSNR of the holes and token accuracy. The reference statistics and the tokens are computed on
    first use, so a resumed run with nothing left to do computes neither. ``own_steps``: step
    column -> step function, beside labcore's (a student's step, ``labcore experiment --step``)."""

    def __init__(self, maskgit: MaskGit, test_set: InpaintingTestSet, limit: int | None = None,
                 batch_size: int = 64, device: str = "auto", fid_batch_size: int = 50, progress: bool = True,
                 own_steps: dict | None = None):
        self.device = pick_device(device)
        self.maskgit = maskgit.to(self.device).eval()
        self.test_set, self.norm = test_set, test_set.normalization
        self.batch_size, self.fid_batch_size, self.progress = batch_size, fid_batch_size, progress
        self.own_steps = dict(own_steps or {})
        data = load_test_tensors(test_set, limit, progress)
        self.images, self.masks, self.targets = data["image"], data["mask"], data["target"]  # (N,3|1|3,64,64)
        self.targets01 = self.norm.denormalize(self.targets).clamp(0, 1)          # (N,3,64,64) in [0,1]
        self.count = len(self.images)
        fid.note_if_few(self.count, "compare only scores within this table")  # said once here, not once per row

    @cached_property
    def reference(self) -> fid.Stats:
        """Inception statistics of the ground truth's first ``count`` images, from the activations
        shipped beside it (or cached on disk) when there are some, else computed once."""
        limit = None if self.count == len(self.test_set) else self.count
        return fid_files.load_or_compute_stats(self.test_set.gt_source, batch_size=self.fid_batch_size,
                                               device=self.device, limit=limit, progress=self.progress)

    @cached_property
    @torch.no_grad()
    def encoded(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per batch: the input's tokens (b, 256), the latent mask (b, 16, 16) and the truth's tokens (b, 256)."""
        batches = []
        for lo in range(0, self.count, self.batch_size):
            part = slice(lo, lo + self.batch_size)
            tokens = self.maskgit.encode_to_z(self.images[part].to(self.device))  # (b, 256), encoded once
            masked = latent_mask(self.masks[part].to(self.device), patch=self.maskgit.patch)  # (b, 16, 16)
            truth = self.maskgit.encode_to_z(self.targets[part].to(self.device))  # (b, 256)
            batches.append((tokens, masked, truth))
        return batches

    @cached_property
    def steps(self) -> dict:
        """Step column -> step function: labcore's ``decode_step``, every classic mistake, ``own_steps``."""
        return {CORRECT_STEP: decode_step, **classic_steps(self.maskgit), **self.own_steps}

    def fid_of(self, images01: torch.Tensor) -> float:
        """FID of (N, 3, 64, 64) images in [0, 1] against the ground truth (the small-sample note
        was given once, in __init__)."""
        return fid_files.fid_of_folder(images01, self.reference, self.fid_batch_size, self.device,
                                       progress=self.progress, note_few=False).fid

    def score(self, setting: Row, images01: torch.Tensor, token_acc: float | None, start: float) -> Row:
        """The finished row: the setting, the three measures, the image count and the wall time."""
        return dataclasses.replace(
            setting, fid=round(self.fid_of(images01), 3),
            psnr_masked=round(psnr_masked(images01, self.targets01, self.masks), 3),
            token_acc=None if token_acc is None else round(token_acc, 4),
            images=self.count, seconds=round(time.perf_counter() - start, 1))

    def run(self, setting: Row) -> Row:
        """Compute one row: a baseline or a decoding setting (``decoding_setting``)."""
        start = time.perf_counter()
        if setting.kind == ORACLE:
            return self.score(setting, self.oracle_images(), 1.0, start)  # its tokens ARE the truth's
        if setting.kind == MEAN_FILL:
            return self.score(setting, self.mean_fill_images(), None, start)
        return self.score(setting, *self.decode(setting), start)

    @torch.no_grad()
    def decode(self, setting: Row) -> tuple[torch.Tensor, float]:
        """Inpaint every test image with ``setting``: images in [0, 1] (N,3,64,64) and the token accuracy."""
        settings = setting.settings()
        generator = settings.generator()  # one stream through every batch, the same numbers on any device
        step = self.steps[setting.step or CORRECT_STEP]
        outputs, hits, filled = [], 0, 0
        for b, (tokens, masked, truth) in enumerate(self.encoded):
            final, _ = self.maskgit.decode_tokens(tokens, masked, settings, generator=generator, step=step)  # (b,16,16)
            hits += int((final.flatten(1) == truth)[masked.flatten(1)].sum())
            filled += int(masked.sum())
            images = self.maskgit.decode_z(final).cpu()                          # (b,3,64,64) normalised
            if settings.paste_known:
                part = slice(b * self.batch_size, b * self.batch_size + len(images))
                images = paste_known_pixels(self.images[part], self.masks[part], images)
            outputs.append(self.norm.denormalize(images).clamp(0, 1))           # (b,3,64,64) in [0,1]
        return torch.cat(outputs), hits / max(filled, 1)

    @torch.no_grad()
    def oracle_images(self) -> torch.Tensor:
        """VQGAN reconstruction of the ground truth: the best any token prediction can do."""
        outputs = [self.maskgit.decode_z(truth).cpu() for _, _, truth in self.encoded]  # (b,3,64,64) each
        return self.norm.denormalize(torch.cat(outputs)).clamp(0, 1)            # (N,3,64,64)

    def mean_fill_images(self) -> torch.Tensor:
        """The masked input with every hole filled by the mean colour of the image's known pixels."""
        images01, known = self.norm.denormalize(self.images), self.masks        # (N,3,64,64), (N,1,64,64)
        mean = (images01 * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        return paste_known_pixels(images01, known, mean.expand_as(images01)).clamp(0, 1)  # (N,3,64,64)
