"""``labcore eval-vqgan``: see labcore.train_vqgan."""

from labcore.train_vqgan import add_eval_vqgan_arguments as add_arguments, run_eval_vqgan as run  # noqa: F401
