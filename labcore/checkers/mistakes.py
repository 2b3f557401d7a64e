"""The one table of mistakes the checkers diagnose: stable id -> what is wrong, and the fix.

An id is ``<exercise>.<mistake>``; the exercises are those of ``labcore.checkers``. Ids never
change meaning (notebooks, grading and ``labcore.decoding_variants`` refer to them); a new mistake gets a
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
    ("attention.signature", "The class cannot be built as MultiHeadAttention(dim, num_heads, attn_drop), the "
     "signature labcore's transformer uses.", "Keep the constructor's three arguments, in that order.", False),
    ("attention.layout", "The checker cannot find the projections: nn.Linear layers named qkv (or query, key, "
     "value) and proj (or out), of sizes dim -> 3*dim (or dim -> dim each) and dim -> dim.",
     "Keep the layers the given __init__ builds, with their names and sizes: the weights are loaded into them.",
     False),
    ("attention.not_a_tensor", "forward does not return a torch tensor (a list, a NumPy array, a number, ...): "
     "labcore's transformer adds its output to x.", "Keep every step a torch operation and return the tensor "
     "itself (or a tuple whose first item is it).", False),
    ("attention.shape", "The output is not a tensor of the input's shape (B, N, dim).",
     "After attending, put the heads back side by side so each token has dim channels again.", False),
    ("attention.dtype", "The output's dtype is not the input's (float64 for a float32 x, or float32 for "
     "float64): the next layer then fails with 'mixed dtype'.", "Let every tensor follow x's dtype: no "
     "float64 constants, no hard-coded .float() or .double().", False),
    ("attention.qkv_split", "q, k and v are not the three thirds of self.qkv(x) in that order, [all queries | "
     "all keys | all values].", "Cut the projection's output along the channels into three equal parts, q first, "
     "then k, then v, before splitting heads.", False),
    ("attention.no_scaling", "The scores are not divided by sqrt(d_k): the softmax is far too sharp.",
     "Scale the scores so their variance stays near 1: by the square root of ONE head's size d_k.", False),
    ("attention.scale_by_dim", "The scores are divided by sqrt(dim) instead of sqrt(d_k), the size of ONE head.",
     "The dot products are over one head's d_k = dim / num_heads channels: that is the size to use.", False),
    ("attention.wrong_scale", "The scores are scaled by another factor than 1 / sqrt(d_k) (by 1 / d_k without "
     "the root, or multiplied instead of divided).", "A dot product of d_k unit-variance terms has standard "
     "deviation sqrt(d_k): divide by exactly that.", False),
    ("attention.causal_mask", "A causal (triangular) mask hides later tokens: MaskGIT's transformer is "
     "bidirectional, every token attends to every token.", "Mask nothing: a token in the hole must see the "
     "known tokens on both sides of it.", False),
    ("attention.softmax_axis", "The softmax runs over the wrong axis: the weights of each query over the keys must "
     "sum to 1.", "Normalise along the axis of your scores that indexes the keys, one distribution per query.",
     False),
    ("attention.head_split", "The heads are split (or merged back) by a reshape that mixes positions and channels, "
     "or attention runs over the heads instead of the tokens.",
     "Each head owns d_k of the channels of every token: cut the channel axis, then bring the head axis before "
     "the tokens; merging undoes exactly those steps.", False),
    ("attention.no_output_projection", "The concatenated heads are returned without the output projection.",
     "Finish with W_O (self.proj): it mixes what the heads found.", False),
    ("attention.num_heads", "The module does not use num_heads heads of size dim // num_heads (a head count or a "
     "size is hard-coded).", "Take the number of heads and their size from the constructor's arguments, never "
     "from constants.", False),
    ("attention.dropout_in_eval", "The output is random in eval mode: dropout is applied even when not training.",
     "Dropout must follow the module's mode (self.training): in eval mode the output is deterministic.", False),
    ("attention.no_dropout", "In training mode no attention weight is dropped: attn_drop is never applied.",
     "Apply the dropout the constructor builds to the attention weights, after the softmax.", False),
    ("attention.dropout_misplaced", "In training mode the dropout is not the one on the attention weights: "
     "it is elsewhere (q, k, v, the scores, the output), at another rate than attn_drop, or not rescaled.",
     "Drop attention weights (after the softmax, before weighting the values) at the constructor's rate.", False),
    ("attention.no_gradient", "Gradients do not flow from the output back to x and the weights (detached, "
     "computed under no_grad, through .data or through NumPy).", "Build the output from x and the layers with "
     "torch operations only, so the training step can follow it back.", False),
    ("attention.wrong_output", "The output differs from torch.nn.MultiheadAttention holding the same weights.",
     "Check each step against the math: q, k, v; scaled scores; softmax over the keys; weighted values; "
     "merged heads; output projection.", _G),
    # --- 2. encode_to_z
    ("encode.error", "encode_to_z raised an exception.", "Read the error below; run it on two images and print "
     "each shape.", _G),
    ("encode.returns_tuple", "It returns a tuple (what vqgan.encode returns) instead of the token ids.",
     "The exercise's result is the ids alone, one row per image: pick them out of what the VQGAN returns.", False),
    ("encode.not_a_tensor", "It returns a list, a NumPy array, a number or None, not a torch tensor: the ids feed "
     "nn.Embedding and the transformer, which take one torch tensor of dtype long.",
     "Stay in torch from the VQGAN's output to the result: one tensor, not .tolist(), .numpy() or a list of "
     "rows.", False),
    ("encode.returns_vectors", "It returns the quantized vectors z_q (floats), not the codebook indices.",
     "A token is the id of a codebook vector, not the vector: return the ids.", False),
    ("encode.shape", "The ids are not one row of 256 tokens per image, shape (B, 256).",
     "Keep the batch axis as it is (any B, not a fixed number) and turn each image's 16x16 map into one row.",
     False),
    ("encode.dtype", "The ids are not integers of type torch.long.",
     "Token ids index nn.Embedding and are cross-entropy targets, both need int64: keep the dtype the codebook "
     "search gives.", False),
    ("encode.transposed", "The 16x16 map is flattened column by column (transposed).",
     "Token 16 i + j is row i, column j: read the map row by row, as it comes, without reordering its axes.",
     False),
    ("encode.wrong_order", "Each image's ids are right but in another order (flipped, shifted or sorted), so "
     "position n no longer holds token 16 i + j.", "Every position embedding was trained on one place of the "
     "map: keep the row-by-row order of the map as it comes.", False),
    ("encode.mixes_images", "The ids are right but spread over the wrong images: rows mix tokens of several "
     "images (the batch axis was reordered with the token axes).", "The batch axis stays first and whole: "
     "reshape only the axes of one image.", False),
    ("encode.skips_quant_conv", "The nearest codebook vector is looked up without quant_conv.",
     "The codebook was learned on quant_conv's output: every stage of the VQGAN's encoding path must run.", False),
    ("encode.wrong_ids", "The ids differ from the VQGAN's own nearest-codebook indices.",
     "Use the VQGAN's encoder and codebook as they are; do not normalise the images again.", _G),
    # --- 3. gamma
    ("gamma.error", "gamma_func, or the schedule it returned, raised an exception.",
     "Read the error below; try gamma_func('cosine')(0.5) yourself.", _G),
    ("gamma.not_callable", "gamma_func(mode) does not return a function of r.",
     "gamma_func(mode) returns the schedule itself (a function of r), not its value at some r.", False),
    ("gamma.not_a_number", "For a float r the schedule does not return one number (decoding multiplies it with a "
     "tensor).", "For a float r give back a float (a 0-d tensor works too), not None, a list or an array.", False),
    ("gamma.no_tensor_input", "The schedule fails on a tensor of ratios, or gives other values for it than for "
     "floats (labcore's training calls it on one ratio per image, a (B,) tensor).",
     "Use operations that work element-wise on a tensor as well as on a float (math's functions take one "
     "number only).", False),
    ("gamma.not_a_tensor", "For a tensor of ratios the schedule returns a list, tuple or NumPy array: labcore's "
     "training rounds the shares with torch and needs a tensor back.",
     "Stay in torch for a tensor r: no conversion to NumPy or Python lists on the way.", False),
    ("gamma.tensor_shape", "For a tensor of ratios of shape (B,) the schedule returns a tensor of another shape "
     "((B, 1), 0-d, ...): training needs one share per image.",
     "Work element-wise on r without adding, removing or reducing dimensions.", False),
    ("gamma.tensor_dtype", "For a tensor of ratios the schedule returns an integer tensor or one less precise than "
     "r, so the rounded counts can be off.", "Keep the shares floating point, at r's precision or above.", False),
    ("gamma.sin_cos_swap", "cosine uses sin instead of cos: it rises from 0 to 1.",
     "gamma(r) = cos(pi r / 2) starts at 1 and falls to 0.", False),
    ("gamma.cosine_period", "cosine's angle is not pi * r / 2, so gamma(1) is not cos(pi / 2) = 0.",
     "r in [0, 1] must map to a quarter turn of the angle, in radians.", False),
    ("gamma.r_squared", "square returns r ** 2, which rises from 0 to 1, instead of 1 - r ** 2.",
     "gamma(r) is the share still masked: 1 at r = 0, 0 at r = 1.", False),
    ("gamma.square_of_linear", "square returns (1 - r) ** 2, the square of linear, instead of 1 - r ** 2.",
     "Square r itself, then take it away from 1: the curve must stay near 1 for small r (concave).", False),
    ("gamma.reversed", "The schedule runs backwards: gamma(0) = 0 and gamma(1) = 1, but gamma(r) is the share "
     "still masked, 1 at the start.", "Start from 1 and fall to 0: linear 1 - r, cosine cos(pi r / 2), "
     "square 1 - r ** 2.", False),
    ("gamma.wrong_mode", "The function returned for one mode is another mode's schedule.",
     "Check the branches: each mode name must return its own formula.", False),
    ("gamma.unknown_mode", "An unknown mode name does not raise (it returns a schedule or None), so a typo trains "
     "with the wrong schedule, or fails far from the cause.",
     "A name that is none of the three modes must raise an exception (ValueError) in gamma_func itself.", False),
    ("gamma.wrong_values", "gamma(r) differs from the closed form at the points shown.",
     "linear 1 - r, cosine cos(pi r / 2), square 1 - r ** 2, for r in [0, 1].", _G),
    # --- 4. masked training step
    ("masking.error", "mask_tokens or masked_loss raised an exception.",
     "Read the error below; run it on the small case shown.", _G),
    ("masking.shape", "mask_tokens must return (inputs, masked), both tensors of the tokens' shape (B, N): inputs "
     "int64 ids (the embedding needs them), masked bool (it selects positions).",
     "Return a pair of two new tensors of shape (B, N), with those dtypes, no lists or arrays.", False),
    ("masking.outputs_swapped", "mask_tokens returns (masked, inputs): the pair is in the wrong order.",
     "The training step unpacks inputs first, then the boolean mask.", False),
    ("masking.inverted", "The masking is inverted: the known tokens are replaced by the mask token and the "
     "masked ones are kept.", "masked is True where a token is replaced: the mask id goes exactly there.",
     False),
    ("masking.mask_id_collides", "Masked positions hold a codebook index, not the mask token id K: the "
     "transformer cannot tell a masked token from a real one.",
     "Replace with mask_token_id (K, the codebook size; codebook ids are 0..K-1).", False),
    ("masking.ratio_per_batch", "One mask ratio is drawn for the whole batch: every image masks the same number "
     "of tokens.", "Draw one ratio per image (B of them) and give gamma_fn all of them.", False),
    ("masking.ratio_law", "The ratios given to gamma_fn are not drawn uniformly from [0, 1].",
     "r ~ U(0, 1), one per image: a uniform draw, not a normal one, nor a scaled or shifted one.", False),
    ("masking.ignores_gamma", "mask_tokens does not use the gamma_fn it is given (never called, its result "
     "ignored, or a schedule of its own), so training cannot switch schedules.",
     "The share to mask of each image is gamma_fn(r) of its own ratio r, with the gamma_fn passed in.", False),
    ("masking.same_positions", "Every image of the batch masks the same positions.",
     "Draw a random order of the positions per image (one row of random numbers per image).", False),
    ("masking.positions_not_uniform", "The masked positions are not uniform at random: some positions are masked "
     "far more often than others, or always as one block.",
     "Every set of n positions must be equally likely: rank independent uniform scores within each image.", False),
    ("masking.count", "The number of masked tokens per image is not ceil(gamma(r) * N).",
     "Mask n = ceil(gamma(r) * N) tokens (at least 1), with r ~ U(0, 1) and gamma the given gamma_fn.", False),
    ("masking.count_rounding", "The number masked is gamma(r) * N rounded down or to the nearest, not up.",
     "Round up (the ceiling), as the paper does: a share above 0 masks at least one token.", False),
    ("masking.count_min_one", "An image can mask no token at all when gamma(r) is 0, and gives the loss "
     "nothing to learn from.", "Keep every image's count between 1 and N.", False),
    ("masking.count_from_batch", "The number masked follows the batch size B, not the N tokens of an image "
     "(len(tokens) or tokens.shape[0] is B).", "N is the size of the second axis of tokens (B, N).", False),
    ("masking.ignores_generator", "mask_tokens does not draw its random numbers from the generator it is given "
     "(or, for None, from torch's global stream): the same seed must give the same mask, another seed another.",
     "Pass the generator to every random draw; draw nothing from NumPy, random or a generator of your own.", False),
    ("masking.in_place", "mask_tokens changed the caller's tokens (in-place masked_fill_ or index assignment): "
     "the loss's targets are then mask tokens.", "Build inputs as a new tensor and leave tokens as they came.",
     False),
    ("masking.inconsistent", "inputs and masked disagree: inputs must hold the mask id exactly where masked is "
     "True and the original tokens elsewhere.", "Build inputs from the very mask you return.", _G),
    ("masking.loss_not_scalar", "masked_loss must return one number, a 0-d tensor.",
     "Reduce the per-token losses to one 0-d tensor (no (1,) tensor, list or tuple).", False),
    ("masking.loss_detached", "The loss has no gradient (.item(), .detach(), numpy or torch.no_grad inside): "
     "loss.backward() cannot train anything.", "Compute it with torch operations on the logits and return the "
     "tensor itself.", False),
    ("masking.loss_backward", "loss.backward() on the returned loss fails, or gives the logits another gradient "
     "than the loss's own (an in-place edit of a tensor autograd needs, backward() already called inside).",
     "Leave backward to the training step, and edit nothing in place that the gradient needs.", False),
    ("masking.loss_all_tokens", "The loss is averaged over all tokens, not only the masked ones (the known ones "
     "are copies of the input: nothing to learn).", "Select the masked positions before averaging.", False),
    ("masking.loss_on_known", "The loss is computed on the known tokens instead of the masked ones.",
     "masked is True where the token was replaced: those are the positions to score.", False),
    ("masking.loss_sum", "The loss sums over the masked tokens instead of averaging: its scale (and the "
     "effective learning rate) then follows the number of masked tokens.",
     "Average over the masked tokens.", False),
    ("masking.loss_denominator", "The masked tokens' losses are divided by another count than the number of "
     "masked tokens (B * N, N or B).", "Divide the masked sum by how many tokens are masked, in the whole batch.",
     False),
    ("masking.loss_axis", "The log-softmax runs over the wrong axis (the images or the positions), not over the "
     "K+1 ids of each token.", "Each token's prediction is a distribution over the last axis of logits.", False),
    ("masking.loss_not_log_probs", "The loss takes the logits (or the probabilities) at the targets, not the "
     "log-probabilities: no log-softmax.", "Cross-entropy is -log softmax(logits) at the target id.", False),
    ("masking.loss_wrong", "The loss differs from the cross-entropy of the masked tokens.",
     "The mean of -log softmax(logits)[target] over the masked tokens, over the K+1 classes.", _G),
    # --- 5. training loop
    ("loop.error", "configure_optimizers or train_one_epoch raised an exception.",
     "Read the error below (it names your line); run your function on the tiny model yourself.", _G),
    ("loop.not_an_optimizer", "configure_optimizers must return a torch.optim optimizer object (not its groups, "
     "a list or a tuple).", "Build the optimizer from your parameter groups and return the optimizer itself.", False),
    ("loop.not_adamw", "The optimizer is not AdamW (nor Adam with decoupled weight decay): its update rule is not "
     "the one MaskGIT trains with.", "Use the optimizer the exercise names: Adam's adaptive step with the weight "
     "decay applied beside it, not folded into the gradient.", False),
    ("loop.params_missing", "Some trainable parameters are in no parameter group: they never train.",
     "Every parameter the model has must land in exactly one group: build the groups from all of them.", False),
    ("loop.decay_on_norms_biases_embeddings", "Weight decay is applied to biases, LayerNorm weights or "
     "embeddings: it pulls them towards 0 for no benefit.", "Decide what a tensor IS (the weight of a Linear "
     "layer or not), not what shape it has; only Linear weights get weight_decay.", False),
    ("loop.no_weight_decay", "The weight matrices get no weight decay: weight_decay is not used.",
     "The group of the Linear weight matrices must carry the weight_decay argument.", False),
    ("loop.adam_l2", "torch.optim.Adam with weight_decay adds an L2 term to the gradient, not the decoupled "
     "decay of AdamW.", "The decay must act on the weights beside Adam's step, not pass through its gradient "
     "normalisation.", False),
    ("loop.lr_ignored", "The optimizer's learning rate is not the lr argument (hard-coded, or a default).",
     "Every group must use the lr the function is given.", False),
    ("loop.betas_ignored", "The optimizer's betas are not the betas argument (hard-coded, or the optimizer's "
     "default).", "Hand the betas the function is given on to the optimizer.", False),
    ("loop.optimizer_settings", "The optimizer's settings differ from the arguments (a weight decay other than "
     "weight_decay or 0, maximize, ...).", "The decayed group uses exactly weight_decay, the others 0; leave the "
     "optimizer's other settings at their defaults.", _G),
    ("loop.no_train_mode", "The model is not in training mode while training: dropout stays off.",
     "Switch the model to training mode at the start of the epoch (a validation pass switches it off).", False),
    ("loop.no_zero_grad", "Gradients are never reset: every step uses the sum of all the gradients so far.",
     "backward() ADDS to .grad: clear the gradients once per batch, before its backward.", False),
    ("loop.step_before_backward", "optimizer.step() runs before loss.backward(): each step uses stale "
     "gradients (the previous batch's, or none at all after zero_grad).",
     "A step must use the gradients of the batch just computed: backward first, then step.", False),
    ("loop.grads_cleared_before_step", "The gradients are reset between backward() and step(): the optimizer "
     "steps with zero gradients and nothing learns.", "Clear the gradients before a batch's backward, never "
     "between its backward and its step.", False),
    ("loop.no_step", "optimizer.step() is never called: the weights never change.",
     "Each batch ends with one optimizer step, after its backward.", False),
    ("loop.ignores_optimizer", "The optimizer it is given never steps, yet the weights changed: the loop "
     "trains with an optimizer of its own (or updates the weights by hand).",
     "Train with the optimizer passed in: it holds the groups, settings and state the caller chose.", False),
    ("loop.step_once_per_epoch", "optimizer.step() runs once per epoch instead of once per batch.",
     "One step per batch: the step belongs inside the loop over the batches.", False),
    ("loop.not_every_batch", "Not every batch of the loader is trained on exactly once (a batch is skipped or "
     "repeated).", "One epoch is one pass over the loader: train on each batch it yields, once.", False),
    ("loop.loader_twice", "The loader is iterated more than once per epoch: a DataLoader loads and reshuffles "
     "at every pass, and a one-shot iterator is empty the second time.",
     "Pass over the loader once; count the batches as they come (or use len(loader)).", False),
    ("loop.ignores_gamma_fn", "The masking never calls the gamma_fn it is given: the mask ratios do not follow "
     "the schedule the caller chose.", "Mask each batch with the schedule passed in as gamma_fn.", False),
    ("loop.no_backward", "loss.backward() is never called: there are no gradients, so every step changes "
     "nothing.", "Each batch needs its gradients: backward of its loss, before the step.", False),
    ("loop.loss_all_tokens", "The training loss is computed on all tokens, not only the masked ones.",
     "Use the loss of exercise 4: the known tokens are copies of the input, only the masked ones teach.", False),
    ("loop.keeps_graph", "The returned loss is a tensor that keeps its graph: summing loss tensors keeps every "
     "step's graph in memory.", "Keep plain numbers of the batches' losses, not the tensors.", False),
    ("loop.not_a_float", "train_one_epoch must return one Python number; it returned a tensor, an array, a list "
     "or nothing.", "Turn each batch's loss into a Python number and return their mean as a float.", False),
    ("loop.returns_sum", "It returns the sum of the batches' losses, not their mean.",
     "Divide by the number of batches trained on.", False),
    ("loop.returns_one_batch", "It returns the loss of one batch (the last or the first), not the mean over the "
     "epoch.", "Keep every batch's loss and return their mean.", False),
    ("loop.wrong_return", "train_one_epoch must return the epoch's mean loss, a Python float.",
     "The mean of the losses of the batches trained on: their sum over their number.", _G),
    ("loop.wrong_gradient", "The gradients at optimizer.step() are not those of the masked-token loss of the "
     "current batch.", "Per batch: mask, forward, loss on the masked tokens, backward, step.", _G),
    # --- 6. decoding step
    ("decode.error", "decode_step raised an exception.", "Read the error below; run it on the small case shown.", _G),
    ("decode.shape", "decode_step must return (tokens, masked, filled): three torch tensors, each of the input's "
     "shape (B, N), which labcore's decoding loop unpacks and reshapes.",
     "Return a StepResult (or a plain 3-tuple) of tensors shaped like tokens, not arrays, lists or extra axes.", False),
    ("decode.dtype", "The returned tensors have the right shape but the wrong dtype: labcore's loop needs tokens and "
     "filled as int64 ids, like the input tokens, and masked as bool, to index with it.",
     "Keep the ids in the dtype of the tokens you were given and build the new mask from comparisons (bool).", False),
    ("decode.predicts_mask_token", "A masked token was filled with the mask token id K itself.",
     "The mask token is an input marker, not an image token: predict among the K codebook ids only.", False),
    ("decode.remasks_known", "Known tokens were masked again: they must never be re-masked.",
     "Make a known token the most confident of all, so that it is never among the least confident.", False),
    ("decode.overwrites_known", "Known tokens were replaced by the transformer's prediction.",
     "Only masked positions take a prediction; a known token is kept exactly as it came.", False),
    ("decode.reencodes", "Known tokens changed to values the transformer did not predict: the step re-encodes "
     "the decoded image (or rewrites known tokens some other way).",
     "Encode the image once, before the loop; a step never changes a known token.", False),
    ("decode.keeps_least_confident", "The most confident predictions stay masked and the least confident are "
     "kept.", "The positions masked again are the LEAST confident ones: check the direction of your sort.", False),
    ("decode.confidence_from_logits", "The confidence is a raw logit, not the log-probability of the prediction.",
     "A raw logit is only known up to a constant per token: normalise over the codebook first (log-probabilities), "
     "then read the prediction's value.", False),
    ("decode.count_from_current", "The number kept masked is computed from the tokens masked now, not from the "
     "initial count M0.", "The schedule is a share of each image's INITIAL masked count M0 (the m0 argument).", False),
    ("decode.count_ceil", "The number kept masked uses ceil where floor is meant.",
     "The count rounds gamma(t/T) * M0 down, then is clamped.", False),
    ("decode.count_round", "The number kept masked rounds gamma(t/T) * M0 to the nearest integer where floor is meant.",
     "The count rounds gamma(t/T) * M0 down (floor), then is clamped.", False),
    ("decode.count_from_n", "The number kept masked is a share of all N tokens of the image, not of its initial "
     "masked count M0.", "The schedule is a share of the tokens that were masked at the start (m0), not of the "
     "whole image.", False),
    ("decode.count_batch_sum", "The number kept masked comes from a total over the whole batch, not from each image's "
     "own count.", "Every quantity of the count is per image, a (B,) tensor: sum over the tokens axis only.", False),
    ("decode.count_ratio", "The schedule is evaluated at another ratio than t/T (the previous or next step's, "
     "t/(T-1), or 1 - t/T).", "gamma takes the ratio the step is given, unchanged.", False),
    ("decode.ignores_schedule", "The count follows one fixed schedule whatever settings say: the schedule is "
     "hard-coded instead of settings.gamma_fn.", "Take gamma from the settings the step is given, so that every "
     "schedule of the course works.", False),
    ("decode.count_bounds", "The number kept masked is not clamped to [1, remaining - 1] before the last step "
     "(or is not 0 at the last step, t/T = 1).", "Every step but the last decodes at least one token and leaves "
     "at least one; the last step decodes all that is left.", False),
    ("decode.m0_not_per_image", "One M0 is used for the whole batch: every image must follow its own initial "
     "masked count.", "m0 holds one count per image: keep the count per image, a (B,) tensor.", False),
    ("decode.masked_not_reset", "Tokens still masked after the step do not hold the mask token id K.",
     "A position masked again must show the mask token to the next step's transformer.", False),
    ("decode.shared_gumbel", "The noise does not differ between tokens: one Gumbel sample is shared by all "
     "tokens (a scalar), or there is no noise at all.", "A sample shared by every token changes no order: each "
     "token needs its own independent sample.", False),
    ("decode.noise_shared_across_batch", "The images of a batch get the same noise: one sample per position, "
     "shared by every image.", "Every image is its own random draw: the noise needs one sample per image AND per "
     "token.", False),
    ("decode.gumbel_on_probs", "The Gumbel noise is added to probabilities instead of log-probabilities.",
     "The Gumbel-top-k trick samples in proportion to p only when the noise is added to log p.", False),
    ("decode.no_annealing", "The noise is not annealed: its scale stays choice_temperature at every step.",
     "The noise must fade out as t/T goes to 1, so that the last step is pure confidence.", False),
    ("decode.anneal_with_gamma", "The noise is annealed with gamma(t/T) instead of (1 - t/T).",
     "The noise fades with the time left, 1 - t/T, not with the schedule.", False),
    ("decode.noise_law", "The noise is not standard Gumbel noise: with three or more candidates its winners do not "
     "follow softmax(log p / scale), the law the Gumbel-top-k trick gives (wrong sign, Gaussian noise, ...).",
     "A standard Gumbel sample is -log of an Exp(1) sample, -log(-log u); check its sign and its law.", False),
    ("decode.noise_scale", "The noise on the confidences does not have the scale choice_temperature * (1 - t/T).",
     "The noise's scale is the choice temperature from the settings, annealed by the time left.", _G),
    ("decode.sample_temperature", "With sample_temperature > 0 the predictions are not samples of "
     "softmax(logits / sample_temperature).",
     "A temperature divides the logits before they are turned into a distribution; 0 means the argmax.", False),
    ("decode.wrong_result", "The step differs from labcore's decode_step on a deterministic case (both "
     "temperatures 0).", "Predict, score, keep the most confident, re-mask the rest; see the case below.", _G),
    # --- 7. Frechet distance
    ("frechet.error", "frechet_distance raised an exception.", "Read the error below; try it on mu1 = mu2 = "
     "np.zeros(3), sigma1 = sigma2 = np.eye(3) (numpy float64; the answer is 0).", _G),
    ("frechet.not_a_number", "frechet_distance must return one real number that float() takes (a Python float, "
     "a NumPy scalar, a 0-d array or tensor), not a container or None: labcore formats it and subtracts it.",
     "The two terms are sums over all dimensions: reduce each to a single number and return their sum.", False),
    ("frechet.complex_result", "The result is complex: scipy.linalg.sqrtm returns complex numbers, with tiny "
     "imaginary parts from rounding.", "The distance of two real Gaussians is real: the imaginary parts are "
     "rounding noise, so keep only the real part of the matrix square root.", False),
    ("frechet.no_sqrt", "The trace term uses S1 S2 instead of its matrix square root.",
     "The cross term is the trace of (S1 S2)^(1/2): without the root its units are those of a squared covariance.",
     False),
    ("frechet.elementwise_sqrt", "The square root is taken element by element (np.sqrt) instead of as a matrix "
     "square root.", "(S1 S2)^(1/2) is the matrix C with C C = S1 S2, a matrix function: the root of each entry "
     "is not that.", False),
    ("frechet.sqrt_of_trace", "The cross term is the square root of the trace of S1 S2, not the trace of its matrix "
     "square root.", "The trace of a matrix root is not the root of a trace: take the matrix square root first, "
     "then its trace.", False),
    ("frechet.abs_of_complex", "The trace term takes the modulus (np.abs) of the complex matrix square root: that "
     "flips the sign of its negative entries, and on singular covariances the distance comes out far too small.",
     "The imaginary parts are rounding noise and the real part is the answer: drop the imaginary part, do not "
     "fold it in with a modulus.", False),
    ("frechet.elementwise_product", "The matrix square root is taken of the element-wise product sigma1 * sigma2, "
     "not of the matrix product.", "S1 S2 is the matrix product of the covariances (rows times columns); * in "
     "NumPy multiplies entry by entry.", False),
    ("frechet.product_of_roots", "The cross term uses sqrtm(S1) sqrtm(S2): for covariances that do not commute "
     "that is not (S1 S2)^(1/2).", "Take the matrix square root of the product itself, not the product of the "
     "two roots.", False),
    ("frechet.missing_factor_2", "The cross term lacks its factor 2.", "Expand the square (S1^(1/2) - "
     "S2^(1/2))^2 in one dimension: the cross term comes twice.", False),
    ("frechet.sum_not_trace", "A trace is computed as the sum of every entry of the matrix.",
     "The trace is the sum of the diagonal only.", False),
    ("frechet.missing_mean_term", "The mean term |mu1 - mu2|^2 is missing: Gaussians with other means get the "
     "same distance.", "The distance has two terms, one for the means and one for the covariances: add the first.",
     False),
    ("frechet.mean_not_squared", "The mean term is not the squared distance |mu1 - mu2|^2.",
     "The mean term is the squared Euclidean distance: the sum of the squared differences, with no root.", False),
    ("frechet.sqrt_of_distance", "It returns the square root of the distance; FID is d^2 itself.",
     "FID reports d^2, the sum of the two terms, as it is: no final square root.", False),
    ("frechet.low_precision", "The result is a float32 (or float16) number from float64 inputs: float32 keeps "
     "7 digits, and the square roots of the near-zero eigenvalues of singular covariances then cost ~1e-3.",
     "Keep the whole computation in the inputs' float64.", False),
    ("frechet.wrong_value", "The distance differs from the closed form on the case shown.",
     "Compare each term with the formula above the exercise on the case shown (d is small: print them).", _G),
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
