"""labcore: a teaching lab for MaskGIT image inpainting.

One module per idea:

- ``labcore.data``        the emoji64 / course datasets, the pixel-mask -> latent-mask rule
- ``labcore.vqgan``       stage 1: the VQGAN tokenizer (64x64 image <-> 16x16 token ids)
- ``labcore.attention``   multi-head self-attention, explicit math beside the fused kernel
- ``labcore.transformer`` stage 2: the bidirectional transformer
- ``labcore.maskgit``     mask schedules, masked-token training, iterative decoding
- ``labcore.fid``         FID with pytorch-fid's Inception, offline
- ``labcore.runtime``     devices, seeds, atomic checkpoints, CSV logs (shared plumbing)
"""

__version__ = "0.1.0"
