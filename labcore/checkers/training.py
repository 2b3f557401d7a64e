"""Checkers of exercise 5, the stage-2 training loop: ``check_configure_optimizers``,
``check_train_one_epoch`` (``labcore.checkers.training_epoch``) and ``check_training_loop``, which
runs either or both.

What the student writes (the smallest signatures that make the classic mistakes visible)::

    def configure_optimizers(model, lr, weight_decay, betas=(0.9, 0.96)):
        ...  # -> a torch.optim optimizer (AdamW): weight decay on the Linear weight matrices only

    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        # loader yields token batches (B, N) long; per batch: mask (exercise 4), forward,
        # loss on the masked tokens, backward, step
        ...  # -> the epoch's mean loss, a Python float

The reference for the parameter groups is ``BidirectionalTransformer.param_groups`` (decay the
matrices; no decay for biases, LayerNorms, ``tok_emb``, ``pos_emb``, the output ``bias``); the
optimizer must be AdamW (or Adam with decoupled decay) and use the lr and betas it is given (the
checker passes betas other than the default when the function takes them). The checker's model
records calls of its ``param_groups``: that method IS the answer (``loop.uses_reference``).

``reference_configure_optimizers`` and ``reference_train_one_epoch`` are labcore's with these
signatures (what a notebook runs when the student's do not pass yet): the AdamW of
``labcore.training`` on ``BidirectionalTransformer.param_groups``, and a plain epoch of
``labcore.maskgit.mvtm_loss`` steps.
"""

from __future__ import annotations

import torch

from labcore.checkers.fallback import record
from labcore.checkers.fixtures import tiny_transformer
from labcore.checkers.report import (CheckResult, accepts, call, changed, check_pair, describe, fail, ok, run_probes,
                                     snapshot, uses_reference)
from labcore.checkers.training_epoch import check_train_one_epoch
from labcore.maskgit import mvtm_loss
from labcore.transformer import BidirectionalTransformer

K, N = 8, 16                   # the tiny transformer: K codes (mask id K), N tokens
LR, WEIGHT_DECAY = 3e-4, 0.05
BETAS, DEFAULT_BETAS = (0.85, 0.95), (0.9, 0.96)  # passed when the function takes betas; its default

__all__ = ["check_configure_optimizers", "check_train_one_epoch", "check_training_loop",
           "reference_configure_optimizers", "reference_train_one_epoch"]


# ----------------------------------------------------------------------------- labcore's reference

def reference_configure_optimizers(model: torch.nn.Module, lr: float, weight_decay: float,
                                   betas=DEFAULT_BETAS) -> torch.optim.AdamW:
    """labcore's optimizer (``labcore.training``'s stage 2): AdamW on the transformer's
    ``param_groups`` (decay on the weight matrices; none on biases, LayerNorms, embeddings)."""
    return torch.optim.AdamW(model.param_groups(weight_decay), lr=lr, betas=tuple(betas))


def reference_train_one_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer,
                              mask_token_id: int, gamma_fn) -> float:
    """One pass over ``loader`` (token maps (B, N) long): per batch labcore's ``mvtm_loss`` (mask,
    forward, cross-entropy of the masked tokens), backward, step. Returns the mean loss."""
    model.train()
    device = next(model.parameters()).device
    losses = []
    for tokens in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = mvtm_loss(model, tokens.to(device), mask_token_id, gamma_fn)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def check_training_loop(configure_optimizers=None, train_one_epoch=None, seed: int = 0) -> CheckResult:
    """Check ``configure_optimizers`` and/or ``train_one_epoch`` (give either or both) on a tiny
    transformer: ``check_configure_optimizers`` and ``check_train_one_epoch`` in one report (each
    piece's own result is recorded for ``yours_or_reference``). ``str()`` of the result is the report."""
    return check_pair("check_training_loop", ("configure_optimizers", configure_optimizers, check_configure_optimizers),
                      ("train_one_epoch", train_one_epoch, check_train_one_epoch), seed)


# ----------------------------------------------------------------------------- configure_optimizers

class WatchedTransformer(BidirectionalTransformer):
    """The checker's transformer: its ``param_groups`` (labcore's answer to the exercise) still
    works, and records each call in ``answer_calls``."""

    def param_groups(self, weight_decay: float) -> list[dict]:
        self.answer_calls.append("model.param_groups (labcore's own grouping)")
        return super().param_groups(weight_decay)


def check_configure_optimizers(configure_optimizers, seed: int = 0) -> CheckResult:
    """Check ``configure_optimizers(model, lr, weight_decay, betas=...)`` on a tiny transformer.
    ``str()`` of the result is the report."""
    state: dict = {}

    def setup():
        model = tiny_transformer(K, N, seed, output_bias_std=1.0)  # no parameter all zeros
        model.__class__ = WatchedTransformer                       # same weights; param_groups now records
        model.answer_calls = []
        state.update(model=model, weights=snapshot(*model.parameters()),
                     trainable=[p.requires_grad for p in model.parameters()])

    result = run_probes("check_configure_optimizers", [
        ("returns a torch.optim optimizer", lambda: _probe_optimizer(configure_optimizers, state)),
        ("leaves the model's weights as they were", lambda: _probe_model_unchanged(state)),
        ("AdamW (Adam with the decay beside the step)", lambda: _probe_class(state)),
        ("every parameter in one group, decay on the weight matrices only", lambda: _probe_groups(state)),
        ("the lr, betas and weight decay it is given", lambda: _probe_settings(state)),
    ], "loop.error", seed, setup, own=configure_optimizers)
    return record("configure_optimizers", configure_optimizers, result)


def _probe_optimizer(configure_optimizers, state):
    model = state["model"]
    if accepts(configure_optimizers, model, LR, WEIGHT_DECAY, betas=BETAS):
        state["betas"] = BETAS
        opt = call(configure_optimizers, model, LR, WEIGHT_DECAY, betas=BETAS)
    else:
        state["betas"] = DEFAULT_BETAS
        opt = call(configure_optimizers, model, LR, WEIGHT_DECAY)
    state["opt"] = opt
    if model.answer_calls:
        return uses_reference("loop", "your code calls " + ", ".join(dict.fromkeys(model.answer_calls)))
    if not isinstance(opt, torch.optim.Optimizer):
        return fail("loop.not_an_optimizer", f"got {describe(opt)}")
    return ok()


def _probe_model_unchanged(state):
    params = dict(state["model"].named_parameters())
    moved = [list(params)[i] for i in changed(state["weights"], *params.values())]
    moved += [n for (n, p), was in zip(params.items(), state["trainable"]) if p.requires_grad != was]
    if moved:
        return fail("loop.mutates_input", "your function changed the model's parameters (values or "
                    f"requires_grad): {', '.join(dict.fromkeys(moved))}")
    return ok()


def _probe_class(state):
    opt = state["opt"]
    adamw = isinstance(opt, torch.optim.AdamW)
    decoupled = all(g.get("decoupled_weight_decay", adamw) for g in opt.param_groups)
    if isinstance(opt, torch.optim.Adam) and decoupled:
        return ok()
    if isinstance(opt, torch.optim.Adam) and any(g.get("weight_decay", 0) for g in opt.param_groups):
        return fail("loop.adam_l2", f"{type(opt).__name__} with weight_decay > 0 and no decoupled decay")
    plain_adam = " without decoupled weight decay" if isinstance(opt, torch.optim.Adam) else ""
    return fail("loop.not_adamw", f"got {type(opt).__module__}.{type(opt).__name__}{plain_adam}")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")


def _probe_groups(state):
    model, opt = state["model"], state["opt"]
    decayed = {id(p) for p in BidirectionalTransformer.param_groups(model, WEIGHT_DECAY)[0]["params"]}  # the answer
    where = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    missing = [n for n, p in names.items() if id(p) not in where]
    if missing:
        return fail("loop.params_missing", f"not in any group: {_listed(missing)}")
    wd = {n: where[id(p)].get("weight_decay", 0.0) for n, p in names.items()}
    extra = [n for n, p in names.items() if id(p) not in decayed and wd[n] != 0]
    lacking = [n for n, p in names.items() if id(p) in decayed and wd[n] == 0]
    found = []
    if extra:
        found.append(fail("loop.decay_on_norms_biases_embeddings", f"decayed: {_listed(extra)}"))
    if lacking:
        found.append(fail("loop.no_weight_decay", f"not decayed: {_listed(lacking)}"))
    return found or ok()


def _probe_settings(state):
    groups, betas = state["opt"].param_groups, state["betas"]
    found = []
    lrs = sorted({float(g.get("lr", float("nan"))) for g in groups if float(g.get("lr", float("nan"))) != LR})
    if lrs:
        found.append(fail("loop.lr_ignored", f"called with lr={LR}; the groups have lr {lrs}"))
    got = sorted({tuple(float(b) for b in g["betas"]) for g in groups if "betas" in g} - {betas})
    if got:
        found.append(fail("loop.betas_ignored", f"called with betas={betas}; the groups have betas {got}"))
    other = sorted({f"weight_decay {float(g.get('weight_decay', 0))}" for g in groups
                    if float(g.get("weight_decay", 0)) not in (0.0, WEIGHT_DECAY)} |
                   {"maximize=True" for g in groups if g.get("maximize")})
    if other:
        found.append(fail("loop.optimizer_settings", f"called with weight_decay={WEIGHT_DECAY}; the groups "
                                                      f"have {', '.join(other)}"))
    return found or ok()
