"""Adversarial suite of ``check_encode_to_z`` (exercise 1), written from notebook 00's signature and
docstring only, by someone trying to fool the checker:

    @torch.no_grad()
    def encode_to_z(vqgan, images):
        '''vqgan.encode(images) returns (z_q, indices, loss): z_q (B, D, 16, 16), indices (B, 16, 16).
        images (B, 3, 64, 64), normalised.  returns: (B, 256) long, row by row (token 16 * i + j).'''

Containers and dtypes that hold the right numbers, wrong shapes and hard-coded batch sizes, every
other order of the 256 ids (transposed, flipped, shifted, sorted, mixed across images), the encoder
without quant_conv, ids that only look right, a cache, inputs changed in place (the images, the
VQGAN's weights or mode), and labcore's own answer reached every way (the reference function, the
VQGAN's ``encode_to_indices`` by instance, class, ``getattr``, MaskGit's method, aliases, helpers,
imports inside, partials, lambdas, callable objects) must each be named; encoders written unlike
labcore's must pass.
"""

from __future__ import annotations

import functools
import types

import pytest
import torch

from labcore.checkers import (
    check_encode_to_z,
    reference_encode_to_z as my_tokens,  # an alias of labcore's
)
from labcore.checkers.tokens import reference_encode_to_z
from labcore.maskgit import MaskGit
from labcore.vqgan import VQGAN

from adversarial_cases import Case, assert_case

CHECK = check_encode_to_z
pytestmark = pytest.mark.usefixtures("one_thread")


def _ids(vqgan, images):
    return vqgan.encode(images)[1]                                        # (B, 16, 16)


def _z(vqgan, images):
    return vqgan.quant_conv(vqgan.encoder(images))                        # (B, D, 16, 16)


# ----------------------------------------------------------------------------- containers, types, shapes

def whole_tuple(vqgan, images):
    return vqgan.encode(images)


def z_q_and_ids(vqgan, images):
    z_q, ids, _ = vqgan.encode(images)
    return z_q, ids.flatten(1)


def ids_and_loss(vqgan, images):
    _, ids, loss = vqgan.encode(images)
    return ids.flatten(1), loss


def as_list(vqgan, images):
    return _ids(vqgan, images).flatten(1).tolist()


def as_numpy(vqgan, images):
    return _ids(vqgan, images).flatten(1).numpy()


def tuple_of_rows(vqgan, images):
    return tuple(_ids(vqgan, images).flatten(1))


def list_of_rows(vqgan, images):
    return [row for row in _ids(vqgan, images).flatten(1)]


def forgot_return(vqgan, images):
    _ids(vqgan, images).flatten(1)


def z_q(vqgan, images):
    return vqgan.encode(images)[0]


def z_q_flat(vqgan, images):
    return vqgan.encode(images)[0].flatten(1)


def z_q_tokens_last(vqgan, images):
    z = vqgan.encode(images)[0]
    return z.permute(0, 2, 3, 1).reshape(len(images), 256, -1)             # (B, 256, D)


def unquantised(vqgan, images):
    return _z(vqgan, images)                                               # the encoder's vectors, before the codebook


def map_16x16(vqgan, images):
    return _ids(vqgan, images)


def flat_batch(vqgan, images):
    return _ids(vqgan, images).flatten()


def hard_coded_batch(vqgan, images):
    return _ids(vqgan, images).view(2, -1)


def extra_axis(vqgan, images):
    return _ids(vqgan, images).flatten(1).unsqueeze(1)                     # (B, 1, 256)


def tokens_first(vqgan, images):
    return _ids(vqgan, images).flatten(1).T                                # (256, B)


def column(vqgan, images):
    return _ids(vqgan, images).reshape(-1, 1)


def int32(vqgan, images):
    return _ids(vqgan, images).flatten(1).int()


def float_ids(vqgan, images):
    return _ids(vqgan, images).flatten(1).float()


def int16(vqgan, images):
    return _ids(vqgan, images).flatten(1).to(torch.int16)


def float64_ids(vqgan, images):
    return _ids(vqgan, images).flatten(1).double()


def uint8(vqgan, images):
    return _ids(vqgan, images).flatten(1).to(torch.uint8)


# ----------------------------------------------------------------------------- orders, values

def transposed(vqgan, images):
    return _ids(vqgan, images).permute(0, 2, 1).reshape(len(images), -1)


def transposed_mT(vqgan, images):
    return _ids(vqgan, images).mT.flatten(1)


def rows_reversed(vqgan, images):
    return _ids(vqgan, images).flip(1).flatten(1)


def sequence_reversed(vqgan, images):
    return _ids(vqgan, images).flatten(1).flip(1)


def sorted_ids(vqgan, images):
    return _ids(vqgan, images).flatten(1).sort(1).values


def shifted_by_one(vqgan, images):
    return torch.roll(_ids(vqgan, images).flatten(1), 1, dims=1)


def batch_axis_last(vqgan, images):
    return _ids(vqgan, images).permute(1, 2, 0).reshape(len(images), -1)


def viewed_the_wrong_way(vqgan, images):
    return _ids(vqgan, images).view(-1, len(images)).t()                   # (256, B) then .t(): mixes images


def without_quant_conv(vqgan, images):
    return vqgan.codebook(vqgan.encoder(images))[1].flatten(1)


def nearest_of_encoder(vqgan, images):
    e = vqgan.encoder(images)                                              # (B, D, 16, 16)
    return vqgan.codebook.nearest(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1])).view(len(images), -1)


def renormalised(vqgan, images):
    return _ids(vqgan, images * 2 - 1).flatten(1)


def divided_by_255(vqgan, images):
    return _ids(vqgan, images / 255).flatten(1)


def farthest(vqgan, images):
    z = _z(vqgan, images).permute(0, 2, 3, 1).reshape(-1, 8)              # (B*256, D)
    return torch.cdist(z, vqgan.codebook.embedding.weight).argmax(1).view(len(images), -1)


def dot_product(vqgan, images):
    z = _z(vqgan, images).permute(0, 2, 3, 1)                              # (B, 16, 16, D)
    return (z @ vqgan.codebook.embedding.weight.T).argmax(-1).flatten(1)   # most similar, not nearest


def first_image_only(vqgan, images):
    return _ids(vqgan, images[:1]).flatten(1).expand(len(images), -1)


def batch_normalised(vqgan, images):
    return _ids(vqgan, (images - images.mean()) / images.std()).flatten(1)


_CACHE: dict = {}


def cached_by_shape(vqgan, images):
    key = tuple(images.shape)
    if key not in _CACHE:
        _CACHE[key] = _ids(vqgan, images).flatten(1)
    return _CACHE[key]


def one_based(vqgan, images):
    return _ids(vqgan, images).flatten(1) + 1


def constant(vqgan, images):
    return torch.zeros(len(images), 256, dtype=torch.long)


# ----------------------------------------------------------------------------- inputs changed in place

def clamps_images(vqgan, images):
    return _ids(vqgan, images.clamp_(-1, 1)).flatten(1)


def centres_images(vqgan, images):
    images -= images.mean()
    return _ids(vqgan, images).flatten(1)


def train_mode(vqgan, images):
    vqgan.train()
    return _ids(vqgan, images).flatten(1)


def nudges_codebook(vqgan, images):
    vqgan.codebook.embedding.weight.data.mul_(1.0001)
    return _ids(vqgan, images).flatten(1)


def converts_to_float64(vqgan, images):
    vqgan.double()                                                         # converts the caller's model in place
    return _ids(vqgan, images.double()).flatten(1)


def drops_quant_conv(vqgan, images):
    vqgan.quant_conv = torch.nn.Identity()                                 # replaces a layer of the caller's model
    return _ids(vqgan, images).flatten(1)


# ----------------------------------------------------------------------------- errors

def missing_method(vqgan, images):
    return vqgan.encode_to_z(images)


def assumes_two(vqgan, images):
    assert len(images) == 2
    return _ids(vqgan, images).flatten(1)


def swapped_arguments(images, vqgan):
    return _ids(vqgan, images).flatten(1)


# ----------------------------------------------------------------------------- labcore's answer

def calls_reference(vqgan, images):
    return reference_encode_to_z(vqgan, images)


def calls_alias(vqgan, images):
    return my_tokens(vqgan, images)


def _helper(v, x):
    return reference_encode_to_z(v, x)


def via_helper(vqgan, images):
    return _helper(vqgan, images).long()


def imports_inside(vqgan, images):
    from labcore.checkers.tokens import reference_encode_to_z as enc
    return enc(vqgan, images)


def encode_to_indices(vqgan, images):
    return vqgan.encode_to_indices(images).flatten(1)


def encode_to_indices_of_class(vqgan, images):
    return type(vqgan).encode_to_indices(vqgan, images).flatten(1)


def vqgan_class_imported(vqgan, images):
    return VQGAN.encode_to_indices(vqgan, images).flatten(1)


def maskgit_method(vqgan, images):
    return MaskGit.encode_to_z(types.SimpleNamespace(vqgan=vqgan), images)


def getattr_by_name(vqgan, images):
    return getattr(vqgan, "encode_to_" + "indices")(images).flatten(1)


def only_for_one_image(vqgan, images):
    if len(images) == 1:
        return vqgan.encode_to_indices(images).flatten(1)
    return _ids(vqgan, images).flatten(1)


class MyMaskGit(MaskGit):
    pass


def subclass_of_maskgit(vqgan, images):
    return MyMaskGit.encode_to_z(types.SimpleNamespace(vqgan=vqgan), images)


class Encoder:
    def __call__(self, vqgan, images):
        return reference_encode_to_z(vqgan, images)


# ----------------------------------------------------------------------------- correct, unlike labcore's

@torch.no_grad()
def as_in_the_notebook(vqgan, images):
    _, indices, _ = vqgan.encode(images)
    return indices.flatten(1)


def codebook_module(vqgan, images):
    with torch.no_grad():
        return vqgan.codebook(_z(vqgan, images))[1].reshape(len(images), 256)


def by_cdist(vqgan, images):
    z = _z(vqgan, images)                                                  # (B, D, 16, 16)
    B, D, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)                            # (B*256, D)
    return torch.cdist(flat, vqgan.codebook.embedding.weight).argmin(1).view(B, h * w)


def by_broadcast(vqgan, images):
    z = _z(vqgan, images).permute(0, 2, 3, 1)                              # (B, h, w, D)
    e = vqgan.codebook.embedding.weight                                    # (K, D)
    return ((z.unsqueeze(-2) - e) ** 2).sum(-1).argmin(-1).flatten(1).long()


def image_by_image(vqgan, images):
    return torch.stack([vqgan.encode(img[None])[1].reshape(-1) for img in images])


def explicit_positions(vqgan, images):
    ids = _ids(vqgan, images)                                              # (B, 16, 16)
    out = torch.empty(len(images), 256, dtype=torch.long)
    for i in range(16):
        for j in range(16):
            out[:, 16 * i + j] = ids[:, i, j]
    return out


def expanded_square(vqgan, images):
    z = _z(vqgan, images).flatten(2).transpose(1, 2)                       # (B, 256, D)
    e = vqgan.codebook.embedding.weight                                    # (K, D)
    d = (z ** 2).sum(-1, keepdim=True) - 2 * z @ e.T + (e ** 2).sum(-1)    # (B, 256, K)
    return d.argmin(-1)


def device_idiom(vqgan, images):
    device = next(vqgan.parameters()).device
    return torch.flatten(_ids(vqgan, images.to(device)), start_dim=1).detach()


def reshape_by_len(vqgan, images):
    return _ids(vqgan, images).reshape(len(images), -1).contiguous()


def nearest_of_quant_conv(vqgan, images):
    z = _z(vqgan, images)                                                  # (B, D, 16, 16)
    return vqgan.codebook.nearest(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])).view(len(images), -1)


CASES = [
    Case("the whole (z_q, ids, loss) tuple", whole_tuple, "encode.returns_tuple"),
    Case("(z_q, ids)", z_q_and_ids, "encode.returns_tuple"),
    Case("(ids, loss)", ids_and_loss, "encode.returns_tuple"),
    Case("a list (tolist)", as_list, "encode.not_a_tensor"),
    Case("a numpy array", as_numpy, "encode.not_a_tensor"),
    Case("a tuple of rows", tuple_of_rows, "encode.not_a_tensor"),
    Case("a list of rows", list_of_rows, "encode.not_a_tensor"),
    Case("forgot return (None)", forgot_return, "encode.not_a_tensor"),
    Case("z_q", z_q, "encode.returns_vectors"),
    Case("z_q flattened", z_q_flat, "encode.returns_vectors"),
    Case("z_q (B, 256, D)", z_q_tokens_last, "encode.returns_vectors"),
    Case("the vectors before the codebook", unquantised, "encode.returns_vectors"),
    Case("the (B, 16, 16) map", map_16x16, "encode.shape"),
    Case("one row for the batch", flat_batch, "encode.shape"),
    Case("batch size hard-coded to 2", hard_coded_batch, "encode.shape"),
    Case("(B, 1, 256)", extra_axis, "encode.shape"),
    Case("(256, B)", tokens_first, "encode.shape"),
    Case("one column", column, "encode.shape"),
    Case("int32", int32, "encode.dtype"),
    Case("float32 ids", float_ids, "encode.dtype"),
    Case("int16", int16, "encode.dtype"),
    Case("float64 ids", float64_ids, "encode.dtype"),
    Case("uint8", uint8, "encode.dtype"),
    Case("column by column", transposed, "encode.transposed"),
    Case("column by column (mT)", transposed_mT, "encode.transposed"),
    Case("rows reversed", rows_reversed, "encode.wrong_order"),
    Case("sequence reversed", sequence_reversed, "encode.wrong_order"),
    Case("sorted ids", sorted_ids, "encode.wrong_order"),
    Case("shifted by one", shifted_by_one, "encode.wrong_order"),
    Case("batch axis flattened last", batch_axis_last, "encode.mixes_images"),
    Case("view(-1, B).t()", viewed_the_wrong_way, "encode.mixes_images"),
    Case("codebook on the encoder's output", without_quant_conv, "encode.skips_quant_conv"),
    Case("nearest() of the encoder's output", nearest_of_encoder, "encode.skips_quant_conv"),
    Case("images normalised again", renormalised, "encode.wrong_ids"),
    Case("images / 255", divided_by_255, "encode.wrong_ids"),
    Case("the farthest code", farthest, "encode.wrong_ids"),
    Case("dot-product similarity", dot_product, "encode.wrong_ids"),
    Case("the first image's ids for all", first_image_only, "encode.wrong_ids"),
    Case("normalised by batch statistics", batch_normalised, "encode.wrong_ids"),
    Case("cached by shape", cached_by_shape, "encode.wrong_ids"),
    Case("ids from 1", one_based, "encode.wrong_ids"),
    Case("all zeros", constant, "encode.wrong_ids"),
    Case("clamps the images in place", clamps_images, "encode.mutates_input"),
    Case("centres the images in place", centres_images, "encode.mutates_input"),
    Case("switches the VQGAN to train()", train_mode, "encode.mutates_input"),
    Case("scales the codebook in place", nudges_codebook, "encode.mutates_input"),
    Case("converts the VQGAN to float64", converts_to_float64, "encode.mutates_input"),
    Case("replaces quant_conv", drops_quant_conv, "encode.mutates_input"),
    Case("a method the VQGAN lacks", missing_method, "encode.error"),
    Case("asserts a batch of 2", assumes_two, "encode.error"),
    Case("arguments swapped", swapped_arguments, "encode.error"),
    Case("calls reference_encode_to_z", calls_reference, "encode.uses_reference"),
    Case("calls it by an alias", calls_alias, "encode.uses_reference"),
    Case("calls it via a helper", via_helper, "encode.uses_reference"),
    Case("imports it inside", imports_inside, "encode.uses_reference"),
    Case("is reference_encode_to_z", reference_encode_to_z, "encode.uses_reference"),
    Case("a partial of it", functools.partial(reference_encode_to_z), "encode.uses_reference"),
    Case("a lambda around it", lambda vqgan, images: reference_encode_to_z(vqgan, images), "encode.uses_reference"),
    Case("a callable object around it", Encoder(), "encode.uses_reference"),
    Case("vqgan.encode_to_indices", encode_to_indices, "encode.uses_reference"),
    Case("type(vqgan).encode_to_indices", encode_to_indices_of_class, "encode.uses_reference"),
    Case("VQGAN.encode_to_indices", vqgan_class_imported, "encode.uses_reference"),
    Case("MaskGit.encode_to_z", maskgit_method, "encode.uses_reference"),
    Case("a subclass of MaskGit", subclass_of_maskgit, "encode.uses_reference"),
    Case("getattr(vqgan, 'encode_to_' + 'indices')", getattr_by_name, "encode.uses_reference"),
    Case("encode_to_indices for one image only", only_for_one_image, "encode.uses_reference"),
    Case("as in the notebook (@no_grad)", as_in_the_notebook),
    Case("the codebook module", codebook_module),
    Case("torch.cdist", by_cdist),
    Case("broadcast distances", by_broadcast),
    Case("image by image", image_by_image),
    Case("position by position", explicit_positions),
    Case("expanded square, (B, 256, K)", expanded_square),
    Case("device from parameters()", device_idiom),
    Case("reshape(len(images), -1)", reshape_by_len),
    Case("codebook.nearest on quant_conv's output", nearest_of_quant_conv),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
