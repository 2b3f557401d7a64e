"""Re-execute notebooks in place, the one way every committed notebook is made (``make notebooks``).

    .venv/bin/python scripts/execute-notebooks.py notebooks/[0-9]*.ipynb
    .venv/bin/python scripts/execute-notebooks.py notebooks/01_multi_head_attention.ipynb   # one

For each notebook given, in order:

1. **Start clean.** Every code cell loses its outputs, execution count and timing metadata, and the
   notebook loses its ``widgets`` metadata. (``jupyter nbconvert --execute --inplace`` does neither
   for the widget state: nbclient writes ``metadata.widgets`` only when the new run made widgets,
   so a run without widgets kept the state of an earlier one, e.g. the tqdm bars of a 23-minute run
   that was not the one shown; and a run with widgets stored every model it ever saw, closed ones
   included.)
2. **Execute** with nbclient: the ``python3`` kernel of the interpreter running this script (the
   venv's, under ``make notebooks``), in the notebook's folder, each cell within 1200 s, with
   ``figure.dpi`` 100 and ``savefig.dpi`` "figure" pinned (matplotlib's defaults, what a student's
   kernel uses too: a personal matplotlibrc of whoever re-executes cannot change the committed
   figures). No progress bars: ``JPY_SESSION_NAME`` is removed from the kernel's environment (the
   notebooks draw bars only when a person runs them in JupyterLab, see notebook 02's first cell)
   and ``TQDM_DISABLE=1`` switches off tqdm's text bars whose code does not say (tqdm.notebook's
   widget bars ignore it: step 3 removes those).
3. **Keep only the widget state that a shown output needs.** A widget view left in the outputs
   keeps its model and, transitively, every model its state names (``IPY_MODEL_<id>``: children,
   layouts, styles); every other model goes (stale, closed, or never displayed). An output showing
   a progress bar (a model with a ``...ProgressModel`` below it, or tqdm's text) is removed with
   its models: a bar frozen in a saved notebook says nothing true.
4. **Each figure stored once.** An output that carries both a widget view and its own static
   image (notebook 03's decoding panel: ``DecodingPanel._repr_mimebundle_`` adds the figure on
   show as ``image/png``) is stored as the static image alone: the view key goes, and with it the
   widget's models, among them the ``Output`` model whose state held a second copy of the same
   PNG. Decision, static image over widget state: the static copy is what most readers get anyway
   (GitHub; JupyterLab for a notebook it does not trust, which a freshly cloned one is not),
   and without a view key every viewer shows it, a trusted JupyterLab included (a view whose model
   is not stored reads "Error displaying widget: model not found" there); stored widget state
   would only draw controls that do nothing without a kernel. Running the cell gives the live
   panel either way. A PNG still stored twice in a notebook is reported as a warning
   (tests/test_notebook_hygiene.py fails on it).
5. **Figures as palette PNGs.** Each stored PNG is re-encoded with at most 256 colours (median cut
   refined by k-means, no dithering) when that is smaller and the mean colour error stays under
   2/255: exact for a figure of at most 256 colours, a mean error under 0.2/255 on line plots and
   about 1/255 on the emoji grids (invisible), at about 40 % of the bytes. The resolution is
   unchanged: 100 dpi, matplotlib's default and the one students see, where 7-8 pt labels are
   10-11 px high. Measured on the notebooks of commit 61994cd: figures were 2.35 MB of PNG
   (3.1 MB as base64, of 3.49 MB in all); an emoji grid costs what its pixels hold, so drawing a
   5x8 grid at 72 dpi instead of 100 saves only 17 % (and makes small labels hard to read),
   while the palette saves 66 % at the same dpi. Steps 4 and 5 on those notebooks: 3.49 MB ->
   1.36 MB.

Then the notebook is written in place (nbformat v4, as nbconvert writes it) and one line says its
time, size, figures and the widget models kept.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import sys
import time
from pathlib import Path

TIMEOUT_S = 1200
KERNEL = "python3"
# matplotlib's own defaults, pinned for the kernel (see 2. above); InlineBackend.rc is applied
# when the inline backend starts (each notebook's `%matplotlib inline`)
FIGURE_RC = {"figure.dpi": 100, "savefig.dpi": "figure"}
STATE_KEY = "application/vnd.jupyter.widget-state+json"
VIEW_KEY = "application/vnd.jupyter.widget-view+json"
MODEL_REF = re.compile(r"IPY_MODEL_([0-9a-f]+)")
TQDM_TEXT = re.compile(r"\d+%\|")            # tqdm's bar: " 40%|████      | 4/10 [00:01<...]"
PALETTE_MAX_MEAN_ERROR = 2.0                  # per channel, of 255


# ----------------------------------------------------------------------------- widget state

def widget_state(nb: dict) -> dict:
    """model id -> stored model ({model_name, model_module, state, ...}); {} when none."""
    return nb.get("metadata", {}).get("widgets", {}).get(STATE_KEY, {}).get("state", {})


def models_below(model_ids, state: dict) -> set[str]:
    """``model_ids`` and every model their stored states name, transitively (IPY_MODEL_ refs)."""
    seen, todo = set(), list(model_ids)
    while todo:
        model_id = todo.pop()
        if model_id in seen:
            continue
        seen.add(model_id)
        if model_id in state:
            todo += MODEL_REF.findall(json.dumps(state[model_id].get("state", {})))
    return seen


def is_progress_bar(output: dict, state: dict) -> bool:
    """A widget view of a progress bar (tqdm.notebook's HBox of HTML + FloatProgress + HTML), by its
    models when stored, else by tqdm's text fallback."""
    model_id = output["data"][VIEW_KEY].get("model_id", "")
    names = [state[m].get("model_name", "") for m in models_below([model_id], state) if m in state]
    text = "".join(output["data"].get("text/plain", ""))
    return any(name.endswith("ProgressModel") for name in names) or bool(TQDM_TEXT.search(text))


def keep_shown_widgets(nb: dict) -> dict:
    """Steps 3 and 4 of the module docstring, in place; what was done, as counts."""
    state = widget_state(nb)
    done = {"bars removed": 0, "views stored as their image": 0, "models kept": 0, "models dropped": 0}
    shown = set()
    for cell in nb["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if VIEW_KEY not in data:
                kept.append(output)
            elif is_progress_bar(output, state):
                done["bars removed"] += 1
            elif "image/png" in data:
                del data[VIEW_KEY]
                done["views stored as their image"] += 1
                kept.append(output)
            else:
                shown.add(data[VIEW_KEY].get("model_id", ""))
                kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    needed = models_below(shown, state) & set(state)
    done["models kept"], done["models dropped"] = len(needed), len(state) - len(needed)
    if needed:
        nb["metadata"]["widgets"][STATE_KEY]["state"] = {m: state[m] for m in sorted(needed)}
    else:
        nb["metadata"].pop("widgets", None)
    return done


# ----------------------------------------------------------------------------- figures

def palette_png(png: bytes) -> bytes:
    """``png`` as a palette PNG of at most 256 colours, or unchanged (see 5. above)."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    if image.mode == "RGBA" and image.getchannel("A").getextrema() != (255, 255):
        return png                                     # real transparency: left as it is
    rgb = image.convert("RGB")
    palette = rgb.quantize(256, method=Image.Quantize.MEDIANCUT, kmeans=2, dither=Image.Dither.NONE)
    error = np.abs(np.asarray(rgb, dtype=np.int16) - np.asarray(palette.convert("RGB"), dtype=np.int16))
    if error.mean() > PALETTE_MAX_MEAN_ERROR:
        return png
    out = io.BytesIO()
    palette.save(out, format="PNG", optimize=True, dpi=image.info.get("dpi", (100, 100)))
    return out.getvalue() if len(out.getvalue()) < len(png) else png


def stored_outputs(nb: dict):
    """Every output dict of the notebook: the cells' and those inside stored Output widgets."""
    for cell in nb["cells"]:
        yield from cell.get("outputs", [])
    for model in widget_state(nb).values():
        yield from model.get("state", {}).get("outputs", [])


def compress_figures(nb: dict) -> tuple[int, int, int]:
    """Re-encode every stored PNG (step 5); (figures, bytes before, bytes after), base64 bytes."""
    count = before = after = 0
    for output in stored_outputs(nb):
        data = output.get("data", {})
        if "image/png" in data:
            text = "".join(data["image/png"]).strip()
            new = base64.b64encode(palette_png(base64.b64decode(text))).decode("ascii")
            count, before, after = count + 1, before + len(text), after + len(new)
            data["image/png"] = new
    return count, before, after


def repeated_pngs(nb: dict) -> list[str]:
    """Cells (or 'widget state') holding the same PNG payload more than once."""
    where: dict[str, list[str]] = {}
    for i, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                key = hashlib.sha256("".join(output["data"]["image/png"]).strip().encode()).hexdigest()
                where.setdefault(key, []).append(f"cell {i}")
    for model_id, model in widget_state(nb).items():
        for output in model.get("state", {}).get("outputs", []):
            if "image/png" in output.get("data", {}):
                key = hashlib.sha256("".join(output["data"]["image/png"]).strip().encode()).hexdigest()
                where.setdefault(key, []).append(f"widget {model_id[:8]}")
    return [" and ".join(places) for places in where.values() if len(places) > 1]


# ----------------------------------------------------------------------------- running

def clear(nb: dict) -> None:
    """Step 1: no output, count, timing or widget state of any earlier run."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            cell.get("metadata", {}).pop("execution", None)
    nb["metadata"].pop("widgets", None)


def check_kernel() -> None:
    """The ``python3`` kernel must be this interpreter (jupyter_client runs a spec's bare
    ``python`` as sys.executable); a user-wide spec pointing elsewhere would execute the notebooks
    with another environment's packages."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    first = spec.argv[0]
    if first not in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"} and \
            Path(first).absolute() != Path(sys.executable).absolute():   # not resolved: venvs link one python
        sys.exit(f"execute-notebooks: error: kernel {KERNEL!r} ({spec.resource_dir}) runs {first}, "
                 f"not this interpreter ({sys.executable})")


def kernel_environment() -> None:
    """Step 2's environment, inherited by every kernel this process starts."""
    os.environ.pop("JPY_SESSION_NAME", None)
    os.environ["TQDM_DISABLE"] = "1"


def execute(path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    clear(nb)
    started = time.perf_counter()
    rc = ", ".join(f"'{k}': {v!r}" for k, v in FIGURE_RC.items())
    NotebookClient(nb, timeout=TIMEOUT_S, kernel_name=KERNEL, resources={"metadata": {"path": str(path.parent)}},
                   extra_arguments=[f"--InlineBackend.rc={{{rc}}}"], store_widget_state=True,
                   record_timing=True).execute()
    seconds = time.perf_counter() - started
    widgets = keep_shown_widgets(nb)
    figures, before, after = compress_figures(nb)
    nbformat.write(nb, path)
    print(f"{path}: {seconds:.0f} s, {path.stat().st_size / 1024:.0f} KiB; {figures} figures "
          f"{before / 1024:.0f} -> {after / 1024:.0f} KiB (base64); "
          + ", ".join(f"{k} {v}" for k, v in widgets.items()), flush=True)
    for places in repeated_pngs(nb):
        print(f"{path}: warning: the same figure is stored twice: {places}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path, help="notebooks to re-execute in place")
    args = parser.parse_args()
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        sys.exit(f"execute-notebooks: error: no such notebook: {', '.join(missing)}")
    check_kernel()
    kernel_environment()
    for path in args.notebooks:
        execute(path)


if __name__ == "__main__":
    main()
