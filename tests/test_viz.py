"""labcore.viz and labcore.widgets: the pictures of the notebooks and the decoding panel of notebook 03.

The widget tests drive real ipywidgets objects (values changed programmatically, as a person
moving a slider would) over tiny randomly initialised labcore models and the bundled emoji64
test set, and check what was drawn and what the panel's Output widget holds (what the notebook
shows). tests/ui/ checks the same panel in a real JupyterLab and browser (``make test-ui``)."""

import base64
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from labcore import viz, widgets  # noqa: E402
from labcore.data import latent_mask_from_pixels  # noqa: E402
from labcore.decoding import DecodingSettings  # noqa: E402
from labcore.inpaint import inpaint_columns, inpaint_one, pipeline_stages  # noqa: E402
from labcore.model_files import load_bundled_maskgit  # noqa: E402
from labcore.paths import CHECKPOINT_DIR  # noqa: E402
from labcore.schedules import SCHEDULES, gamma  # noqa: E402

from shared_fixtures import close_figures, maskgit, test_set, tiny_transformer, tiny_vqgan  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py




def strip_arrays(fig, row, columns):
    """The image arrays drawn in one row of a decoding figure (axes are laid out row-major)."""
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes[row * columns:(row + 1) * columns]]


def black_tokens(frame):
    return int((frame.sum(axis=-1) == 0).sum())


# ----------------------------------------------------------------------------- show_decoding (decode_and_draw)

def test_show_decoding_draws_s_plus_one_columns_of_the_real_trace(maskgit, test_set):
    fig = widgets.decode_and_draw(maskgit, test_set, schedule="square", choice_temperature=2.0, total_iter=6,
                            sweet_spot=4, image_index=3, seed=7)
    assert len(fig.axes) == 2 * (4 + 1)                       # two rows of S+1 columns
    assert all(len(ax.images) == 1 for ax in fig.axes)        # every column holds a picture
    title = fig._suptitle.get_text()
    assert "square" in title and "T=6" in title and "S=4" in title and test_set[3]["name"] in title

    # the mask row is the trace of the same seeded run, step by step
    item = test_set[3]
    result = maskgit.inpaint(item["image"][None], item["mask"][None], total_iter=6, sweet_spot=4,
                             schedule="square", choice_temperature=2.0, generator=torch.Generator().manual_seed(7))
    expected = result.trace.masks()[:, 0]                                     # (5, 16, 16)
    frames = strip_arrays(fig, 0, 5)
    assert [black_tokens(f) for f in frames] == [int(m.sum()) for m in expected]
    assert int(expected[0].sum()) == int(latent_mask_from_pixels(item["mask"][None]).sum())
    # the picture row starts with the masked input, in [0, 1]
    first = strip_arrays(fig, 1, 5)[0]
    want = test_set.normalization.denormalize(item["image"]).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(first, want, atol=1e-6)


def test_show_decoding_is_seeded(maskgit, test_set):
    kwargs = dict(schedule="cosine", choice_temperature=4.5, total_iter=5, sweet_spot=5, image_index=1)
    a = strip_arrays(widgets.decode_and_draw(maskgit, test_set, seed=1, **kwargs), 0, 6)
    b = strip_arrays(widgets.decode_and_draw(maskgit, test_set, seed=1, **kwargs), 0, 6)
    c = strip_arrays(widgets.decode_and_draw(maskgit, test_set, seed=2, **kwargs), 0, 6)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))   # Gumbel noise differs between seeds


@pytest.mark.parametrize("kwargs, match", [
    (dict(total_iter=4, sweet_spot=6), "sweet_spot"),
    (dict(total_iter=0, sweet_spot=0), "total_iter"),
    (dict(schedule="zigzag"), "cosine"),                       # the error lists the choices
    (dict(choice_temperature=-1.0), "temperature"),
    (dict(image_index=10_000), "image_index"),
])
def test_show_decoding_rejects_bad_settings(maskgit, test_set, kwargs, match):
    with pytest.raises(ValueError, match=match):
        widgets.decode_and_draw(maskgit, test_set, **kwargs)


# ----------------------------------------------------------------------------- the panel (real widgets)

def columns_drawn(panel):
    return len(panel.figure.axes) // 2


def shown(panel):
    """What the panel's Output widget holds (what the notebook shows under the controls)."""
    return list(panel.output.outputs)


def shown_png(panel):
    """The PNG bytes of the Output's single image output; fails unless there is exactly one."""
    outputs = shown(panel)
    assert len(outputs) == 1, f"the Output holds {len(outputs)} outputs, expected one figure"
    assert outputs[0]["output_type"] == "display_data" and "image/png" in outputs[0]["data"]
    return base64.b64decode(outputs[0]["data"]["image/png"])


@pytest.mark.parametrize("name, value, in_title", [
    ("schedule", "linear", "linear schedule"),
    ("choice_temperature", 1.0, "choice temperature 1,"),
    ("sample_temperature", 1.0, "tokens sampled at temperature 1,"),
    ("total_iter", 6, "T=6"),
    ("sweet_spot", 2, "S=2"),
    ("image_index", 5, "image_005.png"),
    ("seed", 4, "seed 4"),
])
def test_each_control_replaces_the_figure_in_the_output(maskgit, test_set, name, value, in_title):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4, seed=3)
    before, draws = shown_png(panel), panel.draws
    panel.controls[name].value = value                        # as a person moving the control would
    after = shown_png(panel)                                  # exactly one image output, a new one
    assert after != before and panel.draws == draws + 1 and panel.error is None
    assert in_title in panel.figure._suptitle.get_text()
    # the picture on show is the figure of the controls' current settings, drawn afresh
    assert after == widgets.figure_png(widgets.decode_and_draw(maskgit, test_set, **panel.settings()))
    assert not any(c.disabled for c in panel.controls.values()) and panel.status.value.startswith("drawn in")


def test_panel_controls_and_first_draw(maskgit, test_set):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4, seed=3)
    c = panel.controls
    assert panel.draws == 1 and columns_drawn(panel) == 5     # drawn once at creation
    assert shown_png(panel) == widgets.figure_png(widgets.decode_and_draw(maskgit, test_set, **panel.settings()))
    for name in ("choice_temperature", "sample_temperature", "total_iter", "sweet_spot", "image_index", "seed"):
        assert c[name].continuous_update is False             # slow sliders redraw on release
    assert list(c["schedule"].options) == list(SCHEDULES)
    assert (c["sample_temperature"].value, c["sample_temperature"].min) == (0.0, 0.0)  # argmax: the course's rule
    assert "argmax tokens" in panel.figure._suptitle.get_text()
    before = strip_arrays(panel.figure, 0, 5)
    c["seed"].value = 4                                       # Gumbel noise differs between seeds
    assert not all(np.array_equal(x, y) for x, y in zip(before, strip_arrays(panel.figure, 0, 5)))


def test_panel_shows_it_is_busy_while_decoding(maskgit, test_set, monkeypatch):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4)
    seen = []
    real = viz.show_decoding

    def spy(*args, **kwargs):                                 # what a person sees during the redraw
        seen.append((panel.status.value, [c.disabled for c in panel.controls.values()]))
        return real(*args, **kwargs)

    monkeypatch.setattr(viz, "show_decoding", spy)
    panel.controls["seed"].value = 9
    assert seen == [("decoding...", [True] * len(panel.controls))]
    assert panel.status.value.startswith("drawn in") and not any(c.disabled for c in panel.controls.values())


def test_sweet_spot_follows_total_iterations(maskgit, test_set):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=8)
    total, spot = panel.controls["total_iter"], panel.controls["sweet_spot"]
    assert (spot.value, spot.max) == (8, 8)

    draws = panel.draws
    total.value = 12                                            # S was at T: it follows T up
    assert (spot.value, spot.max) == (12, 12) and columns_drawn(panel) == 13
    assert panel.draws == draws + 1                             # one redraw for one slider move
    spot.value = 5
    total.value = 10                                            # S below T: it stays
    assert (spot.value, spot.max) == (5, 10) and columns_drawn(panel) == 6
    draws, before = panel.draws, shown_png(panel)
    total.value = 3                                             # S > new T: clamped, never invalid
    assert (spot.value, spot.max) == (3, 3) and columns_drawn(panel) == 4
    assert panel.error is None
    assert panel.draws == draws + 1 and shown_png(panel) != before
    assert "T=3" in panel.figure._suptitle.get_text() and "S=3" in panel.figure._suptitle.get_text()


def test_panel_reports_invalid_settings_instead_of_raising(maskgit, test_set):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4)
    figure = panel.draw(schedule="cosine", choice_temperature=4.5, total_iter=4, sweet_spot=6, image_index=0, seed=0)
    assert figure is None and panel.figure is None and "sweet_spot" in panel.error
    (output,) = shown(panel)                                    # the old figure is gone, the reason is shown
    assert output["output_type"] == "stream" and "sweet_spot" in output["text"]
    assert not any(c.disabled for c in panel.controls.values())
    panel.controls["seed"].value = 1                            # the next valid setting draws again
    assert panel.error is None and columns_drawn(panel) == 5 and shown_png(panel)


def test_panel_without_live_widgets_shows_its_figure_not_a_repr(maskgit, test_set):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4)
    bundle = panel._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.widget.model_id
    assert base64.b64decode(bundle["image/png"]) == shown_png(panel)   # what GitHub / an untrusted notebook shows
    assert "VBox" not in bundle["text/plain"] and "run the notebook" in bundle["text/plain"]


def test_decoding_figure_stays_readable_at_the_largest_t(maskgit, test_set):
    panel = widgets.decoding_panel(maskgit, test_set, total_iter=4)
    largest = panel.controls["total_iter"].max
    panel.controls["total_iter"].value = largest                # S follows to T: S+1 pictures per strip
    assert columns_drawn(panel) == largest + 1
    width, height = Image.open(io.BytesIO(shown_png(panel))).size
    assert width <= 1250, f"a {width} px wide figure is scaled down to the cell width: unreadable"
    # wrapped evenly: with 17 pictures, picture 10 of the mask strip sits below picture 1
    masks = panel.figure.axes[:largest + 1]
    first, ninth, tenth = (ax.get_position() for ax in (masks[0], masks[8], masks[9]))
    assert masks[0].get_title() == "start (masked input below)"            # wrapped: the input is named above
    assert tenth.x0 == pytest.approx(first.x0) and tenth.y0 < first.y0 and ninth.x0 > first.x0
    panel.controls["total_iter"].value = 9                      # 10 pictures: two rows of 5, not 9 + 1
    masks = panel.figure.axes[:10]
    assert masks[5].get_position().x0 == pytest.approx(masks[0].get_position().x0)
    assert masks[4].get_position().y0 == pytest.approx(masks[0].get_position().y0)


def test_sampled_tokens_differ_from_argmax_tokens(maskgit, test_set):
    kwargs = dict(total_iter=1, sweet_spot=1, image_index=2, seed=0, choice_temperature=0.0)
    argmax = widgets.decode_and_draw(maskgit, test_set, sample_temperature=0.0, **kwargs)
    sampled = widgets.decode_and_draw(maskgit, test_set, sample_temperature=1.0, **kwargs)
    again = widgets.decode_and_draw(maskgit, test_set, sample_temperature=0.0, **{**kwargs, "seed": 5})
    one_shot = [strip_arrays(fig, 1, 2)[1] for fig in (argmax, sampled, again)]
    assert not np.array_equal(one_shot[0], one_shot[1])        # sampling picks other tokens
    assert np.array_equal(one_shot[0], one_shot[2])            # argmax at T=1, no choice noise: no randomness
    assert "tokens sampled at temperature 1" in sampled._suptitle.get_text()
    assert plt.get_fignums() == []                             # bare Figures: pyplot never saw them
    with pytest.raises(ValueError, match="sample temperature"):
        widgets.decode_and_draw(maskgit, test_set, sample_temperature=-1.0)


# ----------------------------------------------------------------------------- the other pictures

def test_decoding_figure_marks_tokens_decoded_at_each_step(maskgit, test_set):
    items = [test_set[i] for i in (0, 2)]
    images = torch.stack([it["image"] for it in items])
    masks = torch.stack([it["mask"] for it in items])
    result = maskgit.inpaint(images, masks, total_iter=3, generator=torch.Generator().manual_seed(0))
    fig = viz.decoding_figure(result.trace, index=1)                            # mask row only
    assert len(fig.axes) == 4
    trace_masks = result.trace.masks()[:, 1]                                    # (4, 16, 16)
    for s, ax in enumerate(fig.axes):
        frame = np.asarray(ax.images[0].get_array())
        orange = int(np.all(np.isclose(frame, viz.NEW), axis=-1).sum())
        decoded_now = int((trace_masks[s - 1] & ~trace_masks[s]).sum()) if s else 0
        assert orange == decoded_now
        assert black_tokens(frame) == int(trace_masks[s].sum())
    assert int(trace_masks[-1].sum()) == 0                                      # all decoded at S = T
    with pytest.raises(ValueError, match="steps"):
        viz.decoding_figure(result.trace, result.trace.images(maskgit)[:2])


def test_schedule_plot_draws_every_gamma():
    fig = viz.plot_schedules(total_iter=4)
    ax = fig.axes[0]
    curves = [line for line in ax.lines if line.get_linestyle() != "None"]
    dots = [line for line in ax.lines if line.get_linestyle() == "None"]
    assert [line.get_label() for line in curves] == list(SCHEDULES)
    assert len(dots) == len(SCHEDULES) and all(len(d.get_xdata()) == 5 for d in dots)
    for line in curves:
        x, y = line.get_xdata(), line.get_ydata()
        assert y[0] == 1 and y[-1] == 0
        assert np.allclose(y[::50], [gamma(line.get_label())(float(r)) for r in x[::50]])


def test_commitment_drift_draws_each_run_in_each_panel():
    from labcore.quantization import Drift

    runs = [Drift(0.25, [0.06, 0.05], [0.0, 0.1], [0.02, 0.018]), Drift(0.0, [0.06, 0.07], [0.0, 0.3], [0.02, 0.019])]
    fig = viz.plot_commitment_drift(runs)
    assert len(fig.axes) == 3
    for ax, name in zip(fig.axes, ("distance", "changed", "reconstruction")):
        assert [list(line.get_ydata()) for line in ax.lines] == [getattr(r, name) for r in runs]
        assert [list(line.get_xdata()) for line in ax.lines] == [[1, 2], [1, 2]]
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["β = 0.25", "β = 0"]


def test_training_curves_from_csv(tmp_path):
    log = tmp_path / "log.csv"
    rows = ["step,epoch,loss,accuracy,lr,val_loss,val_accuracy"]
    for step in range(1, 21):
        val = f"{3 - step / 10:.3f},{step / 40:.3f}" if step % 10 == 0 else ","
        rows.append(f"{step},{step // 10},{4 - step / 10:.3f},{step / 50:.3f},{1e-4 * step:.2e},{val}")
    log.write_text("\n".join(rows) + "\n")
    fig = viz.plot_training_curves(log)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    loss_ax = fig.axes[0]
    by_label = {line.get_label(): line for line in loss_ax.lines}
    assert set(by_label) == {"loss", "val_loss"}
    assert len(by_label["loss"].get_xdata()) == 20
    assert list(by_label["val_loss"].get_xdata()) == [10, 20]                  # empty cells skipped
    with pytest.raises(ValueError, match="iteration"):
        viz.plot_training_curves(log, x="iteration")

    # a separate validation log (labcore train's val.csv) joins the same panels, prefixed "val"
    val = tmp_path / "val.csv"
    val.write_text("step,epoch,loss,accuracy,loss@0.5,accuracy@0.5\n10,1,2.5,0.30,2.4,0.31\n20,2,2.0,0.40,1.9,0.42\n")
    fig = viz.plot_training_curves(log, validation=val)
    labels = {ax.get_title(): [line.get_label() for line in ax.lines] for ax in fig.axes}
    assert labels["loss"] == ["loss", "val_loss", "val loss", "val loss@0.5"]
    assert labels["accuracy"] == ["accuracy", "val_accuracy", "val accuracy", "val accuracy@0.5"]
    val_line = fig.axes[0].lines[2]
    assert list(val_line.get_xdata()) == [10, 20] and list(val_line.get_ydata()) == [2.5, 2.0]
    per_ratio = fig.axes[0].lines[3]  # the overall val curve would hide under its per-ratio ones: dashed, on top
    assert val_line.get_linestyle() == "--" and per_ratio.get_linestyle() == "-"
    assert val_line.get_zorder() > per_ratio.get_zorder()
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        viz.plot_training_curves(tmp_path / "nope.csv")



def test_training_curves_of_a_short_run_beside_the_bundled_model():
    """Notebook 02's figure: the bundled model's real log and validation CSVs (every mask ratio),
    a short run on the same panels, the ln(K + 1) line, token maps seen on a log axis."""
    log = viz.read_csv_log(CHECKPOINT_DIR / "transformer_emoji64_log.csv")
    val = viz.read_csv_log(CHECKPOINT_DIR / "transformer_emoji64_val.csv")
    for t in (log, val):
        t["maps"] = t["step"] * 32
    short = {"maps": [64, 192, 320], "loss": [5.9, 5.5, 5.2]}                  # lists are fine too
    short_val = {"maps": [384], "loss": [5.5], "accuracy": [0.04]}
    uniform = math.log(513)
    fig = viz.plot_training_curves(log, x="maps", columns=["loss", "accuracy"], validation=val, name="bundled",
                                   runs={"short": short, "short val": short_val},
                                   hlines={"ln(K + 1)": uniform}, logx=True)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    labels = {ax.get_title(): [line.get_label() for line in ax.lines] for ax in fig.axes}
    assert labels["loss"] == ["bundled loss", "bundled val loss", "bundled val loss@0.25", "bundled val loss@0.5",
                              "bundled val loss@0.75", "short loss", "short val loss", "ln(K + 1)"]
    assert labels["accuracy"] == ["bundled accuracy", "bundled val accuracy", "bundled val accuracy@0.25",
                                  "bundled val accuracy@0.5", "bundled val accuracy@0.75", "short val accuracy"]
    assert all(ax.get_xscale() == "log" and ax.get_xlabel() == "maps" for ax in fig.axes)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert list(lines["ln(K + 1)"].get_ydata()) == [uniform, uniform]
    assert len(lines["bundled loss"].get_xdata()) == len(log["step"])          # every logged row
    assert lines["bundled val loss@0.75"].get_xdata()[-1] == 5915 * 32
    assert lines["bundled val loss@0.75"].get_ydata()[-1] == val["loss@0.75"][-1]
    assert list(lines["short loss"].get_ydata()) == [5.9, 5.5, 5.2]
    assert lines["short val loss"].get_marker() == "o"                         # one point: a marker
    accuracy = {line.get_label(): line for line in fig.axes[1].lines}
    assert lines["short val loss"].get_color() == accuracy["short val accuracy"].get_color()  # a run: one colour
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "ln(K + 1)" in legend and "short loss" in legend
    with pytest.raises(ValueError, match="'perplexity'"):                       # a column the main log lacks
        viz.plot_training_curves(log, x="maps", columns=["loss", "perplexity"])


# ----------------------------------------------------------------------------- the whole pipeline (README, notebook 00)

@pytest.fixture(scope="module")
def bundled_maskgit():
    return load_bundled_maskgit().eval()


def pipeline(maskgit, test_set, image_index, settings):
    """What scripts/pipeline-figure.py and notebook 00 do: decode (labcore.inpaint), then draw (viz)."""
    return viz.pipeline_figure(**pipeline_stages(maskgit, test_set, image_index, settings))


def test_pipeline_figure_draws_every_stage_from_the_real_models(bundled_maskgit, test_set):
    n_before = len(plt.get_fignums())
    fig = pipeline(bundled_maskgit, test_set, 250, DecodingSettings())
    assert len(plt.get_fignums()) == n_before                                   # a bare Figure: shown once
    titled = [ax for ax in fig.axes if ax.get_title()]
    titles = [ax.get_title() for ax in titled]
    assert titles == ["masked input", "tokens", "latent mask", "transformer",
                      "step 1 of 8", "step 4 of 8", "step 8 of 8", "inpainted"]
    assert [len(ax.images) for ax in titled] == [1, 1, 1, 0, 1, 1, 1, 1]         # 7 pictures and the transformer box
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    for words in ("VQGAN encoder\n+ quantiser", "mask the\nhole's tokens", "bidirectional\ntransformer",
                  "keep the most\nconfident", "VQGAN\ndecoder", "black = masked token"):
        assert any(words in t for t in texts), words
    assert "image_250.png" in fig._suptitle.get_text()
    assert sum(len(ax.patches) for ax in fig.axes) >= 1                        # the transformer's box

    # what the panels say is the real decoding of that image (the default settings: cosine, T = 8, seed 0)
    item = test_set[250]
    result = bundled_maskgit.inpaint(item["image"][None], item["mask"][None])
    masks = result.trace.masks()[:, 0]                                          # (9, 16, 16)
    m0 = int(latent_mask_from_pixels(item["mask"][None]).sum())
    details = {ax.get_title(): [t.get_text() for t in ax.texts][-1] for ax in titled}
    assert details["latent mask"] == f"{m0} of 256 masked"
    assert [details[f"step {t} of 8"] for t in (1, 4, 8)] == \
        [f"{int(masks[t].sum())} still masked" for t in (1, 4, 8)]
    assert details["step 8 of 8"] == "0 still masked"
    ids = bundled_maskgit.encode_to_z(item["image"][None]).view(16, 16).numpy()  # the masked input's tokens
    tokens = np.asarray(titled[1].images[0].get_array())                        # (16, 16, 3) colour = id
    np.testing.assert_allclose(tokens, plt.get_cmap("nipy_spectral")(ids / 511)[..., :3], atol=1e-6)
    latent = np.asarray(titled[2].images[0].get_array())                        # the same, masked tokens black
    hole = result.latent_mask[0].numpy()[..., None]
    np.testing.assert_allclose(latent, np.where(hole, 0.0, tokens), atol=1e-6)
    last_step = np.asarray(titled[6].images[0].get_array())
    assert black_tokens(last_step) == 0                                         # nothing left masked
    inpainted = np.asarray(titled[7].images[0].get_array())
    want = test_set.normalization.denormalize(result.images[0]).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(inpainted, want, atol=1e-6)

    # other settings: other steps shown, named under the transformer
    fig = pipeline(bundled_maskgit, test_set, 3, DecodingSettings(schedule="linear", total_iter=4))
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled][4:7] == ["step 1 of 4", "step 2 of 4", "step 4 of 4"]
    assert titled[3].texts[-1].get_text() == "linear schedule, T=4"


def test_attention_maps_of_a_transformer(maskgit, test_set):
    item = test_set[0]
    tokens = maskgit.encode_to_z(item["image"][None])                            # (1, 256)
    with torch.no_grad():
        _, maps = maskgit.transformer(tokens, return_attention=True)
    fig = viz.plot_attention_maps(maps, query=(5, 9), image=item["image"], normalization=test_set.normalization)
    layers, heads = len(maps), maps[0].shape[1]
    assert len(fig.axes) == layers * (1 + heads + 1)                             # image, heads, mean
    mean_panel = np.asarray(fig.axes[heads + 1].images[0].get_array())          # layer 0, "mean"
    np.testing.assert_allclose(mean_panel, maps[0][0, :, 5 * 16 + 9].mean(0).view(16, 16).numpy(), atol=1e-6)
    assert math.isclose(mean_panel.sum(), 1.0, rel_tol=1e-5)                     # a distribution over keys
    with pytest.raises(ValueError, match="outside"):
        viz.plot_attention_maps(maps, query=256)


def test_attention_heads_rows_are_distributions():
    from labcore.attention import MultiHeadAttention

    torch.manual_seed(0)
    mha = MultiHeadAttention(dim=8, num_heads=2, attn_drop=0.0)
    _, weights = mha(torch.randn(1, 5, 8), return_attention=True)               # (1, 2, 5, 5)
    fig = viz.plot_attention_heads(weights[0])
    drawn = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    assert len(drawn) == 2
    for d in drawn:
        np.testing.assert_allclose(d.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="heads"):
        viz.plot_attention_heads(torch.rand(5))


def test_image_grid_and_labelled_rows(test_set):
    images = torch.stack([test_set[i]["image"] for i in range(6)])
    grid = viz.image_grid(images, nrow=3, normalization=test_set.normalization)
    assert grid.shape == (3, 2 * 64 + 3 * 2, 3 * 64 + 4 * 2)
    assert grid.min() >= 0 and grid.max() <= 1
    np.testing.assert_allclose(grid[:, 2:66, 2:66], test_set.normalization.denormalize(images[0]), atol=1e-6)
    fig = viz.show_image_rows({"masked": images[:3], "ground truth": images[3:]}, normalization=test_set.normalization)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["masked", "ground truth"]
    with pytest.raises(ValueError, match="same number"):
        viz.show_image_rows({"a": images[:3], "b": images[:2]})


def test_codebook_usage_and_token_maps():
    indices = torch.tensor([[0, 0, 1, 5], [5, 5, 5, 2]]).view(2, 2, 2)
    fig = viz.plot_codebook_usage(indices, num_codes=8)
    assert "4 of 8 codes used (50%)" in fig.axes[0].get_title()
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:5] == [4, 2, 1, 1, 0]
    fig = viz.plot_token_maps(indices, num_codes=8)
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(np.asarray(fig.axes[1].images[0].get_array()), indices[1].numpy())


# -------------------------------------------------------------------------- notebook 03: sweet spot, choice temperature

def test_decoded_at_step_numbers_each_token_by_its_step():
    from labcore.decoding import DecodingTrace
    initial = torch.zeros(1, 16, 16, dtype=torch.bool)
    initial[0, :2, :2] = True                                              # 4 masked tokens
    after1, after2 = initial.clone(), initial.clone()
    after1[0, 0, 0] = False                                                # step 1 decodes (0, 0)
    after2[0, 0, :2] = False                                               # step 2 decodes (0, 1)
    trace = DecodingTrace(initial_masked=initial, masked=torch.stack([after1, after2]),
                          tokens=torch.zeros(2, 1, 16, 16, dtype=torch.long), ratios=[0.5, 1.0])
    at = viz.decoded_at_step(trace)
    assert at[0, 0] == 1 and at[0, 1] == 2 and at[1, 0] == -1 and at[1, 1] == -1  # still masked: -1
    assert int((at == 0).sum()) == 256 - 4                                 # known: 0


def test_sweet_spot_figure_shows_what_is_still_masked_when_decoding_stops(maskgit, test_set):
    settings = DecodingSettings(total_iter=12)
    spots = {f"S = {S}": dict(sweet_spot=S) for S in (2, 6, 12)}              # column label -> settings change
    item, results = inpaint_columns(maskgit, test_set, 0, settings, spots)
    fig = viz.sweet_spot_figure(item, results, test_set.normalization, settings)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["latent mask", "S = 2", "S = 6", "S = 12"]
    full = maskgit.inpaint(test_set[0]["image"][None], test_set[0]["mask"][None], total_iter=12)
    m0 = int(full.trace.masks()[0, 0].sum())
    for col, S in zip((1, 2, 3), (2, 6, 12)):                              # the same seed: the first S steps ARE
        still = int(full.trace.masked[S - 1, 0].sum())                      # the full run's first S steps
        assert fig.axes[col].get_xlabel() == f"{still} of {m0}\nfilled at once"
    assert fig.axes[3].get_xlabel().startswith("0 of")
    stopped = maskgit.inpaint(test_set[0]["image"][None], test_set[0]["mask"][None], total_iter=12, sweet_spot=6)
    shown = fig.axes[2 + 5].get_images()[0].get_array()                    # bottom row, S = 6
    expected = viz.hwc(viz.to_unit(stopped.images[0], test_set.normalization))
    assert np.allclose(np.asarray(shown), expected)
    assert "image_000.png: stop after S of T=12 steps" in fig._suptitle.get_text()


def test_decoding_order_figure_maps_the_step_of_each_token(maskgit, test_set):
    settings = DecodingSettings()
    taus = {f"τ = {t:g}": dict(choice_temperature=t) for t in (0, 10)}
    item, results = inpaint_columns(maskgit, test_set, 0, settings, taus)
    fig = viz.decoding_order_figure(item, results, test_set.normalization, settings)
    assert [ax.get_title() for ax in fig.axes[:2]] == ["τ = 0", "τ = 10"]
    maps = []
    for col, tau in enumerate((0, 10)):
        result = maskgit.inpaint(test_set[0]["image"][None], test_set[0]["mask"][None], choice_temperature=tau)
        expected = viz.decoded_at_step(result.trace).float().numpy()
        drawn = np.asarray(fig.axes[col].get_images()[0].get_array())
        assert np.array_equal(drawn, expected)
        maps.append(expected)
    assert not np.array_equal(maps[0], maps[1])                           # tau changes the order
    colorbar = fig.axes[-1]
    assert [int(t) for t in colorbar.get_yticks()] == list(range(1, 9)) and colorbar.get_ylabel() == "step t"
    item, results = inpaint_columns(maskgit, test_set, 0, settings, {"halton": dict(order="halton")})
    halton = viz.decoding_order_figure(item, results, test_set.normalization, settings)
    assert halton.axes[0].get_title() == "halton"


# ----------------------------------------------------------------------------- figures draw, they do not compute

VIZ = Path(viz.__file__).parent


def test_viz_modules_neither_use_pyplot_nor_decode():
    """No pyplot state (bare Figures, one style) and no model call: the decoding is labcore.inpaint's."""
    import ast

    for path in sorted(VIZ.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not imported & {"matplotlib.pyplot", "labcore.inpaint", "labcore.model_files", "labcore.widgets"}, \
            f"{path.name} imports {sorted(imported)}"
        called = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not called & {"inpaint", "encode_to_z", "decode_z", "decode_tokens", "images"}, \
            f"{path.name} calls {sorted(called & {'inpaint', 'encode_to_z', 'decode_z', 'decode_tokens', 'images'})}"


def test_every_figure_is_a_bare_figure(maskgit, test_set):
    images = torch.stack([test_set[i]["image"] for i in range(3)])              # (3, 3, 64, 64)
    tokens = maskgit.encode_to_z(images).view(3, 16, 16)
    K, settings = maskgit.num_codebook_vectors, DecodingSettings(total_iter=3)
    item, result = inpaint_one(maskgit, test_set, 1, settings)
    _, columns = inpaint_columns(maskgit, test_set, 1, settings, {"S = 2": dict(sweet_spot=2), "S = 3": {}})
    with torch.no_grad():
        _, maps = maskgit.transformer(tokens[:1].flatten(1), return_attention=True)
    figures = [viz.show_images(images, normalization=test_set.normalization),
               viz.show_image_rows({"a": images}, normalization=test_set.normalization),
               viz.plot_token_maps(tokens, K, images=images, normalization=test_set.normalization),
               viz.plot_codebook_usage(tokens, K), viz.plot_schedules(total_iter=3),
               viz.plot_attention_heads(maps[0][0]), viz.plot_attention_maps(maps, 7, image=images[0]),
               viz.plot_training_curves({"step": [1, 2], "loss": [2.0, 1.0]}),
               viz.decoding_figure(result.trace),
               viz.show_decoding(item, result, result.trace.images(maskgit), test_set.normalization, settings),
               viz.sweet_spot_figure(item, columns, test_set.normalization, settings),
               viz.decoding_order_figure(item, columns, test_set.normalization, settings),
               viz.pipeline_figure(**pipeline_stages(maskgit, test_set, 1, settings))]
    assert all(type(fig) is Figure for fig in figures)
    assert plt.get_fignums() == []                                              # pyplot never saw one


def test_inpaint_columns_decodes_each_column_from_the_same_seed(maskgit, test_set):
    settings = DecodingSettings(total_iter=4, seed=3)
    item, results = inpaint_columns(maskgit, test_set, 5, settings, {"τ = 0": dict(choice_temperature=0), "as is": {}})
    assert item["name"] == test_set[5]["name"] and list(results) == ["τ = 0", "as is"]
    alone = inpaint_one(maskgit, test_set, 5, settings)[1]                      # the same seed: the same decoding
    assert torch.equal(results["as is"].tokens, alone.tokens)
    with pytest.raises(ValueError, match="at least one column"):
        inpaint_columns(maskgit, test_set, 5, settings, {})
    with pytest.raises(ValueError, match="image_index"):
        inpaint_one(maskgit, test_set, -1, settings)
