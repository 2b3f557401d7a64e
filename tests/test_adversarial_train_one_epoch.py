"""Adversarial suite of ``check_train_one_epoch`` (exercise 5, second function), written from the
notebook's signature and docstring only, by someone trying to fool the checker:

    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        '''One pass over `loader` (token maps (B, N) long, on the CPU): per batch mask, forward, masked
        loss, backward, optimizer step.
        returns  the mean of the batches' losses, a Python float'''

In the notebook the loop calls the globals ``mask_tokens_used`` and ``masked_loss_used`` (the
student's pieces once they passed, labcore's otherwise); both forms are here: loops that mask
inline, loops that call those globals (the student's own copies, and labcore's references, which
stay allowed). Wrong orders, counts, returns, in-place edits, ignored arguments and labcore's own
loop reached every way must each be named; loops written unlike labcore's must pass.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labcore.checkers import check_train_one_epoch
from labcore.checkers.masking import reference_mask_tokens, reference_masked_loss
from labcore.checkers.training import reference_train_one_epoch as my_epoch  # an alias of labcore's
from labcore.maskgit import mvtm_loss

from adversarial_cases import Case, assert_case

CHECK = check_train_one_epoch


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny tensors: one torch thread (conftest's ``one_thread``) for the whole module."""


# ----------------------------------------------------------------------------- the student's pieces (exercise 4)

def mask_tokens_used(tokens, mask_token_id, gamma_fn, generator=None):
    B, N = tokens.shape
    n = torch.ceil(gamma_fn(torch.rand(B, generator=generator)) * N).long().clamp(1, N)      # (B,)
    masked = torch.rand(B, N, generator=generator).argsort(1).argsort(1) < n[:, None]      # (B, N)
    return tokens.masked_fill(masked, mask_token_id), masked


def masked_loss_used(logits, targets, masked):
    return F.cross_entropy(logits[masked], targets[masked])


def _mask_in_place(tokens, mask_token_id, gamma_fn):
    _, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
    tokens[masked] = mask_token_id                                      # the caller's batch changes
    return tokens, masked


def _in_notebook_with_references(fn, name: str):
    """``fn`` as the notebook runs it before exercise 4 passed: its globals mask_tokens_used and
    masked_loss_used are labcore's references."""
    return types.FunctionType(fn.__code__, {**fn.__globals__, "mask_tokens_used": reference_mask_tokens,
                                            "masked_loss_used": reference_masked_loss}, name)


# ----------------------------------------------------------------------------- correct, written otherwise

def right_notebook_style(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    device = next(model.parameters()).device
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        logits = model(inputs.to(device))
        loss = masked_loss_used(logits, tokens.to(device), masked.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


right_with_labcore_pieces = _in_notebook_with_references(right_notebook_style, "right_with_labcore_pieces")


def right_extra_forward_for_accuracy(model, loader, optimizer, mask_token_id, gamma_fn):
    """An extra forward WITH gradients, only to log an accuracy: it trains exactly right."""
    model.train()
    total, accuracy = 0.0, []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad(set_to_none=True)
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        accuracy.append((model(inputs).argmax(-1)[masked] == tokens[masked]).float().mean().item())
        total += loss.item()
    return total / len(loader)


def right_accuracy_forward_first(model, loader, optimizer, mask_token_id, gamma_fn):
    """The accuracy forward (with gradients, in eval mode) comes before the training forward."""
    accuracy = []
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        model.eval()
        accuracy.append((model(inputs).argmax(-1) == tokens)[masked].float().mean().item())
        model.train()
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return float(np.mean(losses))


def right_clip_zero_after_step(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train(True)
    running = torch.zeros((), dtype=torch.float64)
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        optimizer.step()
        optimizer.zero_grad()
        running += loss.detach().double()
    return (running / len(loader)).item()


def right_distributions_ignore_index(model, loader, optimizer, mask_token_id, gamma_fn):
    """Positions before ratios, torch.distributions, ignore_index, model.zero_grad, np.mean."""
    model.train()
    losses = []
    for tokens in loader:
        B, N = tokens.shape
        scores = torch.distributions.Uniform(0.0, 1.0).sample((B, N))                          # (B, N)
        r = torch.distributions.Uniform(0.0, 1.0).sample((B,))                                 # (B,)
        n = torch.ceil(torch.as_tensor(gamma_fn(r)) * N).clamp(1, N)                          # (B,)
        masked = scores.argsort(1).argsort(1) < n[:, None]                                    # (B, N)
        model.zero_grad(set_to_none=False)
        logits = model(torch.where(masked, mask_token_id, tokens))                            # (B, N, K+1)
        loss = F.cross_entropy(logits.transpose(1, 2), tokens.masked_fill(~masked, -100), ignore_index=-100)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.mean(losses)


def right_per_image_then_images_reversed(model, loader, optimizer, mask_token_id, gamma_fn):
    """The batches in reverse order; per-image means; log_softmax + gather; float32 numpy scalar."""
    model.train()
    losses = []
    for i in reversed(range(len(loader))):
        tokens = loader[i]
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        nll = -model(inputs).log_softmax(-1).gather(-1, tokens[..., None])[..., 0]            # (B, N)
        loss = ((nll * masked).sum(1) / masked.sum(1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return np.float32(sum(losses) / len(losses))


def right_codebook_classes_peek_first(model, loader, optimizer, mask_token_id, gamma_fn):
    """Peeks at the first batch (not a full pass), then one pass; scores the K codes only; sums
    per-token losses and divides."""
    first = next(iter(loader))
    device = first.device
    model.train()
    total, count = 0.0, 0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens.to(device), mask_token_id, gamma_fn)
        logits = model(inputs)[..., :mask_token_id]                                            # (B, N, K)
        loss_sum = F.cross_entropy(logits[masked], tokens[masked], reduction="sum")
        loss = loss_sum / masked.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        count += 1
    return total / count


def right_list_once(model, loader, optimizer, mask_token_id, gamma_fn):
    batches = list(loader)                                  # one pass, kept
    model.train()
    losses = []
    for tokens in batches:
        inputs, masked = mask_tokens_used(tokens.clone(), mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return math.fsum(losses) / len(batches)


def right_step_with_closure(model, loader, optimizer, mask_token_id, gamma_fn):
    """optimizer.step(closure), as torch documents it: the closure clears, computes and backpropagates."""
    model.train()
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)

        def closure():
            optimizer.zero_grad()
            loss = masked_loss_used(model(inputs), tokens, masked)
            loss.backward()
            return loss
        losses.append(optimizer.step(closure).item())
    return sum(losses) / len(losses)


def wrong_random_subset_of_masked(model, loader, optimizer, mask_token_id, gamma_fn):
    """The loss on a random half of the masked tokens: the gradient only looks right."""
    model.train()
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        scored = masked & (torch.rand(masked.shape) < 0.5)
        scored[:, 0] |= masked[:, 0]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs)[scored], tokens[scored])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


def wrong_mask_drawn_twice(model, loader, optimizer, mask_token_id, gamma_fn):
    """The model sees one mask, the loss is taken on the positions of another draw."""
    model.train()
    losses = []
    for tokens in loader:
        inputs, _ = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        _, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


# ----------------------------------------------------------------------------- wrong: one knob turned

def _loop(*, train=True, zero="before", order="backward_step", backward=True, loss="masked", returns="mean",
          mask=mask_tokens_used):
    """A student's loop with one knob turned."""
    def train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
        if train == "eval":
            model.eval()
        elif train:
            model.train()
        values = []
        for tokens in loader:
            inputs, masked = mask(tokens, mask_token_id, gamma_fn)
            if zero == "before":
                optimizer.zero_grad()
            logits = model(inputs)
            if loss == "masked":
                value = F.cross_entropy(logits[masked], tokens[masked])
            elif loss == "all":
                value = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
            elif loss == "known":
                value = F.cross_entropy(logits[~masked], tokens[~masked])
            elif loss == "smoothed":
                value = F.cross_entropy(logits[masked], tokens[masked], label_smoothing=0.1)
            else:                                            # the inputs as targets: masked ones are K
                value = F.cross_entropy(logits[masked], inputs[masked])
            if order == "backward_step" and backward:
                value.backward()
            if zero == "between":
                optimizer.zero_grad()
            optimizer.step()
            if order == "step_twice":
                value.backward()
                optimizer.step()
            if zero == "after":
                optimizer.zero_grad()
            if order == "step_backward":
                value.backward()
            values.append(value)
        floats = [v.item() for v in values]
        return {"mean": lambda: sum(floats) / len(floats), "sum": lambda: sum(floats), "last": lambda: floats[-1],
                "first": lambda: floats[0], "n+1": lambda: sum(floats) / (len(floats) + 1),
                "tensor_graph": lambda: sum(values) / len(values),
                "tensor": lambda: torch.tensor(floats).mean(), "ndarray": lambda: np.array([np.mean(floats)]),
                "list": lambda: floats, "tuple": lambda: (sum(floats) / len(floats), 0.5), "none": lambda: None,
                "int": lambda: int(sum(floats) / len(floats))}[returns]()
    return train_one_epoch


def _masked_fill_in_place(tokens, mask_token_id, gamma_fn):
    _, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
    return tokens.masked_fill_(masked, mask_token_id), masked


def _fixed_ratio(tokens, mask_token_id, gamma_fn):
    return mask_tokens_used(tokens, mask_token_id, lambda r: 0.5 + 0 * r)


def _labcore_cosine(tokens, mask_token_id, gamma_fn):
    from labcore.schedules import gamma
    return mask_tokens_used(tokens, mask_token_id, gamma("cosine"))


def _mask_with_zero(tokens, mask_token_id, gamma_fn):
    return mask_tokens_used(tokens, 0, gamma_fn)


# ----------------------------------------------------------------------------- wrong: written out

def step_once_per_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    optimizer.zero_grad()
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        losses.append(masked_loss_used(model(inputs), tokens, masked))
    total = torch.stack(losses).mean()
    total.backward()
    optimizer.step()
    return total.item()


def backward_per_batch_step_at_end(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    optimizer.zero_grad()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        total += loss.item()
    optimizer.step()
    return total / len(loader)


def accumulates_two_batches(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for i, tokens in enumerate(loader):
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        if i % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()
        total += loss.item()
    return total / len(loader)


def skips_the_last_batch(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for i in range(len(loader) - 1):
        inputs, masked = mask_tokens_used(loader[i], mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), loader[i], masked)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / (len(loader) - 1)


def first_batch_every_time(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    first = next(iter(loader))
    total = 0.0
    for _ in loader:
        inputs, masked = mask_tokens_used(first, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), first, masked)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def counts_by_iterating(model, loader, optimizer, mask_token_id, gamma_fn):
    n = len(list(loader))                               # a pass just to count
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / n


def two_epochs(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    losses = []
    for _ in range(2):
        for tokens in loader:
            inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
            optimizer.zero_grad()
            loss = masked_loss_used(model(inputs), tokens, masked)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return sum(losses) / len(losses)


def own_adamw(model, loader, optimizer, mask_token_id, gamma_fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        opt.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(loader)


def manual_sgd_update(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        model.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 1e-2 * p.grad
        total += loss.item()
    return total / len(loader)


def never_steps(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        total += loss.item()
    return total / len(loader)


def loss_rebuilt_from_a_number(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        optimizer.zero_grad()
        loss = torch.tensor(masked_loss_used(model(inputs), tokens, masked).item(), requires_grad=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def forward_without_grad(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        with torch.no_grad():
            logits = model(inputs)
        optimizer.zero_grad()
        loss = masked_loss_used(logits, tokens, masked)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def no_masking(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens).transpose(1, 2), tokens)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def loader_of_pairs(model, loader, optimizer, mask_token_id, gamma_fn):
    for tokens, _ in loader:
        pass
    return 0.0


def model_device_attribute(model, loader, optimizer, mask_token_id, gamma_fn):
    device = model.device
    return reference_free_mean(model, loader, optimizer, mask_token_id, gamma_fn, device)


def reference_free_mean(model, loader, optimizer, mask_token_id, gamma_fn, device):
    return 0.0


def calls_labcore_s_epoch(model, loader, optimizer, mask_token_id, gamma_fn):
    return my_epoch(model, loader, optimizer, mask_token_id, gamma_fn)


def imports_labcore_s_epoch_inside(model, loader, optimizer, mask_token_id, gamma_fn):
    from labcore.checkers.training import reference_train_one_epoch
    return reference_train_one_epoch(model, loader, optimizer, mask_token_id, gamma_fn)


def uses_mvtm_loss(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        optimizer.zero_grad()
        loss = mvtm_loss(model, tokens, mask_token_id, gamma_fn)["loss"]
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def _helper_step(model, tokens, mask_token_id, gamma_fn):
    import labcore.maskgit
    return labcore.maskgit.mvtm_loss(model, tokens, mask_token_id, gamma_fn)["loss"]


def uses_mvtm_loss_in_a_helper(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    total = 0.0
    for tokens in loader:
        optimizer.zero_grad()
        loss = _helper_step(model, tokens, mask_token_id, gamma_fn)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(loader)


def uses_stage2_forward_backward(model, loader, optimizer, mask_token_id, gamma_fn):
    from labcore.training import stage2
    model.train()
    for tokens in loader:
        optimizer.zero_grad()
        stage2.forward_backward(model, tokens, mask_token_id, gamma_fn, None)
        optimizer.step()
    return 0.0


def no_zero_grad_notebook_style(model, loader, optimizer, mask_token_id, gamma_fn):
    model.train()
    losses = []
    for tokens in loader:
        inputs, masked = mask_tokens_used(tokens, mask_token_id, gamma_fn)
        loss = masked_loss_used(model(inputs), tokens, masked)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / len(losses)


CORRECT = [right_notebook_style, right_with_labcore_pieces, right_extra_forward_for_accuracy,
           right_accuracy_forward_first, right_clip_zero_after_step, right_distributions_ignore_index,
           right_per_image_then_images_reversed, right_codebook_classes_peek_first, right_list_once,
           right_step_with_closure]

WRONG = [
    ("no_train_mode", _loop(train=False), "loop.no_train_mode"),
    ("eval_mode", _loop(train="eval"), "loop.no_train_mode"),
    ("no_zero_grad", _loop(zero=None), "loop.no_zero_grad"),
    ("step_before_backward", _loop(order="step_backward"), "loop.step_before_backward"),
    ("step_before_backward_zero_after", _loop(order="step_backward", zero="after"), "loop.step_before_backward"),
    ("step_before_backward_no_zero", _loop(order="step_backward", zero=None), "loop.step_before_backward"),
    ("zero_between_backward_and_step", _loop(zero="between"), "loop.grads_cleared_before_step"),
    ("no_backward", _loop(backward=False), "loop.no_backward"),
    ("all_tokens", _loop(loss="all"), "loop.loss_all_tokens"),
    ("all_tokens_no_zero_grad", _loop(loss="all", zero=None), "loop.loss_all_tokens"),
    ("loss_on_known_tokens", _loop(loss="known"), "loop.wrong_gradient"),
    ("label_smoothing", _loop(loss="smoothed"), "loop.wrong_gradient"),
    ("inputs_as_targets", _loop(loss="inputs"), "loop.wrong_gradient"),
    ("step_twice_per_batch", _loop(order="step_twice"), "loop.wrong_gradient"),
    ("returns_tensor_with_graph", _loop(returns="tensor_graph"), "loop.keeps_graph"),
    ("returns_detached_tensor", _loop(returns="tensor"), "loop.not_a_float"),
    ("returns_ndarray", _loop(returns="ndarray"), "loop.not_a_float"),
    ("returns_list", _loop(returns="list"), "loop.not_a_float"),
    ("returns_tuple", _loop(returns="tuple"), "loop.not_a_float"),
    ("returns_none", _loop(returns="none"), "loop.not_a_float"),
    ("returns_sum", _loop(returns="sum"), "loop.returns_sum"),
    ("returns_last", _loop(returns="last"), "loop.returns_one_batch"),
    ("returns_first", _loop(returns="first"), "loop.returns_one_batch"),
    ("divides_by_n_plus_1", _loop(returns="n+1"), "loop.wrong_return"),
    ("returns_int", _loop(returns="int"), "loop.wrong_return"),
    ("masks_in_place", _loop(mask=_mask_in_place), "loop.mutates_input"),
    ("masked_fill_in_place", _loop(mask=_masked_fill_in_place), "loop.mutates_input"),
    ("fixed_ratio", _loop(mask=_fixed_ratio), "loop.ignores_gamma_fn"),
    ("labcore_cosine_hard_coded", _loop(mask=_labcore_cosine), "loop.ignores_gamma_fn"),
    ("mask_id_zero", _loop(mask=_mask_with_zero), "loop.wrong_gradient"),
    ("step_once_per_epoch", step_once_per_epoch, "loop.step_once_per_epoch"),
    ("backward_per_batch_step_at_end", backward_per_batch_step_at_end, "loop.step_once_per_epoch"),
    ("accumulates_two_batches", accumulates_two_batches, "loop.wrong_gradient"),
    ("skips_the_last_batch", skips_the_last_batch, "loop.not_every_batch"),
    ("first_batch_every_time", first_batch_every_time, "loop.not_every_batch"),
    ("counts_by_iterating", counts_by_iterating, "loop.loader_twice"),
    ("two_epochs", two_epochs, "loop.loader_twice"),
    ("two_epochs_repeat", two_epochs, "loop.not_every_batch"),
    ("never_steps", never_steps, "loop.no_step"),
    ("own_adamw", own_adamw, "loop.ignores_optimizer"),
    ("manual_sgd_update", manual_sgd_update, "loop.ignores_optimizer"),
    ("loss_rebuilt_from_a_number", loss_rebuilt_from_a_number, "loop.no_backward"),
    ("forward_without_grad", forward_without_grad, "loop.error"),
    ("no_masking", no_masking, "loop.wrong_gradient"),
    ("loss_on_a_random_half_of_the_masked", wrong_random_subset_of_masked, "loop.wrong_gradient"),
    ("mask_drawn_twice", wrong_mask_drawn_twice, "loop.wrong_gradient"),
    ("loader_of_pairs", loader_of_pairs, "loop.error"),
    ("model_device_attribute", model_device_attribute, "loop.error"),
    ("calls_labcore_s_epoch", calls_labcore_s_epoch, "loop.uses_reference"),
    ("labcore_s_epoch_itself", my_epoch, "loop.uses_reference"),
    ("imports_labcore_s_epoch_inside", imports_labcore_s_epoch_inside, "loop.uses_reference"),
    ("uses_mvtm_loss", uses_mvtm_loss, "loop.uses_reference"),
    ("uses_mvtm_loss_in_a_helper", uses_mvtm_loss_in_a_helper, "loop.uses_reference"),
    ("uses_stage2_forward_backward", uses_stage2_forward_backward, "loop.uses_reference"),
    ("no_zero_grad_with_labcore_pieces", _in_notebook_with_references(no_zero_grad_notebook_style, "no_zero_grad"),
     "loop.no_zero_grad"),
]

CASES = [Case(fn.__name__, fn) for fn in CORRECT] + \
    [Case(f"{name}->{expect}", fn, expect) for name, fn, expect in WRONG]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    assert_case(CHECK, case)
