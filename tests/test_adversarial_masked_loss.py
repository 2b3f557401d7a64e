"""Adversarial suite of ``check_masked_loss`` (exercise 4, second half), written from notebook 02's
signature, docstring and formula only, by someone trying to fool the checker:

    def masked_loss(logits, targets, masked):
        '''Cross-entropy of the masked tokens, averaged over them. logits (B, N, K+1) float, the
        transformer's output; targets (B, N) long, the original ids; masked (B, N) bool, True where
        the input held the mask token. returns a 0-d tensor with its gradient.'''

Containers ((1,) tensors, tuples, lists, per-token losses), every way to lose the gradient,
the wrong tokens (all, known), the wrong reduction (sum, other denominators), the log-softmax over
another axis or missing, a backward that breaks (in-place edits, backward inside), inputs changed
in place, near misses (label smoothing, a temperature, float16, the mask id as target), and
labcore's own loss reached every way must each be named; losses written unlike labcore's must pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labcore.checkers import check_masked_loss, reference_masked_loss as my_loss
from labcore.maskgit import mvtm_loss

from adversarial_cases import Case, assert_case

CHECK = check_masked_loss
pytestmark = pytest.mark.usefixtures("one_thread")


def per_token(logits, targets):
    return F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")   # (B, N)


def right(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked])


def wrapped(change):
    """The right loss, then ``change(loss)``."""
    return lambda logits, targets, masked: change(right(logits, targets, masked))


def nll_at(logp, targets):
    return -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)                  # (B, N)


# ----------------------------------------------------------------------------- wrong ones

def with_numpy(logits, targets, masked):
    lp = torch.log_softmax(logits, -1).detach().numpy()
    return float(-np.take_along_axis(lp, targets.numpy()[..., None], -1)[..., 0][masked.numpy()].mean())


def rebuilt_from_number(logits, targets, masked):
    return torch.tensor(right(logits, targets, masked).item(), requires_grad=True)


def under_no_grad(logits, targets, masked):
    with torch.no_grad():
        return right(logits, targets, masked)


def edits_log_probs_in_place(logits, targets, masked):
    logp = logits.log_softmax(-1)                                                 # (B, N, K+1)
    logp[~masked] = 0.0                                                           # in place: backward fails
    return nll_at(logp, targets).sum() / masked.sum()


def exp_in_place(logits, targets, masked):
    p = logits.softmax(-1)
    p.clamp_(min=1e-9)
    return -p.log().gather(-1, targets.unsqueeze(-1)).squeeze(-1)[masked].mean()


def backward_inside(logits, targets, masked):
    loss = right(logits, targets, masked)
    loss.backward()                                                               # "to check it works"
    return loss


def backward_inside_retained(logits, targets, masked):
    loss = right(logits, targets, masked)
    loss.backward(retain_graph=True)
    return loss


def ignore_index_in_place(logits, targets, masked):
    targets[~masked] = -100
    return F.cross_entropy(logits.transpose(1, 2), targets)


def zeroes_known_logits(logits, targets, masked):
    logits[~masked] = 0.0
    return right(logits, targets, masked)


def masked_and_in_place(logits, targets, masked):
    masked &= targets != 0                                                        # "id 0 is padding""
    return right(logits, targets, masked)


def classes_on_dim_1(logits, targets, masked):
    return F.cross_entropy(logits, targets, reduction="none")[masked].mean()     # raises: (B, N, C) read as (B, C, d)


def in_half(logits, targets, masked):
    return F.cross_entropy(logits[masked].half(), targets[masked]).float()


def mask_id_as_target(logits, targets, masked):
    K = logits.shape[-1] - 1
    return F.cross_entropy(logits[masked], torch.full_like(targets[masked], K))


def via_import_inside(logits, targets, masked):
    from labcore.checkers.masking import reference_masked_loss
    return reference_masked_loss(logits, targets, masked)


def via_mvtm_loss(logits, targets, masked):
    """labcore's whole step with a stand-in transformer and a schedule that hits the same mask (not quite)."""
    return mvtm_loss(lambda x: logits, targets, logits.shape[-1] - 1, lambda r: masked.float().mean(1))["loss"]


def via_fallback_lookup(logits, targets, masked):
    from labcore.checkers import fallback
    return fallback.reference("masked" + "_loss")(logits, targets, masked)


# ----------------------------------------------------------------------------- correct variants

def ignore_index_copy(logits, targets, masked):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.masked_fill(~masked, -100).reshape(-1))


def gather_weighted(logits, targets, masked):
    nll = nll_at(logits.log_softmax(dim=-1), targets)                            # (B, N)
    return (nll * masked).sum() / masked.sum()


def transposed_nll(logits, targets, masked):
    return F.nll_loss(F.log_softmax(logits.transpose(1, 2), dim=1), torch.where(masked, targets, -1), ignore_index=-1)


def codebook_only(logits, targets, masked):
    return F.cross_entropy(logits[..., :-1][masked], targets[masked])


def masked_select_view(logits, targets, masked):
    C = logits.shape[-1]
    picked = logits.masked_select(masked.unsqueeze(-1)).view(-1, C)              # (M, K+1)
    return F.cross_entropy(picked, targets.masked_select(masked))


def logsumexp_by_hand(logits, targets, masked):
    lse = torch.logsumexp(logits, dim=-1)                                         # (B, N)
    own = logits.gather(-1, targets[..., None])[..., 0]                           # (B, N)
    return torch.where(masked, lse - own, torch.zeros_like(lse)).sum() / masked.count_nonzero()


def float64_per_token(logits, targets, masked):
    return per_token(logits.double(), targets)[masked].mean()


# ----------------------------------------------------------------------------- the cases

CASES = [
    Case("per-token losses", lambda l, t, m: per_token(l, t)[m], "masking.loss_not_scalar"),
    Case("a (1,) tensor", wrapped(lambda x: x.reshape(1)), "masking.loss_not_scalar"),
    Case("keepdim mean, (1, 1)", lambda l, t, m: per_token(l, t)[m].reshape(1, -1).mean(1, keepdim=True),
         "masking.loss_not_scalar"),
    Case("(loss, accuracy)", lambda l, t, m: (right(l, t, m), (l.argmax(-1) == t)[m].float().mean()),
         "masking.loss_not_scalar"),
    Case("[loss]", wrapped(lambda x: [x]), "masking.loss_not_scalar"),
    Case(".item()", wrapped(lambda x: x.item()), "masking.loss_detached"),
    Case(".detach()", wrapped(lambda x: x.detach()), "masking.loss_detached"),
    Case("torch.no_grad inside", under_no_grad, "masking.loss_detached"),
    Case("numpy", with_numpy, "masking.loss_detached"),
    Case("rebuilt from a number", rebuilt_from_number, "masking.loss_detached"),
    Case("all tokens", lambda l, t, m: per_token(l, t).mean(), "masking.loss_all_tokens"),
    Case("all tokens, reshaped", lambda l, t, m: F.cross_entropy(l.reshape(-1, l.shape[-1]), t.reshape(-1)),
         "masking.loss_all_tokens"),
    Case("the known tokens", lambda l, t, m: right(l, t, ~m), "masking.loss_on_known"),
    Case("masked == 0", lambda l, t, m: F.cross_entropy(l[m == 0], t[m == 0]), "masking.loss_on_known"),
    Case("reduction='sum'", lambda l, t, m: F.cross_entropy(l[m], t[m], reduction="sum"), "masking.loss_sum"),
    Case(".sum() of the masked", lambda l, t, m: per_token(l, t)[m].sum(), "masking.loss_sum"),
    Case("(ce * masked).mean()", lambda l, t, m: (per_token(l, t) * m).mean(), "masking.loss_denominator"),
    Case("per-image sums, mean over images", lambda l, t, m: (per_token(l, t) * m).sum(1).mean(),
         "masking.loss_denominator"),
    Case("masked sum / N", lambda l, t, m: (per_token(l, t) * m).sum() / t.shape[1], "masking.loss_denominator"),
    Case("log-softmax over the positions", lambda l, t, m: nll_at(l.log_softmax(1), t)[m].mean(), "masking.loss_axis"),
    Case("log-softmax over the images", lambda l, t, m: nll_at(l.log_softmax(0), t)[m].mean(), "masking.loss_axis"),
    Case("softmax over dim 1, then log", lambda l, t, m: nll_at(torch.log(l.softmax(dim=1)), t)[m].mean(),
         "masking.loss_axis"),
    Case("nll_loss on raw logits", lambda l, t, m: F.nll_loss(l[m], t[m]), "masking.loss_not_log_probs"),
    Case("nll_loss on probabilities", lambda l, t, m: F.nll_loss(l[m].softmax(-1), t[m]), "masking.loss_not_log_probs"),
    Case("minus the logit", lambda l, t, m: nll_at(l, t)[m].mean(), "masking.loss_not_log_probs"),
    Case("log-probs edited in place", edits_log_probs_in_place, "masking.loss_backward"),
    Case("probabilities clamped in place", exp_in_place, "masking.loss_backward"),
    Case("backward() inside", backward_inside, "masking.loss_backward"),
    Case("backward(retain_graph) inside", backward_inside_retained, "masking.loss_backward"),
    Case("targets[~masked] = -100", ignore_index_in_place, "masking.mutates_input"),
    Case("logits[~masked] = 0", zeroes_known_logits, "masking.mutates_input"),
    Case("masked &= ...", masked_and_in_place, "masking.mutates_input"),
    Case("cross_entropy on (B, N, K+1) as is", classes_on_dim_1, "masking.error"),
    Case("targets not selected", lambda l, t, m: F.cross_entropy(l[m], t), "masking.error"),
    Case("label smoothing", lambda l, t, m: F.cross_entropy(l[m], t[m], label_smoothing=0.1), "masking.loss_wrong"),
    Case("a temperature of 2", lambda l, t, m: F.cross_entropy(l[m] / 2, t[m]), "masking.loss_wrong"),
    Case("float16", in_half, "masking.loss_wrong"),
    Case("the mask id as target", mask_id_as_target, "masking.loss_wrong"),
    Case("the largest loss", lambda l, t, m: per_token(l, t)[m].max(), "masking.loss_wrong"),
    Case("labcore's loss by alias", lambda l, t, m: my_loss(l, t, m), "masking.uses_reference"),
    Case("labcore's loss imported inside", via_import_inside, "masking.uses_reference"),
    Case("labcore's mvtm_loss", via_mvtm_loss, "masking.uses_reference"),
    Case("labcore's fallback looked up by name", via_fallback_lookup, "masking.uses_reference"),
    Case("index, cross_entropy", right),
    Case("ignore_index on a copy", ignore_index_copy),
    Case("gather, weighted by the mask", gather_weighted),
    Case("transposed nll_loss", transposed_nll),
    Case("the K codebook classes only", codebook_only),
    Case("masked_select", masked_select_view),
    Case("logsumexp by hand", logsumexp_by_hand),
    Case("float64 per-token losses", float64_per_token),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
