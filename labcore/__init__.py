"""labcore: a teaching lab for MaskGIT image inpainting.

The folders show the architecture: the nine modules of the reading path below are the *reading
core*, what the course teaches (one idea per module, each opening with its formula in the paper's
terms, 1,400 lines in all at most); everything else is tooling that runs the core (files, caches,
training runs, figures, the command line). No function anywhere is over 50 lines.

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
  atomic writes, YAML, notes: plumbing every layer shares), ``dataset_files`` (finding, reading
  and checking the dataset's files: what ``data`` reads through), ``inception`` (the offline
  Inception weights that ``fid`` runs)
- ``model_files``    both stages' configs (yml) and weights (.pt) into models; ``load_maskgit``
- ``course_format``  the course's checkpoint formats (``query/key/value`` names, wrapped dicts)
- ``fid_files``      images of folders and ``test_gt.csv``, reference ``.npz`` files, caches, and
                     ``fid_of_folder``, the one way the lab scores a set of predictions
- ``training/``      both stages' training: one config system, the token cache, the loops
                     (``stage1`` VQGAN, ``stage2`` transformer), runs and exact resume, evaluation,
                     precision, DDP, publishing
- ``quantization``   what stage 1's VQ losses do, measured on a tokenizer (notebook 00): the terms,
                     the straight-through gradient, what commitment holds
- ``decoding_variants``  named decoding variants the experiment measures: the classic mistakes
                     (one table of wrong lines), the Halton order, the annealed sample temperature, re-masking
- ``inpaint``        decoding the test set (the job), or one image for a figure (``inpaint_one``)
- ``student_code``   a student's function from their .py file or notebook (``--step``, notebook 06)
- ``viz/`` / ``widgets``  figures that only draw (a trace or a result in, a bare Figure out) / the
                     interactive decoding panel (decodes with ``inpaint``, then draws with ``viz``)
- ``experiment/``    the FID experiment: typed rows and their CSV, the plan's named stages,
                     scoring, the report and its figures
- ``demo``           the demo
- ``checkers/``      grading: the checkers of the students' exercises and the table of classic
                     mistakes (it imports the product; the product never imports it)
- ``bench``          the benchmarks (above every other tool: only the command line runs them)
- ``cli/``           one small module per ``labcore`` subcommand (argparse, calls, prints)
"""

__version__ = "0.1.0"

# The reading path above, as data (tests/test_packaging.py checks the docstring against it).
READING_PATH = ("data", "vqgan", "attention", "transformer", "schedules", "maskgit", "decoding", "metrics", "fid")
