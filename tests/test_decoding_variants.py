"""labcore.decoding_variants: the classic mistakes as one table from which the wrong steps are built,
and the named variants (``variant``) that ``labcore experiment --variants`` and notebook 05 measure.
What each wrong step does to the checker: tests/test_checkers_decoding.py."""

import ast
import inspect

import pytest
import torch

from labcore import decoding_variants as dv
from labcore.checkers import mistakes_of
from labcore.checkers.fixtures import tiny_transformer, tiny_vqgan
from labcore.decoding import DecodingSettings, decode


def test_every_wrong_line_is_a_specific_decode_mistake_of_the_checkers_table():
    specific = {i for i, m in mistakes_of("decode").items() if not m.generic}
    assert set(dv.MISTAKE_IDS) <= specific and len(set(dv.MISTAKE_IDS)) == len(dv.MISTAKE_IDS)


def test_the_steps_are_built_from_the_table():
    steps = dv.classic_steps()
    assert list(steps) == [f"decode.{name}" for name in dv.WRONG_LINES]           # no re-encoding without a VQGAN
    for name, line in dv.WRONG_LINES.items():
        step = steps[f"decode.{name}"]
        assert step.__name__ == name and step.__module__ == "labcore.decoding_variants"
        assert step.__doc__ == f"decode.{name}: {line}"
    with_vqgan = dv.classic_steps(tiny_vqgan(K=8, img_resolution=16, latent_resolution=4))
    assert list(with_vqgan) == list(dv.MISTAKE_IDS)


def test_unknown_mistakes_are_refused_when_the_step_is_made():
    with pytest.raises(ValueError, match=r"unknown mistakes \['typo'\]; choose from \('predicts_mask_token'"):
        dv.with_mistakes("overwrites_known", "typo")


def test_several_mistakes_make_one_step_that_names_them_all():
    step = dv.with_mistakes("count_ceil", "shared_gumbel")
    assert step.__name__ == "count_ceil_and_shared_gumbel"
    assert "decode.count_ceil" in step.__doc__ and "decode.shared_gumbel" in step.__doc__


@pytest.mark.parametrize("sample_temperature", [0.0, 1.0])
def test_the_unmistaken_step_draws_what_decode_step_draws(sample_temperature):
    """On a tiny random transformer (the bundled model: tests/test_experiment.py)."""
    transformer = tiny_transformer(K=8, N=16)
    gen = torch.Generator().manual_seed(0)
    masked = torch.rand(3, 4, 4, generator=gen) < 0.7
    tokens = torch.randint(0, 8, (3, 4, 4), generator=gen)
    settings = DecodingSettings(total_iter=4, sample_temperature=sample_temperature)
    labcores, _ = decode(transformer, tokens, masked, 8, settings)
    students, _ = decode(transformer, tokens, masked, 8, settings, step=dv.with_mistakes())
    assert torch.equal(labcores, students)


def test_variants_by_name():
    assert dv.variant(dv.CORRECT_STEP) == dv.Variant(dv.CORRECT_STEP)
    assert dv.variant("decode.reencodes") == dv.Variant("decode.reencodes", step="decode.reencodes")
    base = DecodingSettings(total_iter=4)
    assert dv.variant("order=halton").settings(base) == base.replace(order="halton")
    assert dv.variant("sample_temperature_anneal").settings(base).sample_temperature_anneal is True
    assert dv.variant("remask").settings(base) == base.replace(remask=dv.REMASK_ETA) and 0 < dv.REMASK_ETA < 1
    assert all(dv.variant(name).name == name for name in dv.MEASURED_VARIANTS)
    with pytest.raises(ValueError, match="unknown variant 'decode.typo'; choose from order=halton, "
                                         "sample_temperature_anneal, remask, decode.predicts_mask_token"):
        dv.variant("decode.typo")


def test_seed_matters_only_where_a_draw_changes_the_decoding():
    argmax = DecodingSettings()                                      # argmax tokens, tau 4.5: the order is drawn
    assert dv.seed_matters(argmax) and not dv.seed_matters(argmax, "decode.shared_gumbel")
    assert not dv.seed_matters(argmax.replace(choice_temperature=0))
    assert not dv.seed_matters(argmax.replace(order="halton"))
    assert dv.seed_matters(argmax.replace(order="halton", sample_temperature=1.0))


def test_token_rule_names_the_two_rules():
    assert (dv.token_rule(0), dv.token_rule(0.5), dv.token_rule(1)) == ("argmax", "sampled", "sampled")


def test_no_function_over_50_lines():
    for node in ast.walk(ast.parse(inspect.getsource(dv))):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno + 1 <= 50, node.name
