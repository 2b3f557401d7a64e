"""Checker of exercise 1, images to tokens (the VQGAN of Esser et al. 2021 as MaskGIT's tokenizer).

What the student writes::

    def encode_to_z(vqgan, images):        # images (B, 3, 64, 64), normalised
        ...                                # -> (B, 256) long: one codebook id per 4x4 patch, row by row

(in the course, ``MaskGit.encode_to_z``; ``vqgan.encode(images)`` returns ``(z_q, indices,
loss)`` with indices (B, 16, 16)). The ids are deterministic: they must equal the VQGAN's own
nearest-codebook ids, on a tiny random VQGAN whose ids spread over its codebook, for a batch of
two, one image alone and two other images. The ids feed ``nn.Embedding`` and the transformer, so
labcore's code needs one torch tensor of dtype long; lists, arrays and other dtypes are named as
such. The images and the VQGAN must come back as they were.

The VQGAN's own ``encode_to_indices`` is the answer (``MaskGit.encode_to_z`` calls it): the check
spies on it (``Tripwire``) and reports ``encode.uses_reference`` when the student's code calls it;
``vqgan.encode`` and the VQGAN's parts stay allowed. ``reference_encode_to_z`` is that reference as
a function of the same signature: what a notebook runs instead of the student's function until it
passes (``yours_or_reference``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import torch

from labcore.checkers.fallback import record
from labcore.checkers.fixtures import tiny_vqgan
from labcore.checkers.ownership import Tripwire
from labcore.checkers.report import CheckResult, call, describe, fail, ok, run_probes, unchanged, uses_reference

_LEAVES = "leaves the images and the VQGAN as they were"


@torch.no_grad()
def reference_encode_to_z(vqgan, images: torch.Tensor) -> torch.Tensor:
    """labcore's ``encode_to_z(vqgan, images)``: (B, 3, H, W) normalised -> (B, 256) long ids, row by
    row (``labcore.maskgit.MaskGit.encode_to_z`` without the MaskGit around the VQGAN)."""
    return vqgan.encode_to_indices(images).flatten(1)                                 # (B, 256)


def check_encode_to_z(encode_to_z, seed: int = 0) -> CheckResult:
    """Run ``encode_to_z(vqgan, images)`` on a tiny VQGAN (K = 32 codes): two random images, the
    second alone, two others; compare with the VQGAN's own ids. ``str()`` of the result is the report."""
    state: dict = {}

    def setup():
        vqgan = copy.deepcopy(_tiny_vqgan(seed))                                # the student may change it
        # this check's own subclass: the spy on the answer sits on the class, so that
        # type(vqgan).encode_to_indices(vqgan, x) is seen as well as vqgan.encode_to_indices(x)
        vqgan.__class__ = type("VQGAN", (type(vqgan),), {})
        images, others = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64) * 0.7 + 0.2  # (2, 3, 64, 64) each
        state.update(vqgan=vqgan, images=images, others=others, spy=Tripwire(type(vqgan), "encode_to_indices"))
        state.update(_expected(vqgan, images))

    result = run_probes("check_encode_to_z", [
        ("returns (B, 256) long token ids", lambda: _probe_shape(encode_to_z, state)),
        ("the VQGAN's nearest-codebook ids, row by row", lambda: _probe_ids(state)),
        ("one image alone gives the same ids", lambda: _probe_again(encode_to_z, state, "alone")),
        ("two other images give their own ids", lambda: _probe_again(encode_to_z, state, "others")),
        (_LEAVES, lambda: state.get("moved") or ok()),
    ], "encode.error", seed, setup, own=encode_to_z)
    if result.mistakes == ["encode.uses_reference"]:   # caught by the spy in the first probe: no type to fix
        result.notes = [n for n in result.notes if not n.startswith("the other checks were skipped")]
    return record("encode_to_z", encode_to_z, result)


@functools.lru_cache(maxsize=4)
def _tiny_vqgan(seed: int):
    """The check's VQGAN, built once per seed (0.1 s); each check runs on a copy of it."""
    return tiny_vqgan(K=32, seed=seed, spread_codebook=True)


@torch.no_grad()
def _expected(vqgan, images: torch.Tensor) -> dict:
    """The right ids, the size of z_q, and the ids of the encoder's output without quant_conv."""
    encoded = vqgan.encoder(images)                                       # (B, D, 16, 16)
    z = vqgan.quant_conv(encoded)                                         # (B, D, 16, 16)
    z_q, ids, _ = vqgan.codebook(z)                                       # (B, D, 16, 16), (B, 16, 16)
    raw = encoded.permute(0, 2, 3, 1).reshape(-1, z.shape[1])             # (B*256, D)
    skipped = vqgan.codebook.nearest(raw).view(ids.shape)                 # (B, 16, 16) without quant_conv
    return {"ids": ids, "z_q_numel": z_q.numel(), "skipped": skipped}


def _encode(encode_to_z, state: dict, images: torch.Tensor) -> tuple:
    """The student's ids for ``images``, on copies of the images and of the VQGAN, and a
    ``encode.uses_reference`` finding when it called the VQGAN's ``encode_to_indices``. A change to
    either copy is kept in ``state["moved"]`` (the first one), labelled as the last probe that
    reports it (the first probe reports it too when it fails: the others are then skipped)."""
    vqgan, x = copy.deepcopy(state["vqgan"]), images.clone()
    with torch.no_grad():
        out = call(encode_to_z, vqgan, x)
    found = [uses_reference("encode", "your code calls vqgan.encode_to_indices, the VQGAN's own answer to this "
                                      "exercise")] if state["spy"].tripped else []
    moved = unchanged("encode.mutates_input", [images], [x], ("images",))
    if moved.ok and not _same_model(state["vqgan"], vqgan):
        moved = fail("encode.mutates_input", "your function changed the VQGAN it was given (its weights, "
                     "dtype, layers or train/eval mode)")
    if not moved.ok:
        state.setdefault("moved", dataclasses.replace(moved, label=_LEAVES))
    return out, found


def _same_model(original, used) -> bool:
    """Whether ``used`` (a copy of ``original`` the student's code ran on) is still equal to it."""
    a, b = original.state_dict(), used.state_dict()
    return type(used) is type(original) and used.training == original.training and a.keys() == b.keys() and \
        all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


def _type_shape(out, state: dict, batch: int):
    """None when ``out`` is a (batch, 256) long tensor, else the finding that names what it is."""
    want = f"expected tensor ({batch}, 256) int64, got {describe(out)}"
    if isinstance(out, (tuple, list)) and any(torch.is_tensor(o) and (o.is_floating_point() or o.dim() == 0)
                                              for o in out):
        return fail("encode.returns_tuple", want)                  # (z_q, ids, loss) or (z_q, ids)
    if not torch.is_tensor(out):
        return fail("encode.not_a_tensor", want)                   # list, array, number, None
    if out.is_floating_point() and out.numel() == state["z_q_numel"] * batch // len(state["images"]):
        return fail("encode.returns_vectors", want)                # D floats per token, in any layout
    if out.dtype != torch.long:
        return fail("encode.dtype", want)
    if out.shape != (batch, state["ids"][0].numel()):
        return fail("encode.shape", want)
    return None


def _probe_shape(encode_to_z, state):
    out, found = _encode(encode_to_z, state, state["images"])
    if found:
        return found                                                      # uses_reference: nothing else is theirs
    wrong = _type_shape(out, state, len(state["images"]))
    state["out"] = out
    return ok() if wrong is None else [wrong, *[m for m in [state.get("moved")] if m]]


def _first_difference(got: torch.Tensor, want: torch.Tensor) -> str:
    i = (got != want).nonzero()[0].tolist()
    return (f"{int((got != want).sum())} of {got.numel()} ids differ; first at image {i[0]}, token {i[1]}: "
            f"expected {want[tuple(i)].item()}, got {got[tuple(i)].item()}")


def _diagnose(out: torch.Tensor, ids: torch.Tensor, skipped: torch.Tensor | None, where: str = ""):
    """ok when ``out`` (B, 256) equals ``ids`` (B, 16, 16) row by row, else the closest mistake."""
    want = ids.flatten(1)                                                 # (B, 256)
    if torch.equal(out, want):
        return ok()
    detail = where + _first_difference(out, want)
    if torch.equal(out, ids.transpose(1, 2).flatten(1)):
        return fail("encode.transposed", detail)
    if skipped is not None and torch.equal(out, skipped.flatten(1)):
        return fail("encode.skips_quant_conv", detail)
    if torch.equal(out.sort(1).values, want.sort(1).values):
        return fail("encode.wrong_order", detail + "\n(each image's ids are right, in another order)")
    if torch.equal(out.flatten().sort().values, want.flatten().sort().values):
        return fail("encode.mixes_images", detail + "\n(the batch's ids are right, but spread over other images)")
    return fail("encode.wrong_ids", detail)


def _probe_ids(state):
    return _diagnose(state["out"], state["ids"], state["skipped"])


def _probe_again(encode_to_z, state, which: str):
    """The second image alone (a batch of one: a hard-coded B, or ids that depend on the rest of the
    batch, show), or two other images, a batch of the same shape (a cached answer shows)."""
    images = state["images"][1:] if which == "alone" else state["others"]  # (1, 3, 64, 64) or (2, 3, 64, 64)
    expected = {"ids": state["ids"][1:], "skipped": state["skipped"][1:]} if which == "alone" else \
        _expected(state["vqgan"], images)
    out, found = _encode(encode_to_z, state, images)
    if found:
        return found
    where = "images[1:] (one image): " if which == "alone" else "two other images: "
    wrong = _type_shape(out, state, len(images))
    if wrong is not None:
        wrong.detail = where + wrong.detail
        return wrong
    return _diagnose(out, expected["ids"], expected["skipped"], where)
