"""DecodingSettings.remask: ReMDM-conf re-masking (Wang et al. 2025) in labcore's decoding loop. After
step t < S the loop masks again the floor(eta * (1 - t/T) * D_t) tokens of lowest decode-time log p
among the D_t it decoded at earlier steps; remask = 0 is MaskGIT, bit for bit. Tiny models and a
scripted stub transformer whose confidences are known: no bundled weights needed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labcore.decoding import DecodingSettings, DecodingTrace, StepResult, decode, decode_step
from labcore.schedules import gamma

from shared_fixtures import TINY_K, tiny_transformer  # noqa: E402

K, R = 8, 4                    # the stub's codebook (mask id K) and its R x R grid
N = R * R


class ScriptedLogits(nn.Module):
    """A stand-in transformer (like ``labcore.checkers.fixtures.FixedLogits``) whose logits change
    from call to call: call i returns ``logits[i]`` (B, N, K+1) whatever its input, so the
    confidences of every step are known; it records the token maps it was given (``seen``)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits, self.seen = logits, []
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)      # a device to read

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.seen.append(tokens.clone())
        return self.logits[len(self.seen) - 1].clone()                        # (B, N, K+1)


def scripted(steps: int, batch: int, seed: int = 0) -> ScriptedLogits:
    """Each position's logits at each step: one of 5 fixed rows (identical rows: exact ties in log p)."""
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(5, K + 1, generator=g) * 2                             # (5, K+1)
    table[:, K] = -30.0                                                        # the mask token never wins
    return ScriptedLogits(table[torch.randint(0, 5, (steps, batch, N), generator=g)])  # (S, B, N, K+1)


def grid_masks(counts, seed: int = 0) -> torch.Tensor:
    """(B, R, R) bool with counts[b] random positions masked in image b."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(len(counts), N, dtype=torch.bool)
    for b, c in enumerate(counts):
        masks[b, torch.randperm(N, generator=g)[:c]] = True
    return masks.view(-1, R, R)


def expected_masks(stub: ScriptedLogits, initial: torch.Tensor, settings: DecodingSettings) -> list:
    """The rule, written plainly, image by image: [b][t-1] the sorted positions masked after step t."""
    T, S, eta, g = settings.total_iter, settings.steps, settings.remask, gamma(settings.schedule)
    out = []
    for b in range(len(initial)):
        masked = set(initial[b].flatten().nonzero().flatten().tolist())
        m0, psi, steps = len(masked), {}, []                                   # psi: position -> log p when decoded
        for t in range(1, S + 1):
            conf = stub.logits[t - 1][..., :K].float().log_softmax(-1).max(-1).values[b].tolist()  # same shape
            r = t / T
            n = 0 if r >= 1 or not masked else max(1, min(math.floor(g(r) * m0), len(masked) - 1))
            kept = set(sorted(masked, key=lambda i: (conf[i], i))[:n])        # least confident stay masked
            now, masked = masked - kept, kept
            if t < S:
                again = sorted(psi, key=lambda i: (psi[i], i))[:math.floor(eta * (1 - r) * len(psi))]
                masked |= set(again)
                for i in again:
                    del psi[i]
            psi.update({i: conf[i] for i in now})
            steps.append(sorted(masked))
        out.append(steps)
    return out


# ----------------------------------------------------------------------------- the rule

@pytest.mark.parametrize("total_iter, sweet_spot, eta", [(6, None, 0.5), (6, 4, 0.9), (8, None, 0.6)])
def test_remask_masks_again_the_least_confident_earlier_tokens(total_iter, sweet_spot, eta):
    settings = DecodingSettings(schedule="linear", total_iter=total_iter, sweet_spot=sweet_spot,
                                choice_temperature=0.0, remask=eta)
    initial = grid_masks([16, 11, 5, 0])
    stub = scripted(settings.steps, 4)
    tokens = torch.randint(0, K, (4, R, R))
    final, trace = decode(stub, tokens, initial, K, settings)
    want = expected_masks(stub, initial, settings)
    for t in range(settings.steps):
        got = [trace.masked[t, b].flatten().nonzero().flatten().tolist() for b in range(4)]
        assert got == [want[b][t] for b in range(4)], f"step {t + 1}"
        if t + 1 < settings.steps:                                            # the next step sees the mask id there
            assert torch.equal(stub.seen[t + 1] == K, trace.masked[t].flatten(1))
    again = trace.masked[1:] & ~trace.masked[:-1]                              # (S-1, B, R, R) masked again
    assert again.any()                                                         # the case re-masks something
    assert not (trace.masked & ~initial).any()                                 # known tokens: never masked
    known = ~initial
    assert torch.equal(final[known], tokens[known])                            # ... nor changed
    if sweet_spot is None:
        assert not trace.masked[-1].any() and (final < K).all()                # the last step decodes all


def test_remask_zero_is_maskgit_bit_for_bit():
    """remask = 0 is the loop as it was: decode_step t = 1..S, nothing else (argmax and sampled, tau's noise)."""
    model = tiny_transformer()
    g = torch.Generator().manual_seed(3)
    masks = torch.rand(3, 256, generator=g) < torch.tensor([[0.9], [0.4], [0.05]])  # (3, 256)
    tokens = torch.randint(0, TINY_K, (3, 256), generator=g)
    for t in (0.0, 1.0):
        settings = DecodingSettings(total_iter=6, sweet_spot=5, sample_temperature=t, seed=4, remask=0.0)
        assert settings == DecodingSettings(total_iter=6, sweet_spot=5, sample_temperature=t, seed=4)
        gen, current, masked, fills, kept = settings.generator(), tokens.masked_fill(masks, TINY_K), masks, [], []
        for step in range(1, 6):
            current, masked, filled = decode_step(model, current, masked, masks.sum(1), step / 6, settings, TINY_K,
                                                  gen)[:3]
            fills.append(filled)
            kept.append(masked)
        final, trace = decode(model, tokens.view(3, 16, 16), masks.view(3, 16, 16), TINY_K, settings)
        assert torch.equal(final.flatten(1), fills[-1])
        assert torch.equal(trace.masked.flatten(2), torch.stack(kept))
        assert torch.equal(trace.tokens.flatten(2), torch.stack(fills))


def test_remask_with_a_tiny_model_ends_decoded_and_is_seeded():
    model = tiny_transformer()
    g = torch.Generator().manual_seed(5)
    masks = (torch.rand(2, 16, 16, generator=g) < 0.7)
    tokens = torch.randint(0, TINY_K, (2, 16, 16), generator=g)
    settings = DecodingSettings(total_iter=8, sample_temperature=1.0, remask=0.5)
    final, trace = decode(model, tokens, masks, TINY_K, settings)
    assert not trace.masked[-1].any() and (final < TINY_K).all()
    assert (trace.masked[1:] & ~trace.masked[:-1]).any()                      # a token black again after white
    assert torch.equal(final[~masks], tokens[~masks])
    again, _ = decode(model, tokens, masks, TINY_K, settings)
    other, _ = decode(model, tokens, masks, TINY_K, settings.replace(seed=1))
    assert torch.equal(final, again) and not torch.equal(final, other)
    plain, _ = decode(model, tokens, masks, TINY_K, settings.replace(remask=0.0))
    assert not torch.equal(final, plain)                                       # re-masking changes the result


def test_decode_step_returns_the_log_p_of_each_prediction():
    stub = scripted(1, 2)
    masked = grid_masks([9, 3]).flatten(1)                                      # (2, N)
    tokens = torch.randint(0, K, (2, N)).masked_fill(masked, K)
    out = decode_step(stub, tokens, masked, masked.sum(1), 0.5, DecodingSettings(choice_temperature=4.5), K)
    log_p = stub.logits[0][..., :K].log_softmax(-1).gather(-1, out.filled[..., None])[..., 0]
    assert torch.equal(out.confidence[masked], log_p[masked])
    assert torch.isneginf(out.confidence[~masked]).all()
    empty = torch.zeros_like(masked)
    assert torch.isneginf(decode_step(stub, tokens, empty, empty.sum(1), 0.5, DecodingSettings(), K).confidence).all()
    assert len(out) == 3 and isinstance(out, StepResult)   # unpacks in three, as a student's step returns
    assert not hasattr(StepResult(tokens, masked, tokens), "confidence")


# ----------------------------------------------------------------------------- what is refused

@pytest.mark.parametrize("eta", [1.0, -0.1, float("nan"), "0.5", True])
def test_remask_outside_0_1_is_refused(eta):
    with pytest.raises(ValueError, match=r"remask must be a number in \[0, 1\)"):
        DecodingSettings(remask=eta)


def test_remask_needs_the_confidence_order():
    with pytest.raises(ValueError, match="remask .* order 'confidence', got order 'halton'"):
        DecodingSettings(order="halton", remask=0.5)
    assert DecodingSettings(order="halton", remask=0.0).remask == 0.0


def test_remask_needs_a_step_that_returns_confidences():
    def three_tuple(*args):
        return tuple(decode_step(*args))[:3]

    stub = scripted(4, 2)
    initial, tokens = grid_masks([12, 7]), torch.randint(0, K, (2, R, R))
    settings = DecodingSettings(total_iter=4, remask=0.5)
    with pytest.raises(ValueError, match=r"remask needs a step that returns confidences \(labcore's decode_step\)"):
        decode(stub, tokens, initial, K, settings, step=three_tuple)
    assert len(stub.seen) == 1                                                 # refused after the first step
    final, _ = decode(scripted(4, 2), tokens, initial, K, settings.replace(remask=0.0), step=three_tuple)
    assert (final < K).all()                                                   # without remask: any step works


# ----------------------------------------------------------------------------- the trace, the CLI, the experiment

def test_decoded_at_step_gives_the_last_step_a_token_was_decoded():
    from labcore import viz

    initial = torch.zeros(1, 16, 16, dtype=torch.bool)
    initial[0, 0, :2] = True                                                   # 2 masked tokens
    after = initial.repeat(3, 1, 1, 1)                                         # (3, 1, 16, 16)
    after[0, 0, 0, 0] = False                                                  # step 1 decodes (0, 0)
    after[1, 0, 0, 1] = False                                                  # step 2: (0, 1); (0, 0) masked again
    after[2, 0, 0, :2] = False                                                 # step 3 decodes (0, 0) again
    trace = DecodingTrace(initial_masked=initial, masked=after, tokens=torch.zeros(3, 1, 16, 16, dtype=torch.long),
                          ratios=[1 / 3, 2 / 3, 1.0])
    at = viz.decoded_at_step(trace)
    assert at[0, 0] == 3 and at[0, 1] == 2 and int((at == 0).sum()) == 254


def test_cli_remask_flag(tiny_files, tmp_path, capsys):
    from labcore.__main__ import main
    from labcore.cli import build_parser
    from labcore.cli.inpaint import decoding_settings_from_args

    args = build_parser("inpaint").parse_args(["inpaint", "--remask", "0.25"])
    assert decoding_settings_from_args(args).remask == 0.25
    assert decoding_settings_from_args(build_parser("inpaint").parse_args(["inpaint"])).remask == 0.0
    code = main(["inpaint", "--remask", "1", "--limit", "2", "-o", str(tmp_path / "out"), *tiny_files])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("labcore inpaint: error: remask must be a number in [0, 1)"), err
    assert not (tmp_path / "out").exists()


def test_the_experiment_measures_remask_as_an_idea(tmp_path):
    from labcore import decoding_variants as dv
    from labcore.experiment import read_results, variant_plan, variant_setting
    from labcore.experiment.rows import FIELDS, write_csv

    base = DecodingSettings()
    assert dv.variant("remask").settings(base) == base.replace(remask=dv.REMASK_ETA)
    assert "remask" in dv.MEASURED_VARIANTS
    row = variant_setting("remask", base, sample_temperature=1.0)
    assert (row.remask, row.variant, row.is_variant) == (dv.REMASK_ETA, "remask", True)
    assert row.settings().remask == dv.REMASK_ETA and f"remask {dv.REMASK_ETA:g}" in row.describe()
    plain = variant_setting(dv.CORRECT_STEP, base, sample_temperature=1.0)
    assert (plain.remask, plain.variant, plain.is_variant) == (0.0, dv.CORRECT_STEP, False)
    assert plain.key() != row.key()                                            # a resumed run tells them apart
    plan = variant_plan(base, (0.0, 1.0), 3, ("remask",))
    assert sorted((r.seed, r.tokens) for r in plan if r.variant == "remask") == [(s, t) for s in range(3)
                                                                                for t in ("argmax", "sampled")]
    write_csv([row, plain], tmp_path / "experiments.csv")
    assert read_results(tmp_path / "experiments.csv") == [row, plain]
    old = [k for k in FIELDS if k != "remask"]                                 # a CSV from before the column
    lines = [",".join(old)] + [",".join("" if getattr(r, k) is None else str(getattr(r, k)) for k in old)
                               for r in (plain,)]
    (tmp_path / "old.csv").write_text("\n".join(lines) + "\n")
    assert read_results(tmp_path / "old.csv") == [plain]
