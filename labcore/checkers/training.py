"""Checker of exercise 5, the stage-2 training loop.

What the student writes (the smallest signatures that make the classic mistakes visible)::

    def configure_optimizers(model, lr, weight_decay, betas=(0.9, 0.96)):
        ...  # -> a torch.optim optimizer (AdamW): weight decay on the Linear weight matrices only

    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        # loader yields token batches (B, N) long; per batch: mask (exercise 4), forward,
        # loss on the masked tokens, backward, step
        ...  # -> the epoch's mean loss, a Python float

The reference for the parameter groups is ``BidirectionalTransformer.param_groups`` (decay the
matrices; no decay for biases, LayerNorms, ``tok_emb``, ``pos_emb``, the output ``bias``); the
optimizer must also use the lr and betas it is given (the checker passes betas other than the
default when the function takes them).

``train_one_epoch`` runs a tiny transformer (no dropout: the same input gives the same output;
a random output bias, so that the batches' losses differ) on 4 batches with a spy optimizer that
records the gradients at each ``step()`` and leaves the weights as they are. Hooks record the
model's inputs and training mode at each forward (with gradients enabled) and each
``loss.backward()``, so the order of the calls is known: a step before this batch's backward is
``step_before_backward`` whatever the gradients are. Each recorded gradient is then matched, up
to scale (clipping, sum vs mean), against the gradients the mistakes would give: this batch's
masked-token loss (right; the mean over the masked tokens, over the K codebook classes only, or
per image then over the images are all accepted), the running sum (no zero_grad), the previous
batch's (step before backward), all tokens' loss, zero (reset between backward and step). The
returned mean loss is compared with the mean of the batches' losses of the matched loss.

``reference_configure_optimizers`` and ``reference_train_one_epoch`` are labcore's with these
signatures (what a notebook runs when the student's do not pass yet): the AdamW of
``labcore.training`` on ``BidirectionalTransformer.param_groups``, and a plain epoch of
``labcore.maskgit.mvtm_loss`` steps.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from labcore.checkers.fixtures import tiny_transformer
from labcore.checkers.report import CheckResult, accepts, call, check_pair, describe, fail, ok, run_probes
from labcore.maskgit import mvtm_loss
from labcore.schedules import gamma

K, N = 8, 16                   # the tiny transformer: K codes (mask id K), N tokens
LR, WEIGHT_DECAY = 3e-4, 0.05
BETAS, DEFAULT_BETAS = (0.85, 0.95), (0.9, 0.96)  # passed when the function takes betas; its default
BATCHES, BATCH_SIZE = 4, 4
OUTPUT_BIAS_STD = 2.0          # predictions far from uniform: each batch has its own loss


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
    transformer. ``str()`` of the result is the report."""
    return check_pair("check_training_loop", ("configure_optimizers", configure_optimizers, _check_optimizer), ("train_one_epoch", train_one_epoch, _check_epoch), seed)


# ----------------------------------------------------------------------------- configure_optimizers

def _check_optimizer(configure_optimizers, seed: int) -> CheckResult:
    state: dict = {}
    return run_probes("configure_optimizers", [
        ("returns a torch.optim optimizer", lambda: _probe_optimizer(configure_optimizers, state)),
        ("every parameter in one group, decay on the weight matrices only", lambda: _probe_groups(state)),
    ], "loop.error", seed, lambda: state.update(model=tiny_transformer(K, N, seed)))


def _probe_optimizer(configure_optimizers, state):
    name = "returns a torch.optim optimizer"
    model = state["model"]
    if accepts(configure_optimizers, model, LR, WEIGHT_DECAY, betas=BETAS):
        state["betas"] = BETAS
        opt = call(configure_optimizers, model, LR, WEIGHT_DECAY, betas=BETAS)
    else:
        state["betas"] = DEFAULT_BETAS
        opt = call(configure_optimizers, model, LR, WEIGHT_DECAY)
    state["opt"] = opt
    if not isinstance(opt, torch.optim.Optimizer):
        return fail(name, "loop.not_an_optimizer", f"got {describe(opt)}")
    return ok(name)


def _probe_groups(state):
    name = "every parameter in one group, decay on the weight matrices only"
    model, opt = state["model"], state["opt"]
    decayed = {id(p) for p in model.param_groups(WEIGHT_DECAY)[0]["params"]}             # labcore's reference
    where = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    missing = [n for n, p in names.items() if id(p) not in where]
    if missing:
        return fail(name, "loop.params_missing", f"not in any group: {', '.join(missing)}")
    wd = {n: where[id(p)].get("weight_decay", 0.0) for n, p in names.items()}
    extra = [n for n, p in names.items() if id(p) not in decayed and wd[n] > 0]
    lacking = [n for n, p in names.items() if id(p) in decayed and wd[n] == 0]
    found = []
    if extra:
        found.append(fail(name, "loop.decay_on_norms_biases_embeddings", f"decayed: {', '.join(extra[:6])}"
                                                                           f"{' ...' if len(extra) > 6 else ''}"))
    if lacking:
        found.append(fail(name, "loop.no_weight_decay", f"not decayed: {', '.join(lacking[:6])}"
                                                          f"{' ...' if len(lacking) > 6 else ''}"))
    plain_adam = isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW) and \
        not any(g.get("decoupled_weight_decay") for g in opt.param_groups)
    if plain_adam and any(v > 0 for v in wd.values()):
        found.append(fail("AdamW, not Adam with weight_decay", "loop.adam_l2",
                          "torch.optim.Adam with weight_decay > 0"))
    betas = state["betas"]
    wrong = sorted({f"lr {g['lr']}" for g in opt.param_groups if g.get("lr") != LR} |
                   {f"weight_decay {v}" for v in wd.values() if v not in (0, 0.0, WEIGHT_DECAY)} |
                   {f"betas {tuple(g['betas'])}" for g in opt.param_groups
                    if "betas" in g and tuple(float(b) for b in g["betas"]) != betas})
    if wrong and not found:
        found.append(fail(name, "loop.optimizer_settings", f"called with lr={LR}, weight_decay={WEIGHT_DECAY}, "
                                                            f"betas={betas}; the groups have {', '.join(wrong)}"))
    return found or ok(name)


# ----------------------------------------------------------------------------- train_one_epoch

class SpyOptimizer(torch.optim.SGD):
    """An optimizer that records the gradients at each ``step()`` (and, from ``when()``, how many
    forwards and backwards had run by then) and changes no weight."""

    def __init__(self, params, when=lambda: None):
        super().__init__(list(params), lr=0.1)
        self.grads_at_step: list[list[torch.Tensor | None]] = []
        self.when_at_step: list = []
        self._when = when

    @torch.no_grad()
    def step(self, closure=None):
        self.grads_at_step.append([None if p.grad is None else p.grad.clone()
                                   for g in self.param_groups for p in g["params"]])
        self.when_at_step.append(self._when())


def _check_epoch(train_one_epoch, seed: int) -> CheckResult:
    state: dict = {}

    def setup():
        model = tiny_transformer(K, N, seed, output_bias_std=OUTPUT_BIAS_STD)
        state.update(model=model, loader=[torch.randint(0, K, (BATCH_SIZE, N)) for _ in range(BATCHES)],
                     forwards=[], backwards=0, spying=True)

        def spy_forward(module, args, kwargs):
            if state["spying"] and torch.is_grad_enabled():
                tokens = args[0] if args else next(iter(kwargs.values()))
                state["forwards"].append((module.training, tokens.detach().clone()))

        def spy_backward(param):
            if state["spying"]:
                state["backwards"] += 1
        model.register_forward_pre_hook(spy_forward, with_kwargs=True)
        model.bias.register_post_accumulate_grad_hook(spy_backward)   # the output bias: in every loss's graph

    return run_probes("train_one_epoch", [
        ("runs and returns the mean loss (a float)", lambda: _probe_run(train_one_epoch, state)),
        ("the model is in training mode", lambda: _probe_train_mode(state)),
        ("the gradients at each step: this batch's masked-token loss", lambda: _probe_gradients(state)),
        ("the returned loss is the mean of the batches' losses", lambda: _probe_mean_loss(state)),
    ], "loop.error", seed, setup)


def _probe_run(train_one_epoch, state):
    name = "runs and returns the mean loss (a float)"
    model = state["model"].eval()                                   # as after a validation pass
    opt = state["opt"] = SpyOptimizer(model.parameters(), lambda: (len(state["forwards"]), state["backwards"]))
    out = call(train_one_epoch, model, state["loader"], opt, K, gamma("cosine"))
    state["returned"] = out
    if torch.is_tensor(out) and out.requires_grad:
        return fail(name, "loop.keeps_graph", f"returned {describe(out)} with requires_grad=True")
    is_number = isinstance(out, numbers.Real) and not isinstance(out, bool)          # float, int, numpy floats
    if not (is_number or (torch.is_tensor(out) and out.numel() == 1)):
        return fail(name, "loop.wrong_return", f"expected a float, got {describe(out)}")
    return ok(name)


def _probe_train_mode(state):
    name = "the model is in training mode"
    modes = [training for training, _ in state["forwards"]]
    if modes and all(modes):
        return ok(name)
    return fail(name, "loop.no_train_mode", f"model.training at each forward: {modes}")


# the losses a right loop may minimise (up to scale): name -> loss of (logits, targets, masked)
def _mean_over_masked(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked])


def _over_codebook_classes(logits, targets, masked):
    return F.cross_entropy(logits[masked][:, :K], targets[masked])


def _per_image_then_images(logits, targets, masked):
    ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")                  # (B, N)
    return ((ce * masked).sum(1) / masked.sum(1).clamp_min(1)).mean()


def _all_tokens(logits, targets, masked):
    return F.cross_entropy(logits.transpose(1, 2), targets)


RIGHT_LOSSES = {"masked mean": _mean_over_masked, "masked mean over the K codes": _over_codebook_classes,
                "per image, then over images": _per_image_then_images}


def _reference(model, tokens, inputs):
    """{loss name: (flat gradient, loss value)} for the right losses and the all-token one."""
    params = list(model.parameters())
    logits, masked = model(inputs), inputs == K                                               # (B, N, K+1), (B, N)
    out = {}
    for label, loss_fn in [*RIGHT_LOSSES.items(), ("all tokens", _all_tokens)]:
        loss = loss_fn(logits, tokens, masked)
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out[label] = (torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)]),
                      loss.item())
    return out


def _matches(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Same direction (a gradient up to scale: clipping, sum vs mean), or both zero."""
    if want.norm() < 1e-12 or got.norm() < 1e-12:
        return bool(want.norm() < 1e-12 and got.norm() < 1e-12)
    return F.cosine_similarity(got, want, dim=0).item() > 0.999


def _hypotheses(refs: dict, step_first: bool):
    """(mistake ids, loss name, the gradient expected at step k) for each way of writing the loop,
    fewest mistakes first; refs[name][k]: the gradient of batch k's loss ``name``. ``step_first``:
    every step() came before its batch's backward()."""
    zero = torch.zeros_like(refs["masked mean"][0])
    total = lambda xs, k: sum(xs[:max(k, 0)], zero)  # noqa: E731 - sum of the first k
    previous = lambda xs, k: xs[k - 1] if k else zero  # noqa: E731
    out = []
    for label, xs in refs.items():
        wrong = ["loop.loss_all_tokens"] if label == "all tokens" else []
        if step_first:
            out += [(["loop.step_before_backward", *wrong], label, lambda k, xs=xs: previous(xs, k)),
                    (["loop.step_before_backward", *wrong, "loop.no_zero_grad"], label, lambda k, xs=xs: total(xs, k))]
        else:
            out += [(wrong, label, lambda k, xs=xs: xs[k]),
                    ([*wrong, "loop.no_zero_grad"], label, lambda k, xs=xs: total(xs, k + 1))]
    return sorted(out, key=lambda h: len(h[0]))


def _probe_gradients(state):
    name = "the gradients at each step: this batch's masked-token loss"
    model, loader, forwards, opt = state["model"], state["loader"], state["forwards"], state["opt"]
    steps, when = opt.grads_at_step, opt.when_at_step
    n = len(loader)
    if not steps:
        return fail(name, "loop.no_step", f"{n} batches, optimizer.step() called 0 times")
    if len(forwards) != n or len(steps) != n:
        return fail(name, "loop.wrong_gradient", f"{n} batches: expected {n} forward passes (with gradients) and "
                                                 f"{n} optimizer steps, got {len(forwards)} and {len(steps)}")
    if state["backwards"] == 0:
        return fail(name, "loop.no_backward", f"{n} batches, {n} forward passes and optimizer steps, "
                                              "0 calls of loss.backward()")
    if not all((inputs == K).any() for _, inputs in forwards):
        return fail(name, "loop.wrong_gradient", f"the model's inputs hold no mask token id K = {K}")
    order = "(forward passes, loss.backward() calls) so far at each optimizer.step(): " + \
        ", ".join(f"({f}, {b})" for f, b in when)
    step_first = all(b == f - 1 for f, b in when)
    state["spying"] = False
    refs: dict[str, list] = {}
    losses: dict[str, list] = {}
    for (_, inputs), tokens in zip(forwards, loader):
        for label, (grad, loss) in _reference(model, tokens, inputs).items():
            refs.setdefault(label, []).append(grad)
            losses.setdefault(label, []).append(loss)
    params = [p for g in opt.param_groups for p in g["params"]]
    G = [torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
         for grads in steps]
    for ids, label, expected in _hypotheses(refs, step_first):
        if all(_matches(G[k], expected(k)) for k in range(n)):
            if not ids:  # every right loss these gradients match: the returned mean may be any one's
                state["losses"] = {lb: losses[lb] for lb in RIGHT_LOSSES
                                   if all(_matches(G[k], refs[lb][k]) for k in range(n))}
            return [fail(name, i, order if i == "loop.step_before_backward" else "") for i in ids] or ok(name)
    if step_first:  # e.g. zero_grad, forward, step, backward: every step sees no gradient at all
        return fail(name, "loop.step_before_backward", order)
    if all(g.norm() < 1e-12 for g in G) and all(b >= f for f, b in when):
        return fail(name, "loop.grads_cleared_before_step", "every step saw zero gradients, after loss.backward(): "
                                                            + order)
    R = refs["masked mean"]
    cosines = [F.cosine_similarity(g, r, dim=0).item() if g.norm() > 0 else 0.0 for g, r in zip(G, R)]
    return fail(name, "loop.wrong_gradient", "cosine(your gradient, the masked-token loss gradient) at each step: "
                                             + ", ".join(f"{c:.3f}" for c in cosines))


def _probe_mean_loss(state):
    name = "the returned loss is the mean of the batches' losses"
    if "losses" not in state:
        return []  # judged only when the gradients are right (the losses are then known)
    got = float(state["returned"])
    means = {label: sum(v) / len(v) for label, v in state["losses"].items()}
    if any(abs(got - want) <= 1e-3 * max(1.0, abs(want)) for want in means.values()):
        return ok(name)
    label, values = next(iter(state["losses"].items()))
    return fail(name, "loop.wrong_return", f"expected {means[label]:.4f} (the mean over {len(values)} batches: "
                                           f"{', '.join(f'{v:.4f}' for v in values)}), got {got:.4f}")
