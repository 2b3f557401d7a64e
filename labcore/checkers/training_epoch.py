"""Checker of ``train_one_epoch`` (exercise 5, second function)::

    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        ...  # -> the epoch's mean loss, a Python float

It runs on a tiny transformer (no dropout: the same input gives the same output; a random output
bias, so that the batches' losses differ) and a loader of 4 token batches (B, N) long that counts
its complete passes. The optimizer is a spy: it records the gradients at each ``step()`` and
leaves the weights as they are. A hook records every forward pass run with gradients (its input,
the training mode) and marks the ones whose output a backward pass reached: those are the
forwards the losses were taken from, so an extra forward (an accuracy to log) changes nothing.
Each of those forwards is matched to the loader batch it masks; each step's gradient is then
matched, up to scale (clipping, sum vs mean), against what each way of writing the loop would
give: this batch's masked-token loss (right; the mean over the masked tokens, over the K codebook
classes only, or per image then over the images are all accepted), the running sum (no
zero_grad), the previous batch's (step before backward), all tokens' loss, zero (reset between
backward and step). The returned number is compared with the mean of the batches' losses.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

from labcore.checkers.fallback import record
from labcore.checkers.fixtures import tiny_transformer
from labcore.checkers.report import CheckResult, call, changed, describe, fail, ok, run_probes, snapshot, unchanged
from labcore.schedules import gamma

K, N = 8, 16                   # the tiny transformer: K codes (mask id K), N tokens
BATCHES, BATCH_SIZE = 4, 4
OUTPUT_BIAS_STD = 2.0          # predictions far from uniform: each batch has its own loss


class SpyOptimizer(torch.optim.SGD):
    """An optimizer that records the gradients at each ``step()`` (and, from ``when()``, how many
    forwards had run and been backpropagated by then) and changes no weight."""

    def __init__(self, params, when=lambda: None):
        super().__init__(list(params), lr=0.1)
        self.grads_at_step: list[list[torch.Tensor | None]] = []
        self.when_at_step: list = []
        self._when = when

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:                    # as torch's optimizers: the closure recomputes the loss
            with torch.enable_grad():
                loss = closure()
        self.grads_at_step.append([None if p.grad is None else p.grad.clone()
                                   for g in self.param_groups for p in g["params"]])
        self.when_at_step.append(self._when())
        return loss


class CountingLoader:
    """The checker's loader: token batches, usable like a list (``len``, indexing, iteration); it
    counts the passes that went through to the end."""

    def __init__(self, batches: list[torch.Tensor]):
        self.batches, self.passes = batches, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        return self.batches[i]

    def __iter__(self):
        yield from self.batches
        self.passes += 1


class SpyGamma:
    """A schedule that counts its calls (did the masking use the gamma_fn it was given?)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, r):
        self.calls += 1
        return self.fn(r)


def check_train_one_epoch(train_one_epoch, seed: int = 0) -> CheckResult:
    """Check ``train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn)`` on a tiny
    transformer. ``str()`` of the result is the report."""
    state: dict = {}

    def setup():
        model = tiny_transformer(K, N, seed, output_bias_std=OUTPUT_BIAS_STD)
        batches = [torch.randint(0, K, (BATCH_SIZE, N)) for _ in range(BATCHES)]                  # each (B, N)
        state.update(model=model, loader=CountingLoader(batches), tokens=snapshot(*batches),
                     weights=snapshot(*model.parameters()), forwards=[], used=[], spying=True,
                     gamma=SpyGamma(gamma("cosine")))
        model.register_forward_hook(lambda module, args, kwargs, out: _record_forward(state, module, args, kwargs, out),
                                    with_kwargs=True)

    result = run_probes("check_train_one_epoch", [
        ("runs and returns the mean loss (a Python float)", lambda: _probe_run(train_one_epoch, state)),
        ("leaves the loader's batches as they were", lambda: _probe_batches(state)),
        ("one pass over the loader, masked with the gamma_fn given", lambda: _probe_pass(state)),
        ("the model is in training mode", lambda: _probe_train_mode(state)),
        ("the gradients at each step: this batch's masked-token loss", lambda: _probe_gradients(state)),
        ("the returned loss is the mean of the batches' losses", lambda: _probe_mean_loss(state)),
    ], "loop.error", seed, setup, own=train_one_epoch)
    return record("train_one_epoch", train_one_epoch, result)


def _record_forward(state, module, args, kwargs, out):
    """Forward hook: remember a forward run with gradients; mark it used when a backward reaches it."""
    if not (state["spying"] and torch.is_grad_enabled() and torch.is_tensor(out) and out.requires_grad):
        return
    tokens = args[0] if args else next(iter(kwargs.values()))
    forward = {"training": module.training, "inputs": torch.as_tensor(tokens).detach().clone(), "used": False}
    state["forwards"].append(forward)

    def reached(grad):
        if state["spying"] and not forward["used"]:
            forward["used"] = True
            state["used"].append(forward)
    out.register_hook(reached)


def _probe_run(train_one_epoch, state):
    model = state["model"].eval()                                   # as after a validation pass
    opt = state["opt"] = SpyOptimizer(model.parameters(), lambda: (len(state["forwards"]), len(state["used"])))
    out = call(train_one_epoch, model, state["loader"], opt, K, state["gamma"])
    state["returned"] = out
    if torch.is_tensor(out) and out.requires_grad:
        return fail("loop.keeps_graph", f"returned {describe(out)} with requires_grad=True")
    if isinstance(out, (bool, np.ndarray)) or not isinstance(out, numbers.Real):     # float, int, numpy floats
        return fail("loop.not_a_float", f"expected a Python float, got {describe(out)}")
    return ok()


def _probe_batches(state):
    batches = state["loader"].batches
    return unchanged("loop.mutates_input", state["tokens"], tuple(batches),
                     tuple(f"the loader's batch {i}" for i in range(len(batches))))


def _probe_pass(state):
    found = []
    if state["loader"].passes > 1:
        found.append(fail("loop.loader_twice", f"the loader was iterated to its end {state['loader'].passes} "
                                               "times in one epoch"))
    if state["gamma"].calls == 0:
        found.append(fail("loop.ignores_gamma_fn", "gamma_fn was called 0 times"))
    return found or ok()


def _probe_train_mode(state):
    modes = [f["training"] for f in (state["used"] or state["forwards"])]
    if modes and all(modes):
        return ok()
    return fail("loop.no_train_mode", f"model.training at each forward the loss came from: {modes}")


# the losses a right loop may minimise (up to scale): loss name -> loss of (logits, targets, masked)
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


def _loss_gradients(model, tokens, inputs):
    """{loss name: (flat gradient, loss value)} for the right losses and the all-token one."""
    params = list(model.parameters())
    logits, masked = model(inputs), inputs == K                                               # (B, N, K+1), (B, N)
    out = {}
    for loss_name, loss_fn in [*RIGHT_LOSSES.items(), ("all tokens", _all_tokens)]:
        loss = loss_fn(logits, tokens, masked)
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        flat = torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])  # (P,)
        out[loss_name] = (flat, loss.item())
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
    for loss_name, xs in refs.items():
        wrong = ["loop.loss_all_tokens"] if loss_name == "all tokens" else []
        if step_first:
            out += [(["loop.step_before_backward", *wrong], loss_name, lambda k, xs=xs: previous(xs, k)),
                    (["loop.step_before_backward", *wrong, "loop.no_zero_grad"], loss_name,
                     lambda k, xs=xs: total(xs, k))]
        else:
            out += [(wrong, loss_name, lambda k, xs=xs: xs[k]),
                    ([*wrong, "loop.no_zero_grad"], loss_name, lambda k, xs=xs: total(xs, k + 1))]
    return sorted(out, key=lambda h: len(h[0]))


def _match_batches(used: list[dict], tokens: list[torch.Tensor]) -> list[int | None]:
    """For each forward the losses came from: the loader batch its input masks (None if none)."""
    out: list[int | None] = []
    for forward in used:
        x = forward["inputs"]                                                                 # (B, N)
        fits = [b for b, t in enumerate(tokens) if x.shape == t.shape and bool(((x == t) | (x == K)).all())]
        free = [b for b in fits if b not in out] or fits
        out.append(free[0] if free else None)
    return out


def _probe_gradients(state):
    n, steps, used = len(state["tokens"]), state["opt"].grads_at_step, state["used"]
    if not steps:
        if changed(state["weights"], *state["model"].parameters()):
            return fail("loop.ignores_optimizer", "optimizer.step() was called 0 times, yet the weights changed")
        return fail("loop.no_step", f"{n} batches, optimizer.step() called 0 times")
    if not state["forwards"]:
        return fail("loop.wrong_gradient", "the model never ran with gradients enabled")
    if not used:
        return fail("loop.no_backward", f"{len(state['forwards'])} forward passes, {len(steps)} optimizer steps, "
                                        "no backward pass through the model's output")
    if len(steps) == 1 and n > 1:
        return fail("loop.step_once_per_epoch", f"{n} batches, optimizer.step() called once")
    if not any((f["inputs"] == K).any() for f in used):
        return fail("loop.wrong_gradient", f"the model's inputs hold no mask token id K = {K}")
    trained = _match_batches(used, state["tokens"])
    if None in trained:
        return fail("loop.wrong_gradient", "the model's input is not a batch of the loader with some tokens "
                                           f"replaced by the mask id K = {K}")
    counts = [trained.count(b) for b in range(n)]
    if counts != [1] * n:
        return fail("loop.not_every_batch", f"times each of the {n} batches was trained on: {counts}")
    if len(steps) != n:
        return fail("loop.wrong_gradient", f"{n} batches: expected {n} optimizer steps, got {len(steps)}")
    return _judge_gradients(state, trained)


def _judge_gradients(state, trained):
    """Match the gradient of every step against the hypotheses (right loop first)."""
    model, opt, used = state["model"], state["opt"], state["used"]
    n = len(trained)
    reached = [u for _, u in opt.when_at_step]                     # forwards backpropagated by each step
    order = "(forward passes with gradients, of them backpropagated) at each optimizer.step(): " + \
        ", ".join(f"({f}, {u})" for f, u in opt.when_at_step)
    step_first = all(u == k for k, u in enumerate(reached))
    state["spying"] = False
    refs: dict[str, list] = {}
    losses: dict[str, list] = {}
    for forward, b in zip(used, trained):
        for loss_name, (grad, loss) in _loss_gradients(model, state["tokens"][b], forward["inputs"]).items():
            refs.setdefault(loss_name, []).append(grad)
            losses.setdefault(loss_name, []).append(loss)
    params = [p for g in opt.param_groups for p in g["params"]]
    G = [torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(params, grads)])
         for grads in opt.grads_at_step]                           # one flat gradient per step
    for ids, _, expected in _hypotheses(refs, step_first):
        if all(_matches(G[k], expected(k)) for k in range(n)):
            if not ids:  # every right loss these gradients match: the returned mean may be any one's
                state["losses"] = {loss_name: losses[loss_name] for loss_name in RIGHT_LOSSES
                                   if all(_matches(G[k], refs[loss_name][k]) for k in range(n))}
            return [fail(i, order if i == "loop.step_before_backward" else "") for i in ids] or ok()
    if step_first:  # e.g. zero_grad, forward, step, backward: every step sees no gradient at all
        return fail("loop.step_before_backward", order)
    if all(g.norm() < 1e-12 for g in G) and all(u == k + 1 for k, u in enumerate(reached)):
        return fail("loop.grads_cleared_before_step", "every step saw zero gradients, after loss.backward(): "
                                                      + order)
    cosines = [F.cosine_similarity(g, r, dim=0).item() if g.norm() > 0 else 0.0 for g, r in zip(G, refs["masked mean"])]
    return fail("loop.wrong_gradient", "cosine(your gradient, the masked-token loss gradient) at each step: "
                                       + ", ".join(f"{c:.3f}" for c in cosines))


def _probe_mean_loss(state):
    if "losses" not in state:
        return []  # judged only when the gradients are right (the losses are then known)
    got = float(state["returned"])
    close = lambda want: abs(got - want) <= 1e-3 * max(1.0, abs(want))  # noqa: E731
    if any(close(sum(v) / len(v)) for v in state["losses"].values()):
        return ok()
    values = next(iter(state["losses"].values()))
    detail = (f"expected {sum(values) / len(values):.4f} (the mean over {len(values)} batches: "
              f"{', '.join(f'{v:.4f}' for v in values)}), got {got:.4f}")
    if any(close(sum(v)) for v in state["losses"].values()):
        return fail("loop.returns_sum", detail)
    if any(close(x) for v in state["losses"].values() for x in v):
        return fail("loop.returns_one_batch", detail)
    return fail("loop.wrong_return", detail)
