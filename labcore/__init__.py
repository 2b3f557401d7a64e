"""labcore: a teaching lab for MaskGIT image inpainting.

The folders show the architecture: the modules directly in ``labcore/`` up to ``fid`` are the
*reading core* (what the course teaches, one idea per module, no function over 50 lines); the
rest is tooling that runs the core (no function over 80 lines).

A student's reading path (files in order; ``tests/test_packaging.py`` checks the counts):

====  ======================  =====  ==========================================================
step  file                    lines  the idea
====  ======================  =====  ==========================================================
1     ``data.py``               364  emoji64 / course datasets, normalisation, pixel mask -> latent mask
2     ``vqgan.py``              338  stage 1: the VQGAN tokenizer (64x64 image <-> 16x16 token ids)
3     ``attention.py``          141  multi-head self-attention: the math beside the fused kernel
4     ``transformer.py``        219  stage 2: the bidirectional transformer
5     ``schedules.py``           56  mask-scheduling functions gamma (linear, cosine, square, ...)
6     ``maskgit.py``            215  MVTM loss (training) and the MaskGit model that inpaints
7     ``decoding.py``           259  DecodingSettings, one decoding step, the loop, its trace
8     ``metrics.py``             47  PSNR, SSIM, codebook usage / perplexity
9     ``fid.py``                390  FID: Inception activations, Gaussian statistics, Frechet distance
====  ======================  =====  ==========================================================
      total                    2029

Tooling, apart from the core:

- ``training/``      both stages' training: one config system (``config``: presets, YAML, flags
                     shared by ``train`` and ``train-vqgan``), the token cache (``tokens``), the
                     loops (``stage1`` VQGAN, ``stage2`` transformer), evaluation, DDP, publishing
- ``cli/``           one small module per ``labcore`` subcommand (argparse, calls, prints)
- ``viz`` / ``widgets``  figures for the notebooks / the interactive decoding panel
- ``inpaint``, ``experiment``, ``demo``, ``bench``  the test-set job, the FID experiment, the
                     demo, the benchmarks
- ``inception``      porting the offline Inception weights for ``fid``
- ``course_format``  the course's checkpoint formats (``query/key/value`` names, wrapped dicts)
- ``runtime``, ``paths``  devices, seeds, atomic writes, CSV logs; one constant per bundled file
"""

__version__ = "0.1.0"

# The reading path above, as data (tests/test_packaging.py keeps the table's counts honest).
READING_PATH = ("data", "vqgan", "attention", "transformer", "schedules", "maskgit", "decoding", "metrics", "fid")
