"""``labcore eval-transformer``: see labcore.train."""

from labcore.train import add_eval_transformer_arguments as add_arguments, run_eval_transformer as run  # noqa: F401
