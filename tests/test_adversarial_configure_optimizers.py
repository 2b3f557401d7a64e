"""Adversarial suite of ``check_configure_optimizers`` (exercise 5, first function), written from the
notebook's signature and docstring only, by someone trying to fool the checker:

    def configure_optimizers(model, lr, weight_decay, betas=(0.9, 0.96)):
        '''AdamW with two parameter groups: the weight matrices of the model's nn.Linear layers with
        `weight_decay`, every other parameter (biases, LayerNorms, embeddings, the output bias) with 0.
        returns  a torch.optim.AdamW with learning rate `lr` and `betas`'''

Other optimizer classes, containers, other groupings, ignored arguments, a model changed in place,
and labcore's own answer reached every way (directly, by alias, via a helper, by import inside,
through the class) must each be named; groupings written unlike labcore's must pass.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from labcore.checkers import check_configure_optimizers
from labcore.checkers.training import reference_configure_optimizers as my_optimizer  # an alias of labcore's
from labcore.transformer import BidirectionalTransformer

from adversarial_cases import Case, assert_case

CHECK = check_configure_optimizers


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one torch thread (conftest's ``one_thread``) for the whole module."""


def _linear_weights(model):
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


def _split(model):
    """(decayed, not decayed): the nn.Linear weights, everything else."""
    ids = _linear_weights(model)
    params = list(model.parameters())
    return [p for p in params if id(p) in ids], [p for p in params if id(p) not in ids]


def _groups(model, weight_decay):
    decay, rest = _split(model)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------- correct, written otherwise

def right_by_module_type(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def right_by_name(model, lr, weight_decay, betas=(0.9, 0.96)):
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    decay = [p for n, p in model.named_parameters() if n in linear]
    rest = [p for n, p in model.named_parameters() if n not in linear]
    return torch.optim.AdamW([{"params": rest, "weight_decay": 0}, {"params": decay}], lr=lr, betas=betas,
                             weight_decay=weight_decay)


def right_nanogpt_whitelist(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, _ in m.named_parameters(recurse=False):
            full = f"{mn}.{pn}" if mn else pn
            (decay if pn == "weight" and isinstance(m, nn.Linear) else no_decay).add(full)
    params = dict(model.named_parameters())
    return torch.optim.AdamW([{"params": [params[n] for n in sorted(decay)], "weight_decay": weight_decay},
                              {"params": [params[n] for n in sorted(no_decay)], "weight_decay": 0.0}],
                             lr=lr, betas=betas)


def right_adam_decoupled(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adam(_groups(model, weight_decay), lr=lr, betas=betas, decoupled_weight_decay=True)


def right_keyword_only_betas(model, lr, weight_decay, *, betas=(0.9, 0.96)):
    decay, rest = _split(model)
    return torch.optim.AdamW(params=[dict(params=iter(rest), weight_decay=0.0),
                                     dict(params=iter(decay), weight_decay=weight_decay)],
                             lr=lr, betas=list(betas), foreach=False)


def right_without_betas_argument(model, lr, weight_decay):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=(0.9, 0.96))


def right_by_ndim_minus_special(model, lr, weight_decay, betas=(0.9, 0.96)):
    special = {id(model.tok_emb.weight), id(model.pos_emb), id(model.bias)}
    decay = [p for p in model.parameters() if p.ndim == 2 and id(p) not in special]
    rest = [p for p in model.parameters() if not (p.ndim == 2 and id(p) not in special)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay, "lr": lr},
                              {"params": rest, "weight_decay": 0.0, "lr": lr}], lr=1.0, betas=betas)


def right_add_param_group(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay, rest = _split(model)
    opt = torch.optim.AdamW(decay, lr=lr, betas=betas, weight_decay=weight_decay)
    opt.add_param_group({"params": rest, "weight_decay": 0.0})
    return opt


# ----------------------------------------------------------------------------- wrong: the optimizer's class

def sgd(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.SGD(_groups(model, weight_decay), lr=lr, momentum=betas[0])


def rmsprop(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.RMSprop(_groups(model, weight_decay), lr=lr)


def adagrad(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adagrad(_groups(model, weight_decay), lr=lr)


def nadam_decoupled(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.NAdam(_groups(model, weight_decay), lr=lr, betas=betas, decoupled_weight_decay=True)


def adam_l2(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adam(_groups(model, weight_decay), lr=lr, betas=betas)


def adam_explicitly_coupled(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adam(_groups(model, weight_decay), lr=lr, betas=betas, decoupled_weight_decay=False)


def adamw_group_coupled(model, lr, weight_decay, betas=(0.9, 0.96)):
    """AdamW, but the decayed group switches the decoupling off (L2 in disguise)."""
    groups = _groups(model, weight_decay)
    groups[0]["decoupled_weight_decay"] = False
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def adam_no_decay_at_all(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas)


# ----------------------------------------------------------------------------- wrong: what is returned

def returns_groups(model, lr, weight_decay, betas=(0.9, 0.96)):
    return _groups(model, weight_decay)


def returns_with_scheduler(model, lr, weight_decay, betas=(0.9, 0.96)):
    opt = torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)
    return opt, torch.optim.lr_scheduler.ConstantLR(opt)


def returns_list(model, lr, weight_decay, betas=(0.9, 0.96)):
    return [torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)]


def forgets_return(model, lr, weight_decay, betas=(0.9, 0.96)):
    torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def returns_the_class(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW


# ----------------------------------------------------------------------------- wrong: labcore's answer

def calls_param_groups(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=betas)


def calls_param_groups_through_the_class(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(type(model).param_groups(model, weight_decay), lr=lr, betas=betas)


def calls_param_groups_unbound(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(BidirectionalTransformer.param_groups(model, weight_decay), lr=lr, betas=betas)


def _helper_groups(m, wd):
    return getattr(m, "param_" + "groups")(wd)


def calls_param_groups_in_a_helper(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_helper_groups(model, weight_decay), lr=lr, betas=betas)


def calls_the_reference_by_alias(model, lr, weight_decay, betas=(0.9, 0.96)):
    return my_optimizer(model, lr, weight_decay, betas)


def imports_the_reference_inside(model, lr, weight_decay, betas=(0.9, 0.96)):
    from labcore.checkers import reference_configure_optimizers
    return reference_configure_optimizers(model, lr, weight_decay, betas=betas)


def imports_the_module_inside(model, lr, weight_decay, betas=(0.9, 0.96)):
    import labcore.checkers.training as t
    return t.reference_configure_optimizers(model, lr, weight_decay, betas)


# ----------------------------------------------------------------------------- wrong: the groups

def decay_everything(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)


def decay_every_matrix(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)


def decay_by_name_weight(model, lr, weight_decay, betas=(0.9, 0.96)):
    """'weight' in the name: the LayerNorm gains and tok_emb.weight are decayed too."""
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)


def decay_linear_biases_too(model, lr, weight_decay, betas=(0.9, 0.96)):
    linear = [p for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()]
    ids = {id(p) for p in linear}
    return torch.optim.AdamW([{"params": linear, "weight_decay": weight_decay},
                              {"params": [p for p in model.parameters() if id(p) not in ids], "weight_decay": 0.0}],
                             lr=lr, betas=betas)


def groups_swapped(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay, rest = _split(model)
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.0},
                              {"params": rest, "weight_decay": weight_decay}], lr=lr, betas=betas)


def no_decay_anywhere(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=0.0)


def only_the_decayed_group(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay, _ = _split(model)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}], lr=lr, betas=betas)


def only_vectors_in_the_other_group(model, lr, weight_decay, betas=(0.9, 0.96)):
    """The rest group built from the 1-d tensors: the embeddings and the output bias are lost."""
    decay, _ = _split(model)
    rest = [p for p in model.parameters() if p.ndim == 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=lr, betas=betas)


def parameters_of_a_copy(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(copy.deepcopy(model), weight_decay), lr=lr, betas=betas)


def a_parameter_in_both_groups(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay, rest = _split(model)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": rest + decay[:1], "weight_decay": 0.0}], lr=lr, betas=betas)


# ----------------------------------------------------------------------------- wrong: the settings

def hard_coded_lr(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=1e-3, betas=betas)


def lr_and_weight_decay_swapped(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, lr), lr=weight_decay, betas=betas)


def default_lr(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), betas=betas)


def lr_in_one_group_only(model, lr, weight_decay, betas=(0.9, 0.96)):
    groups = _groups(model, weight_decay)
    groups[1]["lr"] = lr * 10
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def betas_ignored(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr)


def betas_hard_coded(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=(0.9, 0.96))


def betas_reversed(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=tuple(reversed(betas)))


def no_betas_argument_wrong_default(model, lr, weight_decay):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95))


def hard_coded_weight_decay(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, 0.01), lr=lr, betas=betas)


def weight_decay_times_lr(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay * lr), lr=lr, betas=betas)


def maximize(model, lr, weight_decay, betas=(0.9, 0.96)):
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas, maximize=True)


# ----------------------------------------------------------------------------- wrong: the model changed, errors

def reinitialises_the_weights(model, lr, weight_decay, betas=(0.9, 0.96)):
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def freezes_the_embeddings(model, lr, weight_decay, betas=(0.9, 0.96)):
    model.tok_emb.weight.requires_grad_(False)
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def zeroes_the_output_bias(model, lr, weight_decay, betas=(0.9, 0.96)):
    with torch.no_grad():
        model.bias.zero_()
    return torch.optim.AdamW(_groups(model, weight_decay), lr=lr, betas=betas)


def typo_raises(model, lr, weight_decay, betas=(0.9, 0.96)):
    groups = {"decay": _split(model)[0], "no_decay": _split(model)[1]}
    return torch.optim.AdamW([{"params": groups["decayed"], "weight_decay": weight_decay}], lr=lr, betas=betas)


def named_parameters_unpacked_wrong(model, lr, weight_decay, betas=(0.9, 0.96)):
    decay = [p for p in model.named_parameters() if p.ndim == 2]
    return torch.optim.AdamW(decay, lr=lr, betas=betas)


CORRECT = [right_by_module_type, right_by_name, right_nanogpt_whitelist, right_adam_decoupled,
           right_keyword_only_betas, right_without_betas_argument, right_by_ndim_minus_special, right_add_param_group]

WRONG = [
    (sgd, "loop.not_adamw"), (rmsprop, "loop.not_adamw"), (adagrad, "loop.not_adamw"),
    (nadam_decoupled, "loop.not_adamw"), (adam_no_decay_at_all, "loop.not_adamw"),
    (adam_l2, "loop.adam_l2"), (adam_explicitly_coupled, "loop.adam_l2"), (adamw_group_coupled, "loop.adam_l2"),
    (returns_groups, "loop.not_an_optimizer"), (returns_with_scheduler, "loop.not_an_optimizer"),
    (returns_list, "loop.not_an_optimizer"), (forgets_return, "loop.not_an_optimizer"),
    (returns_the_class, "loop.not_an_optimizer"),
    (calls_param_groups, "loop.uses_reference"), (calls_param_groups_through_the_class, "loop.uses_reference"),
    (calls_param_groups_unbound, "loop.uses_reference"), (calls_param_groups_in_a_helper, "loop.uses_reference"),
    (calls_the_reference_by_alias, "loop.uses_reference"), (imports_the_reference_inside, "loop.uses_reference"),
    (imports_the_module_inside, "loop.uses_reference"), (my_optimizer, "loop.uses_reference"),
    (decay_everything, "loop.decay_on_norms_biases_embeddings"),
    (decay_every_matrix, "loop.decay_on_norms_biases_embeddings"),
    (decay_by_name_weight, "loop.decay_on_norms_biases_embeddings"),
    (decay_linear_biases_too, "loop.decay_on_norms_biases_embeddings"),
    (groups_swapped, "loop.decay_on_norms_biases_embeddings"), (groups_swapped, "loop.no_weight_decay"),
    (no_decay_anywhere, "loop.no_weight_decay"),
    (only_the_decayed_group, "loop.params_missing"), (only_vectors_in_the_other_group, "loop.params_missing"),
    (parameters_of_a_copy, "loop.params_missing"), (a_parameter_in_both_groups, "loop.error"),
    (hard_coded_lr, "loop.lr_ignored"), (lr_and_weight_decay_swapped, "loop.lr_ignored"),
    (default_lr, "loop.lr_ignored"), (lr_in_one_group_only, "loop.lr_ignored"),
    (betas_ignored, "loop.betas_ignored"), (betas_hard_coded, "loop.betas_ignored"),
    (betas_reversed, "loop.betas_ignored"), (no_betas_argument_wrong_default, "loop.betas_ignored"),
    (hard_coded_weight_decay, "loop.optimizer_settings"), (weight_decay_times_lr, "loop.optimizer_settings"),
    (maximize, "loop.optimizer_settings"),
    (reinitialises_the_weights, "loop.mutates_input"), (freezes_the_embeddings, "loop.mutates_input"),
    (zeroes_the_output_bias, "loop.mutates_input"),
    (typo_raises, "loop.error"), (named_parameters_unpacked_wrong, "loop.error"),
]

CASES = [Case(fn.__name__, fn) for fn in CORRECT] + \
    [Case(f"{fn.__name__}->{expect}", fn, expect) for fn, expect in WRONG]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
