"""Checker of exercise 2, images to tokens (the VQGAN of Esser et al. 2021 as MaskGIT's tokenizer).

What the student writes::

    def encode_to_z(vqgan, images):        # images (B, 3, 64, 64), normalised
        ...                                # -> (B, 256) long: one codebook id per 4x4 patch, row by row

(in the course, ``MaskGit.encode_to_z``; ``vqgan.encode(images)`` returns ``(z_q, indices,
loss)`` with indices (B, 16, 16)). The reference is the VQGAN's own nearest-codebook search,
``vqgan.encode_to_indices(images).flatten(1)`` (``labcore.maskgit.MaskGit.encode_to_z``),
deterministic: the ids must be equal, on a tiny random VQGAN whose ids spread over its codebook.
``reference_encode_to_z`` is that reference as a function of the same signature: what a notebook
runs instead of the student's function until it passes (``yours_or_reference``).
"""

from __future__ import annotations

import torch

from labcore.checkers.fixtures import tiny_vqgan
from labcore.checkers.report import CheckResult, call, describe, fail, ok, run_probes


@torch.no_grad()
def reference_encode_to_z(vqgan, images: torch.Tensor) -> torch.Tensor:
    """labcore's ``encode_to_z(vqgan, images)``: (B, 3, H, W) normalised -> (B, 256) long ids, row by
    row (``labcore.maskgit.MaskGit.encode_to_z`` without the MaskGit around the VQGAN)."""
    return vqgan.encode_to_indices(images).flatten(1)                                 # (B, 256)


def check_encode_to_z(encode_to_z, seed: int = 0) -> CheckResult:
    """Run ``encode_to_z(vqgan, images)`` on two random images and a tiny VQGAN (K = 32 codes);
    compare with the VQGAN's own ids. ``str()`` of the result is the report."""
    state: dict = {}

    def setup():
        vqgan = tiny_vqgan(K=32, seed=seed)
        images = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            encoded = vqgan.encoder(images)                                       # (B, D, 16, 16)
            z = vqgan.quant_conv(encoded)                                         # (B, D, 16, 16)
            z_q, ids, _ = vqgan.codebook(z)                                       # (B, D, 16, 16), (B, 16, 16)
            raw = encoded.permute(0, 2, 3, 1).reshape(-1, z.shape[1])             # (B*256, D)
            skipped = vqgan.codebook.nearest(raw).view(ids.shape)                 # (B, 16, 16) without quant_conv
        state.update(vqgan=vqgan, images=images, ids=ids, z_q=z_q, skipped=skipped)

    return run_probes("check_encode_to_z", [
        ("returns (B, 256) long token ids", lambda: _probe_shape(encode_to_z, state)),
        ("the VQGAN's nearest-codebook ids, row by row", lambda: _probe_ids(state)),
        ("one image alone gives the same ids", lambda: _probe_alone(encode_to_z, state)),
    ], "encode.error", seed, setup)


def _probe_shape(encode_to_z, state):
    name = "returns (B, 256) long token ids"
    with torch.no_grad():
        out = call(encode_to_z, state["vqgan"], state["images"])
    ids, B = state["ids"], len(state["images"])
    want = f"expected tensor (2, 256) int64, got {describe(out)}"
    if isinstance(out, (tuple, list)):
        return fail(name, "encode.returns_tuple", want)
    if not torch.is_tensor(out):
        return fail(name, "encode.shape", want)
    if out.is_floating_point():
        # D floats per token (z_q, or z before quantisation, in any layout): vectors, not ids
        is_vectors = out.numel() == state["z_q"].numel()
        return fail(name, "encode.returns_vectors" if is_vectors else "encode.dtype", want)
    if out.dtype != torch.long:
        return fail(name, "encode.dtype", want)
    if out.shape != (B, ids[0].numel()):
        return fail(name, "encode.shape", want)
    state["out"] = out
    return ok(name)


def _first_difference(got: torch.Tensor, want: torch.Tensor) -> str:
    i = (got != want).nonzero()[0].tolist()
    return (f"{int((got != want).sum())} of {got.numel()} ids differ; first at image {i[0]}, token {i[1]}: "
            f"expected {want[tuple(i)].item()}, got {got[tuple(i)].item()}")


def _probe_ids(state):
    name = "the VQGAN's nearest-codebook ids, row by row"
    out, ids = state["out"], state["ids"]
    if torch.equal(out, ids.flatten(1)):
        return ok(name)
    detail = _first_difference(out, ids.flatten(1))
    if torch.equal(out, ids.transpose(1, 2).flatten(1)):
        return fail(name, "encode.transposed", detail)
    if torch.equal(out, state["skipped"].flatten(1)):
        return fail(name, "encode.skips_quant_conv", detail)
    return fail(name, "encode.wrong_ids", detail)


def _probe_alone(encode_to_z, state):
    name = "one image alone gives the same ids"
    with torch.no_grad():
        alone = call(encode_to_z, state["vqgan"], state["images"][1:])
    want = state["ids"][1:].flatten(1)
    if torch.is_tensor(alone) and alone.shape == want.shape and torch.equal(alone.long(), want):
        return ok(name)
    got = f"got {describe(alone)}" if not (torch.is_tensor(alone) and alone.shape == want.shape) else \
        _first_difference(alone.long(), want)
    return fail(name, "encode.wrong_ids", f"images[1:] (one image): expected the same ids as in the batch; {got}")
