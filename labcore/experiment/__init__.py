"""``labcore experiment``: does iterative decoding beat one-shot decoding, and which mask schedule
and how many iterations inpaint best? Measured by FID, with two cheap columns beside it.

One command, fixed seeds, writes into the output folder (default ``results/``): ``experiments.csv``
(one line per row), ``experiments.md`` (the table: a setting run with several seeds shows mean ±
std; then the aims, checked against the numbers) and ``experiments.png`` (FID vs T per schedule,
one panel per token rule). The package, one idea a module:

- ``rows``     the typed ``Row`` (a setting and its measures) and ``experiments.csv``'s one schema
- ``plan``     what runs, as named stages (baselines, one-shot, grid, sweet-spot sweep, more seeds,
               paste known, the choice-temperature x order sweep), and the variants' plan
- ``scoring``  ``Experiment``: decode a row's setting, then its FID, PSNR of the holes, token accuracy
- ``report``   one entry per setting over its seeds, the Markdown tables, the aims where they apply
- ``figures``  the figures, drawn from rows
- ``runner``   running a plan resumably, writing the files after every row

The token rules (``--sample-temperatures``, default 0 1): 0 takes the argmax token (the course's
rule), t > 0 samples each token from softmax(logits / t). With argmax tokens every token is already
the most likely one, and conditioning on the most likely neighbours mostly confirms it, so the
schedule has little to work with; with sampled tokens one-shot decoding draws every token
independently, and iterative decoding lets the later samples agree with the earlier ones, which is
MaskGIT's point. Every decoding row uses the choice temperature ``--choice-temperature`` (default
4.5). The decoding variants it measures (``--variants``) are the product's:
``labcore.decoding_variants``.

The full run on the bundled models, in the background (``scripts/run-experiment.sh`` does this;
run the same command again to resume)::

    mkdir -p results/experiment750 && nohup .venv/bin/labcore experiment -o results/experiment750 \\
        --no-progress >> results/experiment750/run.log 2>&1 &
"""

from .figures import fid_figure, save_figures, summary_figure, sweep_figure, variants_figure
from .plan import ITERATIONS, SAMPLE_TEMPERATURES, STAGES, Plan, best_row, sweet_spots, variant_plan
from .report import Cost, Entry, aggregate, aims, results_markdown, variant_costs, variants_markdown
from .rows import (FIELDS, MEAN_FILL, ONE_SHOT, ORACLE, Row, baseline_setting, decoding_setting, read_results,
                   variant_setting, write_csv)
from .runner import Runner, previous_rows, run_plan, run_variants, write_results
from .scoring import Experiment, load_test_tensors

__all__ = ["Cost", "Entry", "Experiment", "FIELDS", "ITERATIONS", "MEAN_FILL", "ONE_SHOT", "ORACLE", "Plan", "Row",
           "Runner", "SAMPLE_TEMPERATURES", "STAGES", "aggregate", "aims", "baseline_setting", "best_row",
           "decoding_setting", "fid_figure", "load_test_tensors", "previous_rows", "read_results", "results_markdown",
           "run_plan", "run_variants", "save_figures", "summary_figure", "sweep_figure", "sweet_spots", "variant_costs",
           "variant_plan", "variant_setting", "variants_figure", "variants_markdown", "write_csv", "write_results"]
