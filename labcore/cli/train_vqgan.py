"""``labcore train-vqgan``: see labcore.train_vqgan."""

from labcore.train_vqgan import add_train_vqgan_arguments as add_arguments, run_train_vqgan as run  # noqa: F401
