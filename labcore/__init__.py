"""labcore: a teaching lab for MaskGIT image inpainting.

The folders show the architecture: the nine modules of the reading path below are the *reading
core*, what the course teaches (one idea per module, each opening with its formula in the paper's
terms, no function over 50 lines, 1,400 lines in all at most); everything else is tooling that
runs the core (files, caches, training runs, figures, the command line; no function over 80 lines).

A student's reading path, in order (``tests/test_packaging.py`` checks it against READING_PATH):

1  ``data.py``         the datasets, normalisation, pixel mask -> latent (token) mask
2  ``vqgan.py``        stage 1: the VQGAN tokenizer (64x64 image <-> 16x16 token ids)
3  ``attention.py``    multi-head self-attention: the math beside the fused kernel
4  ``transformer.py``  stage 2: the bidirectional transformer
5  ``schedules.py``    mask-scheduling functions gamma (linear, cosine, square, ...)
6  ``maskgit.py``      the MVTM loss (training) and the MaskGit model that inpaints
7  ``decoding.py``     DecodingSettings, one decoding step, the loop, its trace
8  ``metrics.py``      PSNR, SSIM, codebook usage / perplexity
9  ``fid.py``          FID: Inception activations, Gaussian statistics, Frechet distance

Tooling, layered (a module imports only its own layer or those below; tests/test_packaging.py):

- ground floor: ``paths`` (one constant per bundled file), ``validate`` (the one check of a
  parameter's value), ``csv_tables`` (the one CSV reader/writer), ``runtime`` (devices, seeds,
  atomic writes, notes), ``dataset_files`` (finding, reading and checking the dataset's files:
  what ``data`` reads through), ``inception`` (the offline Inception weights that ``fid`` runs)
- ``model_files``    both stages' configs (yml) and weights (.pt) into models; ``load_maskgit``
- ``course_format``  the course's checkpoint formats (``query/key/value`` names, wrapped dicts)
- ``fid_files``      images of folders and ``test_gt.csv``, reference ``.npz`` files, caches, and
                     ``fid_of_folder``, the one way the lab scores a set of predictions
- ``training/``      both stages' training: one config system, the token cache, the loops
                     (``stage1`` VQGAN, ``stage2`` transformer), runs and exact resume, evaluation,
                     precision, DDP, publishing
- ``checkers/``      the checkers of the students' exercises and the table of classic mistakes
- ``viz`` / ``widgets``  figures for the notebooks / the interactive decoding panel
- ``inpaint``, ``experiment``, ``demo``  the test-set job, the FID experiment, the demo
- ``bench``          the benchmarks (above every other tool: only the command line runs them)
- ``cli/``           one small module per ``labcore`` subcommand (argparse, calls, prints)
"""

__version__ = "0.1.0"

# The reading path above, as data (tests/test_packaging.py checks the docstring against it).
READING_PATH = ("data", "vqgan", "attention", "transformer", "schedules", "maskgit", "decoding", "metrics", "fid")
