"""Exercise 6 in the real pipeline: the step function a student wrote (``decode_step``'s signature)
is the one that decodes in notebook 03's per-step figures (``widgets.decode_and_draw``), its panel
(``widgets.decoding_panel``) and its FID run (``inpaint.inpaint_test_set``), all through
``MaskGit.inpaint(..., step=)``.

Each is shown to run the step it is given: a spy step is called once per decoding step; a wrong
step of ``labcore.decoding_variants`` draws (or writes) something else than labcore's; labcore's
own ``decode_step`` passed explicitly gives exactly the default path's result. The solutions in
notebooks 03 and 04 pass their checkers, and notebook 03's step gives labcore's tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from labcore import decoding_variants, viz, widgets  # noqa: E402
from labcore.checkers import check_decode_step, check_frechet_distance  # noqa: E402
from labcore.decoding import decode_step  # noqa: E402
from labcore.fid_files import read_folder  # noqa: E402
from labcore.inpaint import inpaint_test_set  # noqa: E402

from shared_fixtures import close_figures, maskgit, test_set, tiny_transformer, tiny_vqgan  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class Spy:
    """A step function that counts its calls and runs ``step`` (labcore's by default)."""

    def __init__(self, step=decode_step):
        self.step, self.calls = step, 0
        self.__name__ = self.__qualname__ = "spy_step"
        self.__module__ = "test_module"

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.step(*args, **kwargs)


def figure_arrays(fig) -> list[np.ndarray]:
    """Every picture a figure draws (both strips of a decoding figure, in order)."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]


def same_pictures(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


WRONG_STEPS = {k.removeprefix("decode."): step for k, step in decoding_variants.classic_steps().items()}
KW = dict(schedule="cosine", choice_temperature=4.5, total_iter=4, image_index=2, seed=1)


# ----------------------------------------------------------------------------- the per-step figures

def test_show_decoding_runs_the_step_it_is_given(maskgit, test_set):
    spy = Spy()
    fig = widgets.decode_and_draw(maskgit, test_set, step=spy, **KW)
    assert spy.calls == KW["total_iter"]                                 # one call per step, nothing else decodes
    assert "step: test_module.spy_step" in fig._suptitle.get_text()      # the figure says whose step it is
    default = figure_arrays(widgets.decode_and_draw(maskgit, test_set, **KW))
    assert same_pictures(figure_arrays(fig), default)                    # the spy runs labcore's step
    explicit = widgets.decode_and_draw(maskgit, test_set, step=decode_step, **KW)
    assert same_pictures(figure_arrays(explicit), default)
    assert "step:" not in explicit._suptitle.get_text()                  # labcore's: the title as before


@pytest.mark.parametrize("mistake", ["keeps_least_confident", "overwrites_known"])
def test_show_decoding_with_a_wrong_step_draws_its_decoding(maskgit, test_set, mistake):
    wrong = WRONG_STEPS[mistake]
    fig = widgets.decode_and_draw(maskgit, test_set, step=wrong, **KW)
    assert not same_pictures(figure_arrays(fig), figure_arrays(widgets.decode_and_draw(maskgit, test_set, **KW)))
    # what it draws is that step's own decoding, seeded as decode_and_draw seeds it
    item = test_set[KW["image_index"]]
    result = maskgit.inpaint(item["image"][None], item["mask"][None], step=wrong, schedule="cosine",
                             choice_temperature=4.5, total_iter=4, seed=1)
    frames = figure_arrays(fig)[:KW["total_iter"] + 1]                   # the mask strip: black = masked
    assert [int((f.sum(-1) == 0).sum()) for f in frames] == [int(m.sum()) for m in result.trace.masks()[:, 0]]
    assert f"step: labcore.decoding_variants.{mistake}" in fig._suptitle.get_text()


def test_a_step_defined_in_the_notebook_is_called_yours():
    def decode_step(*args, **kwargs):  # what a student's cell defines (module __main__ in a kernel)
        raise AssertionError("not called")

    decode_step.__module__ = "__main__"
    assert viz.step_text(decode_step) == "your decode_step"
    assert viz.step_text(decoding_variants.decode_step) == ""             # labcore's own, re-exported


# ----------------------------------------------------------------------------- the panel

def test_panel_redraws_with_the_step_it_is_given(maskgit, test_set):
    spy = Spy(WRONG_STEPS["keeps_least_confident"])
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4, seed=1, image_index=2, step=spy)
    assert panel.step is spy and spy.calls == 4                          # the first draw: 4 steps
    panel.controls["seed"].value = 2                                     # as a person moving the slider
    assert spy.calls == 8 and panel.error is None
    want = widgets.decode_and_draw(maskgit, test_set, step=WRONG_STEPS["keeps_least_confident"], **panel.settings())
    assert same_pictures(figure_arrays(panel.figure), figure_arrays(want))
    labcore_s = widgets.decode_and_draw(maskgit, test_set, **panel.settings())
    assert not same_pictures(figure_arrays(panel.figure), figure_arrays(labcore_s))
    assert "with test_module.spy_step" in panel._repr_mimebundle_()["text/plain"]


def test_panel_with_labcore_s_step_is_the_default_panel(maskgit, test_set):
    a = widgets.decoding_panel(maskgit, test_set, total_iter=4, seed=1, step=decode_step)
    b = widgets.decoding_panel(maskgit, test_set, total_iter=4, seed=1)
    assert widgets.figure_png(a.figure) == widgets.figure_png(b.figure)
    assert b.step is decode_step


# ----------------------------------------------------------------------------- the test-set run (FID's input)

def test_inpaint_test_set_runs_the_step_it_is_given(maskgit, test_set, tmp_path):
    kw = dict(settings=None, limit=5, batch_size=3, steps=False, progress=False)
    inpaint_test_set(maskgit, test_set, tmp_path / "default", **kw)
    spy = Spy()
    inpaint_test_set(maskgit, test_set, tmp_path / "labcore", step=spy, **kw)
    inpaint_test_set(maskgit, test_set, tmp_path / "wrong", step=WRONG_STEPS["overwrites_known"], **kw)
    assert spy.calls == 2 * 8                                            # 2 batches x T = 8 (the defaults)
    default, labcore_s, wrong = (read_folder(tmp_path / name / "test_results")
                                 for name in ("default", "labcore", "wrong"))
    assert default.shape == (5, 3, 64, 64)
    assert torch.equal(labcore_s, default)                               # labcore's step = the default path
    assert not torch.equal(wrong, default)                               # the wrong step's own images
    differ = [not torch.equal(w, d) for w, d in zip(wrong, default)]
    assert sum(differ) >= 3, differ


def test_inpaint_test_set_step_writes_the_strips_of_its_decoding(maskgit, test_set, tmp_path):
    kw = dict(limit=2, steps=True, progress=False)
    inpaint_test_set(maskgit, test_set, tmp_path / "a", **kw)
    inpaint_test_set(maskgit, test_set, tmp_path / "b", step=WRONG_STEPS["keeps_least_confident"], **kw)
    a, b = read_folder(tmp_path / "a" / "mask_scheduling"), read_folder(tmp_path / "b" / "mask_scheduling")
    assert not torch.equal(a, b)                                         # other tokens kept at each step


# ----------------------------------------------------------------------------- the notebooks' solutions

def exercise_source(notebook: str, grade_id: str) -> str:
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    found = [c for c in cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
    assert len(found) == 1, f"{notebook}: expected one cell with grade_id {grade_id!r}"
    source = "".join(found[0]["source"])
    assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source
    return source


def test_notebook_03_solution_passes_and_decodes_like_labcore(maskgit, test_set):
    import labcore.decoding

    namespace = {name: getattr(labcore.decoding, name) for name in ("DecodingSettings", "StepResult", "gumbel")}
    namespace["torch"] = torch
    exec(exercise_source("03_iterative_decoding.ipynb", "decode_step"), namespace)
    student = namespace["decode_step"]
    assert check_decode_step(student).passed
    item = test_set[4]
    for t in (0.0, 1.0):  # argmax and sampled tokens: the same random stream as labcore's, drawn in its order
        kw = dict(total_iter=5, choice_temperature=4.5, sample_temperature=t, seed=3)
        ours = maskgit.inpaint(item["image"][None], item["mask"][None], step=student, **kw)
        theirs = maskgit.inpaint(item["image"][None], item["mask"][None], **kw)
        assert torch.equal(ours.tokens, theirs.tokens) and torch.equal(ours.trace.masked, theirs.trace.masked)


def test_notebook_04_solution_passes():
    import scipy.linalg

    namespace = {"np": np, "scipy": scipy}
    exec(exercise_source("04_fid.ipynb", "frechet_distance"), namespace)
    assert check_frechet_distance(namespace["frechet_distance"]).passed
