"""The student's own work (labcore/checkers/ownership.py, fallback.yours_or_reference by name): code
that reaches labcore's implementation of an exercise is found however it reaches it (alias, helper,
import inside the body, closure, default argument, partial, subclass, a method of a class it names);
code that only uses what the exercise offers is not; a checker never crashes, whatever it is given;
and the fallback of a notebook picks what the latest check of each piece saw."""

import functools

import numpy as np
import pytest
import torch
from torch import nn

import labcore.decoding
from labcore import attention
from labcore.checkers import fallback, report
from labcore.checkers.ownership import REFERENCES, Tripwire, reaches
from labcore.decoding import decode_step as aliased_step, gumbel


def via_module(*args):
    return labcore.decoding.decode_step(*args)


def via_alias(*args):
    return aliased_step(*args)


def _inner(*args):
    return aliased_step(*args)


def via_helper(*args):
    return _inner(*args)


def via_import_inside(*args):
    from labcore.decoding import decode_step
    return decode_step(*args)


def via_default(*args, _step=aliased_step):
    return _step(*args)


def _make_closure():
    step = aliased_step

    def via_closure(*args):
        return step(*args)
    return via_closure


via_partial = functools.partial(aliased_step)


@torch.no_grad()
def via_decorated(*args):
    return aliased_step(*args)


def offered_helpers_only(transformer, tokens, masked, m0, ratio, settings, mask_token_id, generator=None):
    """Uses what the exercise offers (gumbel, settings.gamma_fn): the student's own."""
    g = gumbel(masked.shape, generator, masked.device)            # (B, N)
    return settings.gamma_fn(ratio) + g


class SubclassAttention(attention.MultiHeadAttention):
    pass


class CallsForward(nn.Module):
    def forward(self, x):
        return attention.MultiHeadAttention.forward(self, x)


class WrapsTorch(nn.Module):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.inner = nn.MultiheadAttention(dim, num_heads, dropout=attn_drop, batch_first=True)


class OwnAttention(nn.Module):
    def __init__(self, dim, num_heads, attn_drop):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x):                                          # SDPA is a torch primitive: allowed
        return torch.nn.functional.scaled_dot_product_attention(x, x, x)


def gamma_via_import(mode):
    from labcore.schedules import gamma
    return gamma(mode)


def gamma_via_settings(mode):
    return lambda r: labcore.decoding.DecodingSettings(schedule=mode).gamma_fn(r)


@pytest.mark.parametrize("obj, exercise, reached", [
    (via_module, "decode", "labcore.decoding.decode_step"),
    (via_alias, "decode", "labcore.decoding.decode_step"),
    (via_helper, "decode", "labcore.decoding.decode_step"),
    (via_import_inside, "decode", "labcore.decoding.decode_step"),
    (via_default, "decode", "labcore.decoding.decode_step"),
    (_make_closure(), "decode", "labcore.decoding.decode_step"),
    (via_partial, "decode", "labcore.decoding.decode_step"),
    (via_decorated, "decode", "labcore.decoding.decode_step"),
    ([via_alias], "decode", "labcore.decoding.decode_step"),
    (SubclassAttention, "attention", "labcore.attention.MultiHeadAttention"),
    (CallsForward, "attention", "labcore.attention.MultiHeadAttention"),
    (WrapsTorch, "attention", "torch.nn.MultiheadAttention"),
    (gamma_via_import, "gamma", "labcore.schedules.gamma"),
    (gamma_via_settings, "gamma", "labcore.decoding.DecodingSettings.gamma_fn"),
])
def test_reaching_labcores_solution_is_found(obj, exercise, reached):
    assert reached in reaches(obj, exercise)


@pytest.mark.parametrize("obj, exercise", [
    (offered_helpers_only, "decode"), (OwnAttention, "attention"), (via_alias, "attention"),
    (np.sqrt, "frechet"), (None, "decode"), (42, "gamma"), ("decode_step", "decode"),
])
def test_own_code_and_other_exercises_are_not_flagged(obj, exercise):
    assert reaches(obj, exercise) == []


def test_every_reference_resolves():
    from labcore.checkers.ownership import _targets
    for exercise, names in REFERENCES.items():
        found = {name for _, name in _targets(exercise)}
        missing = [n for n in names if n not in found and not n.startswith("pytorch_fid")]
        assert not missing, f"{exercise}: {missing} cannot be resolved (renamed?)"


def test_tripwire_records_calls_and_keeps_working():
    layer = nn.Linear(2, 2)
    wire = Tripwire(layer, "extra_repr")
    assert layer.extra_repr() == nn.Linear(2, 2).extra_repr() and wire.tripped == ["Linear.extra_repr"]


def test_run_probes_refuses_a_reference_and_survives_a_broken_probe():
    def broken():
        return {}["missing"]                                         # not a StudentError: the check itself broke

    used = report.run_probes("check_x", [("first", report.ok)], "decode.error", own=via_alias)
    assert not used.passed and used.mistakes == ["decode.uses_reference"]
    crashed = report.run_probes("check_x", [("first", report.ok), ("second", broken)], "decode.error")
    assert not crashed.passed and crashed.mistakes == ["decode.error"] and "KeyError" in str(crashed)
    assert [f.label for f in crashed.findings] == ["first", "second"]


def test_run_probes_gives_each_finding_its_probes_label_once():
    """A probe's label is written once, in the probe list: its findings get it, unless one names
    another check (``label=``); strings are notes."""
    result = report.run_probes("check_x", [
        ("the shapes", report.ok),
        ("the values", lambda: [report.fail("decode.wrong_result", "expected 1, got 2"), "a note",
                                report.ok(label="another check")]),
    ], "decode.error")
    assert [(f.label, f.ok, f.mistake) for f in result.findings] == [
        ("the shapes", True, None), ("the values", False, "decode.wrong_result"), ("another check", True, None)]
    assert result.notes == ["a note"]
    assert "  FAIL  the values\n        expected 1, got 2\n" in str(result)
    assert report.uses_reference("decode", "why").label == report.OWN_CODE


def test_snapshot_sees_in_place_changes():
    t, a = torch.arange(4), np.zeros(3)
    before = report.snapshot(t, a, "not a tensor")
    assert report.changed(before, t, a, "not a tensor") == []
    t += 1
    a[0] = 1
    assert report.changed(before, t, a, "not a tensor") == [0, 1]


def test_yours_or_reference_by_name_follows_the_latest_check(capsys):
    from labcore.checkers.masking import reference_masked_loss
    passed = report.CheckResult("c", [report.ok(label="x")])
    failed = report.CheckResult("c", [report.fail("masking.loss_wrong", label="x")])

    def masked_loss(logits, targets, masked):  # noqa: ARG001 - stands for the student's piece
        return None

    fallback._CHECKED.pop("masked_loss", None)
    assert fallback.yours_or_reference("masked_loss") is reference_masked_loss
    assert "not checked yet" in capsys.readouterr().out
    fallback.record("masked_loss", masked_loss, passed)
    assert fallback.yours_or_reference("masked_loss") is masked_loss
    assert "YOUR code" in capsys.readouterr().out
    fallback.record("masked_loss", masked_loss, failed)
    assert fallback.yours_or_reference("masked_loss") is reference_masked_loss
    assert "check failed" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown exercise piece"):
        fallback.yours_or_reference("nope")


def test_a_function_of_a_reference_module_counts_as_that_module():
    from labcore import decoding_variants

    def borrows(*args):
        return decoding_variants.student_step(*args)

    assert reaches(borrows, "decode") == ["labcore.decoding_variants"]
    assert reaches(decoding_variants.student_step, "decode") == ["labcore.decoding_variants"]


def test_an_attribute_is_not_read_as_the_global_of_the_same_name():
    """``vqgan.encode`` in the student's code names the attribute ``encode``: a notebook global
    called ``encode`` that holds labcore's reference (a fallback) must not count."""
    from labcore.checkers.tokens import reference_encode_to_z
    scope = {"encode": reference_encode_to_z}
    exec("def encode_to_z(vqgan, images):\n    return vqgan.encode(images)[1].flatten(1)\n", scope)
    assert reaches(scope["encode_to_z"], "encode") == []
    exec("def encode_to_z(vqgan, images):\n    return encode(vqgan, images)\n", scope)
    assert reaches(scope["encode_to_z"], "encode") == ["labcore.checkers.tokens.reference_encode_to_z"]
