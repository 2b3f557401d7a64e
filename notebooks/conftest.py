"""nbval settings for the notebooks: outputs that differ between runs for no real reason
(HTML tables, pictures, widgets, progress bars on stderr) are never compared; only text outputs of
cells marked ``# NBVAL_CHECK_OUTPUT`` are."""

SKIP_COMPARE = (
    "text/html",
    "image/png",
    "image/svg+xml",
    "application/javascript",
    "application/vnd.jupyter.widget-view+json",
    "application/vnd.jupyter.widget-state+json",
    "stderr",
)


def pytest_collectstart(collector):
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb":
        collector.skip_compare += SKIP_COMPARE
