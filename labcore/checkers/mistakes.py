"""The one table of mistakes the checkers diagnose: stable id -> what is wrong, and the fix.

An id is ``<exercise>.<mistake>``; the exercises are those of ``labcore.checkers``. Ids never
change meaning (notebooks, grading and ``wrong_steps`` refer to them); a new mistake gets a
new id. A *generic* id (marked ``generic=True``) is the fallback when no specific probe named the
cause: the report then shows the smallest case with what was expected and what came back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    id: str
    message: str   # one sentence: what is wrong
    fix: str       # one sentence: what to do
    generic: bool = False

    @property
    def exercise(self) -> str:
        return self.id.split(".")[0]


EXERCISES = {
    "attention": "1. multi-head self-attention: MultiHeadAttention(dim, num_heads, attn_drop)",
    "encode": "2. images to tokens: encode_to_z(vqgan, images)",
    "gamma": "3. mask schedules: gamma_func(mode)",
    "masking": "4. masked training step: mask_tokens(...) and masked_loss(...)",
    "loop": "5. training loop: configure_optimizers(...) and train_one_epoch(...)",
    "decode": "6. one decoding step: decode_step(...)",
    "frechet": "7. Frechet distance: frechet_distance(mu1, sigma1, mu2, sigma2)",
}

_G = True  # generic
_TABLE = [
    # --- 1. attention
    ("attention.error", "Your module raised an exception on a small input.",
     "Read the error below; run your module on torch.randn(2, 8, dim) and print each shape.", _G),
    ("attention.layout", "The checker cannot find the projections: nn.Linear layers named qkv (or query, key, "
     "value) and proj (or out).",
     "Name them like the course: self.qkv = nn.Linear(dim, 3 * dim) (or self.query/key/value) and self.proj "
     "(or self.out).", False),
    ("attention.shape", "The output is not a float tensor of the input's shape (B, N, dim).",
     "Merge the heads back to (B, N, dim) and apply the output projection.", False),
    ("attention.no_scaling", "The scores are not divided by sqrt(d_k): the softmax is far too sharp.",
     "scores = q @ k.transpose(-2, -1) / math.sqrt(d_k), with d_k = dim // num_heads.", False),
    ("attention.scale_by_dim", "The scores are divided by sqrt(dim) instead of sqrt(d_k), the size of ONE head.",
     "d_k = dim // num_heads; divide by math.sqrt(d_k).", False),
    ("attention.softmax_axis", "The softmax runs over the wrong axis: the weights of each query over the keys must "
     "sum to 1.", "On scores of shape (B, H, N_queries, N_keys) take scores.softmax(dim=-1).", False),
    ("attention.head_split", "The heads are split (or merged back) by a reshape that mixes positions and channels.",
     "Split with .view(B, N, H, d_k).transpose(1, 2) -> (B, H, N, d_k); merge with "
     ".transpose(1, 2).reshape(B, N, dim).", False),
    ("attention.no_output_projection", "The concatenated heads are returned without the output projection.",
     "Return self.proj(out): W_O mixes what the heads found.", False),
    ("attention.num_heads", "The module does not use num_heads heads of size dim // num_heads.",
     "Compute d_k = dim // num_heads from the constructor's arguments; do not hard-code the number of heads.",
     False),
    ("attention.dropout_in_eval", "The output is random in eval mode: dropout is applied even when not training.",
     "Use a module, self.attn_drop = nn.Dropout(attn_drop), or F.dropout(w, p, training=self.training).", False),
    ("attention.wrong_output", "The output differs from torch.nn.MultiheadAttention holding the same weights.",
     "Check each step: q, k, v; scores / sqrt(d_k); softmax over the keys; weights @ v; merge heads; proj.", _G),
    # --- 2. encode_to_z
    ("encode.error", "encode_to_z raised an exception.", "Read the error below; run it on two images and print "
     "each shape.", _G),
    ("encode.returns_tuple", "It returns a tuple (what vqgan.encode returns) instead of the token ids.",
     "vqgan.encode returns (z_q, indices, loss): return the indices, flattened.", False),
    ("encode.returns_vectors", "It returns the quantized vectors z_q (floats), not the codebook indices.",
     "Return the indices, the second output of vqgan.encode.", False),
    ("encode.shape", "The ids are not one row of 256 tokens per image, shape (B, 256).",
     "Flatten the (B, 16, 16) index map per image: .flatten(1) or .view(B, -1).", False),
    ("encode.dtype", "The ids are not integers of type torch.long.",
     "Token ids index nn.Embedding and are cross-entropy targets: keep them long (.long()).", False),
    ("encode.transposed", "The 16x16 map is flattened column by column (transposed).",
     "Flatten row by row, as the map comes: no transpose or permute before .flatten(1).", False),
    ("encode.skips_quant_conv", "The nearest codebook vector is looked up without quant_conv.",
     "Go through vqgan.encode (encoder, quant_conv, codebook) rather than calling the parts yourself.", False),
    ("encode.wrong_ids", "The ids differ from the VQGAN's own nearest-codebook indices.",
     "Use the VQGAN's encoder and codebook as they are; do not normalise the images again.", _G),
    # --- 3. gamma
    ("gamma.error", "gamma_func, or the schedule it returned, raised an exception.",
     "Read the error below; try gamma_func('cosine')(0.5) yourself.", _G),
    ("gamma.not_callable", "gamma_func(mode) does not return a function of r.",
     "Return a function: e.g. `return lambda r: 1 - r` for 'linear'.", False),
    ("gamma.not_a_number", "gamma(r) does not return one number for a float r.",
     "Return a float (or a 0-d tensor) for a float r.", False),
    ("gamma.no_tensor_input", "The schedule fails on a tensor of ratios (labcore's training calls it on one ratio "
     "per image, a (B,) tensor).", "Use operations that work on floats and tensors alike: 1 - r, r ** 2, "
     "np.cos or torch.cos (math.cos takes only one number).", False),
    ("gamma.sin_cos_swap", "cosine uses sin instead of cos: it rises from 0 to 1.",
     "gamma(r) = cos(pi * r / 2).", False),
    ("gamma.cosine_period", "cosine's angle is not pi * r / 2, so gamma(1) is not cos(pi / 2) = 0.",
     "gamma(r) = cos(pi * r / 2): r in [0, 1] maps to a quarter turn.", False),
    ("gamma.r_squared", "square returns r ** 2, which rises from 0 to 1, instead of 1 - r ** 2.",
     "gamma(r) = 1 - r ** 2.", False),
    ("gamma.reversed", "The schedule runs backwards: gamma(0) = 0 and gamma(1) = 1, but gamma(r) is the share "
     "still masked, 1 at the start.", "Start from 1 and fall to 0: linear 1 - r, cosine cos(pi r / 2), "
     "square 1 - r ** 2.", False),
    ("gamma.wrong_mode", "The function returned for one mode is another mode's schedule.",
     "Check the branches: each mode name must return its own formula.", False),
    ("gamma.unknown_mode", "An unknown mode name still returns a schedule, so a typo trains with the wrong one.",
     "End with `else: raise ValueError(f'unknown mode {mode!r}')` (or NotImplementedError).", False),
    ("gamma.wrong_values", "gamma(r) differs from the closed form at the points shown.",
     "linear 1 - r, cosine cos(pi r / 2), square 1 - r ** 2, for r in [0, 1].", _G),
    # --- 4. masked training step
    ("masking.error", "mask_tokens or masked_loss raised an exception.",
     "Read the error below; run it on the small case shown.", _G),
    ("masking.shape", "mask_tokens must return (inputs, masked), both (B, N): inputs long ids, masked bool.",
     "Return the masked token map and the boolean mask, in that order, same shape as tokens.", False),
    ("masking.inverted", "The masking is inverted: the known tokens are replaced by the mask token and the "
     "masked ones are kept.", "inputs = tokens.masked_fill(masked, mask_token_id): replace where masked is True.",
     False),
    ("masking.mask_id_collides", "Masked positions hold a codebook index, not the mask token id K: the "
     "transformer cannot tell a masked token from a real one.",
     "Replace with mask_token_id (K, the codebook size; codebook ids are 0..K-1).", False),
    ("masking.ratio_per_batch", "One mask ratio is drawn for the whole batch: every image masks the same number "
     "of tokens.", "Draw r ~ U(0, 1) per image, torch.rand(B), and mask ceil(gamma(r) * N) tokens in each row.",
     False),
    ("masking.same_positions", "Every image of the batch masks the same positions.",
     "Draw a random order per image: torch.rand(B, N).argsort(dim=1), then mask the first n of each row.", False),
    ("masking.count", "The number of masked tokens per image is not ceil(gamma(r) * N).",
     "Mask n = ceil(gamma(r) * N) tokens (at least 1), with r ~ U(0, 1) and gamma the given gamma_fn.", False),
    ("masking.in_place", "mask_tokens changed the caller's tokens (in-place masked_fill_ or index assignment): "
     "the loss's targets are then mask tokens.", "Work on a copy: tokens.masked_fill(...) without the "
     "underscore, or tokens.clone() first.", False),
    ("masking.inconsistent", "inputs and masked disagree: inputs must hold the mask id exactly where masked is "
     "True and the original tokens elsewhere.", "Build inputs from masked: tokens.masked_fill(masked, mask_token_id).",
     _G),
    ("masking.loss_not_scalar", "masked_loss must return one number, a 0-d tensor.",
     "Reduce to a scalar: F.cross_entropy's default reduction='mean'.", False),
    ("masking.loss_detached", "The loss has no gradient (.item(), .detach(), numpy or torch.no_grad inside): "
     "loss.backward() cannot train anything.", "Compute it with torch operations on the logits and return the "
     "tensor itself.", False),
    ("masking.loss_all_tokens", "The loss is averaged over all tokens, not only the masked ones (the known ones "
     "are copies of the input: nothing to learn).", "F.cross_entropy(logits[masked], targets[masked]).", False),
    ("masking.loss_on_known", "The loss is computed on the known tokens instead of the masked ones.",
     "masked is True where the token was replaced: select logits[masked].", False),
    ("masking.loss_sum", "The loss sums over the masked tokens instead of averaging: its scale (and the "
     "effective learning rate) then follows the number of masked tokens.",
     "Average over the masked tokens: F.cross_entropy's default reduction='mean'.", False),
    ("masking.loss_wrong", "The loss differs from the cross-entropy of the masked tokens.",
     "F.cross_entropy(logits[masked], targets[masked]) over the K+1 classes.", _G),
    # --- 5. training loop
    ("loop.error", "configure_optimizers or train_one_epoch raised an exception.",
     "Read the error below; run it on the tiny model yourself.", _G),
    ("loop.not_an_optimizer", "configure_optimizers must return a torch.optim optimizer.",
     "return torch.optim.AdamW(groups, lr=lr, betas=betas).", False),
    ("loop.params_missing", "Some trainable parameters are in no parameter group: they never train.",
     "Put every parameter of model.named_parameters() in exactly one group.", False),
    ("loop.decay_on_norms_biases_embeddings", "Weight decay is applied to biases, LayerNorm weights or "
     "embeddings: it pulls them towards 0 for no benefit.", "Two groups: matrices of Linear layers with "
     "weight_decay; biases, LayerNorms, tok_emb, pos_emb and the output bias with 0.", False),
    ("loop.no_weight_decay", "The weight matrices get no weight decay: weight_decay is not used.",
     "Give the Linear weight matrices {'params': [...], 'weight_decay': weight_decay}.", False),
    ("loop.adam_l2", "torch.optim.Adam with weight_decay adds an L2 term to the gradient, not the decoupled "
     "decay of AdamW.", "Use torch.optim.AdamW.", False),
    ("loop.optimizer_settings", "The optimizer's learning rate, betas or weight decay differ from the arguments.",
     "Pass lr=lr and betas=betas, and weight_decay in the decayed group.", _G),
    ("loop.no_train_mode", "The model is not in training mode while training: dropout stays off.",
     "Call model.train() at the start of the epoch (validation switches it to eval).", False),
    ("loop.no_zero_grad", "Gradients are never reset: every step uses the sum of all the gradients so far.",
     "optimizer.zero_grad() before loss.backward() (or after optimizer.step()).", False),
    ("loop.step_before_backward", "optimizer.step() runs before loss.backward(): each step uses stale "
     "gradients (the previous batch's, or none at all after zero_grad).",
     "Order: zero_grad, forward, loss, backward, step.", False),
    ("loop.grads_cleared_before_step", "The gradients are reset between backward() and step(): the optimizer "
     "steps with zero gradients and nothing learns.", "Order: zero_grad, forward, loss, backward, step.", False),
    ("loop.no_step", "optimizer.step() is never called: the weights never change.",
     "Call optimizer.step() after loss.backward() for every batch.", False),
    ("loop.no_backward", "loss.backward() is never called: there are no gradients, so every step changes "
     "nothing.", "Call loss.backward() after computing the loss and before optimizer.step().", False),
    ("loop.loss_all_tokens", "The training loss is computed on all tokens, not only the masked ones.",
     "Use the loss of exercise 4: cross-entropy on the masked positions only.", False),
    ("loop.keeps_graph", "The returned loss is a tensor that keeps its graph: summing loss tensors keeps every "
     "step's graph in memory.", "Accumulate loss.item() and return a Python float.", False),
    ("loop.wrong_return", "train_one_epoch must return the epoch's mean loss, a Python float.",
     "Sum loss.item() over the batches and return the sum divided by the number of batches.", _G),
    ("loop.wrong_gradient", "The gradients at optimizer.step() are not those of the masked-token loss of the "
     "current batch.", "Per batch: mask, forward, loss on the masked tokens, backward, step.", _G),
    # --- 6. decoding step
    ("decode.error", "decode_step raised an exception.", "Read the error below; run it on the small case shown.", _G),
    ("decode.shape", "decode_step must return (tokens, masked, filled), each (B, N): long, bool, long.",
     "Return StepResult(tokens, masked, filled) (or a plain 3-tuple) of the input's shape.", False),
    ("decode.predicts_mask_token", "A masked token was filled with the mask token id K itself.",
     "Predict among the K codebook ids only: logits[..., :mask_token_id].", False),
    ("decode.remasks_known", "Known tokens were masked again: they must never be re-masked.",
     "Give known tokens +inf confidence: confidence.masked_fill(~masked, float('inf')).", False),
    ("decode.overwrites_known", "Known tokens were replaced by the transformer's prediction.",
     "Fill only masked positions: torch.where(masked, predicted, tokens).", False),
    ("decode.reencodes", "Known tokens changed to values the transformer did not predict: the step re-encodes "
     "the decoded image (or rewrites known tokens some other way).",
     "Encode the image once, before the loop; a step never changes a known token.", False),
    ("decode.keeps_least_confident", "The most confident predictions stay masked and the least confident are "
     "kept.", "Mask again the n LEAST confident: sort the confidence ascending and take the first n.", False),
    ("decode.confidence_from_logits", "The confidence is a raw logit, not the log-probability of the prediction.",
     "confidence = log_softmax(logits, -1).gather(-1, chosen[..., None]): the log-probability of the prediction "
     "(the Gumbel noise is added to it).", False),
    ("decode.count_from_current", "The number kept masked is computed from the tokens masked now, not from the "
     "initial count M0.", "n = floor(gamma(t/T) * M0), with M0 = m0 (each image's own initial count).", False),
    ("decode.count_ceil", "The number kept masked uses ceil where floor is meant.",
     "n = floor(gamma(t/T) * M0), then clamp to [1, remaining - 1].", False),
    ("decode.count_bounds", "The number kept masked is not clamped to [1, remaining - 1] before the last step "
     "(or is not 0 at the last step, t/T = 1).", "n = max(1, min(n, remaining - 1)) while t < T; n = 0 at t = T.",
     False),
    ("decode.m0_not_per_image", "One M0 is used for the whole batch: every image must follow its own initial "
     "masked count.", "Use m0 per image, a (B,) tensor: n = floor(gamma(t/T) * m0).", False),
    ("decode.masked_not_reset", "Tokens still masked after the step do not hold the mask token id K.",
     "tokens = filled.masked_fill(new_masked, mask_token_id).", False),
    ("decode.shared_gumbel", "The noise does not differ between tokens: one Gumbel sample is shared by all "
     "tokens (a scalar), or there is no noise at all.", "Draw one Gumbel sample PER TOKEN, shape (B, N): "
     "g = -log(-log(u)), u ~ U(0, 1).", False),
    ("decode.noise_shared_across_batch", "The images of a batch get the same noise: one sample per position, "
     "shared by every image.", "Draw the noise with the shape of the whole batch, (B, N).", False),
    ("decode.gumbel_on_probs", "The Gumbel noise is added to probabilities instead of log-probabilities.",
     "confidence = log p(chosen) + choice_temperature * (1 - t/T) * g: the noise goes on log-probabilities.",
     False),
    ("decode.no_annealing", "The noise is not annealed: its scale stays choice_temperature at every step.",
     "Scale it by choice_temperature * (1 - t/T): no noise at the last step.", False),
    ("decode.anneal_with_gamma", "The noise is annealed with gamma(t/T) instead of (1 - t/T).",
     "Scale it by choice_temperature * (1 - t/T).", False),
    ("decode.noise_scale", "The noise on the confidences does not have the scale choice_temperature * (1 - t/T).",
     "confidence = log p(chosen) + choice_temperature * (1 - t/T) * g, g standard Gumbel per token.", _G),
    ("decode.sample_temperature", "With sample_temperature > 0 the predictions are not samples of "
     "softmax(logits / sample_temperature).",
     "Sample from softmax(logits / t) (torch.multinomial, or argmax(logits / t + Gumbel)); argmax when t = 0.",
     False),
    ("decode.wrong_result", "The step differs from labcore's decode_step on a deterministic case (both "
     "temperatures 0).", "Predict, score, keep the most confident, re-mask the rest; see the case below.", _G),
    # --- 7. Frechet distance
    ("frechet.error", "frechet_distance raised an exception.", "Read the error below; try it on mu1 = mu2 = "
     "np.zeros(3), sigma1 = sigma2 = np.eye(3) (numpy float64; the answer is 0).", _G),
    ("frechet.not_a_number", "frechet_distance must return one real number (a float).",
     "Return float(...) of the sum of the two terms.", False),
    ("frechet.complex_result", "The result is complex: scipy.linalg.sqrtm returns complex numbers, with tiny "
     "imaginary parts from rounding.", "Keep the real part: covmean = covmean.real (as pytorch-fid does).", False),
    ("frechet.no_sqrt", "The trace term uses S1 S2 instead of its matrix square root.",
     "tr(S1 + S2 - 2 sqrtm(S1 @ S2)).", False),
    ("frechet.elementwise_sqrt", "The square root is taken element by element (np.sqrt) instead of as a matrix "
     "square root.", "scipy.linalg.sqrtm(sigma1 @ sigma2), not np.sqrt.", False),
    ("frechet.missing_factor_2", "The cross term lacks its factor 2.", "tr(S1 + S2 - 2 sqrtm(S1 S2)).", False),
    ("frechet.mean_not_squared", "The mean term is not the squared distance |mu1 - mu2|^2.",
     "diff = mu1 - mu2; diff @ diff (the sum of the squared differences).", False),
    ("frechet.sqrt_of_distance", "It returns the square root of the distance; FID is d^2 itself.",
     "Return |mu1 - mu2|^2 + tr(...) without a final square root.", False),
    ("frechet.wrong_value", "The distance differs from the closed form on the case shown.",
     "d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)).", _G),
]

# Two mistakes every exercise can make: its own id each, so a report names the exercise.
_TABLE += [(f"{exercise}.uses_reference", "labcore's solution, not yours: your code reaches labcore's own "
            "implementation of this exercise, which earns no points.",
            "Write the exercise yourself with the operations its text describes; labcore's piece runs anyway "
            "until yours passes.", False) for exercise in EXERCISES]
_TABLE += [(f"{exercise}.mutates_input", "Your function changed one of its inputs in place: the caller's tensor "
            "(or array) is not what it was, and the code that uses it next computes with wrong values.",
            "Build new tensors (x = x + 1, torch.where, masked_fill without the underscore, .clone() first) "
            "and leave every argument as it came.", False) for exercise in EXERCISES]

MISTAKES: dict[str, Mistake] = {row[0]: Mistake(*row) for row in _TABLE}
assert len(MISTAKES) == len(_TABLE), "duplicate mistake id"
assert all(m.exercise in EXERCISES for m in MISTAKES.values())


def mistakes_of(exercise: str) -> dict[str, Mistake]:
    """The table's rows of one exercise (``'decode'``, ...)."""
    return {k: m for k, m in MISTAKES.items() if m.exercise == exercise}


def table_markdown() -> str:
    """The table as Markdown, one row per id (for the docs and the notebooks)."""
    rows = ["| id | what is wrong | fix |", "|---|---|---|"]
    rows += [f"| `{m.id}` | {m.message} | {m.fix} |" for m in MISTAKES.values()]
    return "\n".join(rows)
