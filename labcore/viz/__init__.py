"""Pictures for the notebooks. Figures draw, they do not compute: every function takes data
(images, token ids, attention weights, a training log, what a decoding returned: a
``DecodingTrace`` or an ``InpaintResult``) and returns a bare matplotlib ``Figure`` (no pyplot: a
notebook shows it once, when a cell returns it). Images come in the models' normalised space
together with the ``Normalization`` that brings them back to [0, 1].

The decoding the figures of one test image need happens outside, in ``labcore.inpaint``
(``inpaint_one``, ``inpaint_columns``, ``pipeline_stages``); the panel of notebook 03, which decodes
and redraws ``show_decoding`` when a control moves, is ``labcore.widgets``.

- ``images``     image grids, labelled rows, token maps, codebook usage
- ``attention``  attention weights per head, where one token looks
- ``curves``     the mask schedules, training curves (and ``read_csv_log``), the commitment drift
- ``decoding``   the course's per-step figures, the sweet spot, which tokens go first
- ``pipeline``   the whole pipeline in one picture
- ``style``      what they share: bare axes, pixels in [0, 1], the latent mask's colours
"""

from .attention import plot_attention_heads, plot_attention_maps
from .curves import plot_commitment_drift, plot_schedules, plot_training_curves, read_csv_log
from .decoding import (DECODING_COLUMNS, decoded_at_step, decoding_figure, decoding_order_figure, show_decoding,
                       step_text, sweet_spot_figure)
from .images import image_grid, plot_codebook_usage, plot_token_maps, show_image_rows, show_images
from .pipeline import pipeline_figure
from .style import KNOWN, MASKED, NEW, hwc, mask_frames, to_unit

__all__ = ["DECODING_COLUMNS", "KNOWN", "MASKED", "NEW", "decoded_at_step", "decoding_figure",
           "decoding_order_figure", "hwc", "image_grid", "mask_frames", "pipeline_figure", "plot_attention_heads",
           "plot_attention_maps", "plot_codebook_usage", "plot_commitment_drift", "plot_schedules",
           "plot_token_maps", "plot_training_curves", "read_csv_log", "show_decoding", "show_image_rows",
           "show_images", "step_text", "sweet_spot_figure", "to_unit"]
