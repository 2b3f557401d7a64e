"""Checkers of the students' exercises: run your function or module on small fixed cases, judge
properties (not labcore's random stream), and name the classic mistake when something is off.

Each checker returns a ``CheckResult``: ``passed`` (also its truth value), ``mistakes`` (the stable
id of every failed probe, from ``labcore.checkers.mistakes.MISTAKES``, each with a one-line
explanation and what to fix) and a short report (``print(result)``). A checker never raises on
student code: whatever the code raises or returns becomes a finding. Code that reaches labcore's
own implementation of the exercise (``ownership``: what its code objects name and what runs inside
it) fails as ``<exercise>.uses_reference``. Each checker records the piece it checked:
``yours_or_reference("decode_step")`` is then the student's piece if its latest check passed,
labcore's reference otherwise (one line says which; each piece falls back alone). The
``reference_*`` functions are labcore's own pieces with the exercises' signatures (the fallbacks;
the notebooks never import them). ``with_attention(transformer, YourAttention)`` is a copy of a
transformer whose blocks run your attention class with the same weights (notebook 01: same
predictions); the product's ``labcore.decoding_variants`` holds one decoding step per classic
mistake (the ids of this package's table), each runnable in the real ``decode`` loop.

====================  ==============================================  ==========================
exercise              checker (one graded cell each)                  notebook
====================  ==============================================  ==========================
attention             ``check_attention(MultiHeadAttention)``         01_multi_head_attention
encode                ``check_encode_to_z(encode_to_z)``              00_tokens
gamma                 ``check_gamma(gamma_func)``                     02_train_stage2
masking               ``check_mask_tokens(mask_tokens)``,             02_train_stage2
                      ``check_masked_loss(masked_loss)``
                      (both at once: ``check_masking``)
loop                  ``check_configure_optimizers(...)``,            02_train_stage2
                      ``check_train_one_epoch(...)``
                      (both at once: ``check_training_loop``)
decode                ``check_decode_step(decode_step)``              03_iterative_decoding
frechet               ``check_frechet_distance(frechet_distance)``    04_fid
====================  ==============================================  ==========================
"""

from labcore.checkers.attention import check_attention, copy_into_torch_mha, load_attention_weights, with_attention
from labcore.checkers.decoding import check_decode_step
from labcore.checkers.fallback import yours_or_reference
from labcore.checkers.frechet import check_frechet_distance, reference_frechet_distance
from labcore.checkers.mask_probes import check_mask_tokens, check_masking
from labcore.checkers.masked_loss import check_masked_loss
from labcore.checkers.masking import reference_mask_tokens, reference_masked_loss
from labcore.checkers.mistakes import EXERCISES, MISTAKES, Mistake, mistakes_of, table_markdown
from labcore.checkers.report import CheckResult
from labcore.checkers.schedules import check_gamma
from labcore.checkers.tokens import check_encode_to_z, reference_encode_to_z
from labcore.checkers.training import (check_configure_optimizers, check_train_one_epoch, check_training_loop,
                                       reference_configure_optimizers, reference_train_one_epoch)

__all__ = ["CheckResult", "EXERCISES", "MISTAKES", "Mistake", "check_attention", "check_configure_optimizers",
           "check_decode_step", "check_encode_to_z", "check_frechet_distance", "check_gamma", "check_mask_tokens",
           "check_masked_loss", "check_masking", "check_train_one_epoch", "check_training_loop", "copy_into_torch_mha",
           "load_attention_weights", "mistakes_of", "reference_configure_optimizers", "reference_encode_to_z",
           "reference_frechet_distance", "reference_mask_tokens", "reference_masked_loss", "reference_train_one_epoch",
           "table_markdown", "with_attention", "yours_or_reference"]
