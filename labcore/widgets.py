"""The interactive decoding panel of notebook 03: ipywidgets controls for every decoding setting
over ``labcore.viz.show_decoding``, redrawn whenever a control moves.

Each redraw is ``decode_and_draw``: the decoding by ``labcore.inpaint.inpaint_one``, the drawing by
``labcore.viz.show_decoding`` (plain functions with plain arguments). The panel
(``decoding_panel``) observes its widgets, calls it and writes the figure into its ``Output``
widget itself (see ``DecodingPanel``).
"""

from __future__ import annotations

import base64
import io
import time

from matplotlib.figure import Figure

from labcore import viz
from labcore.decoding import DecodingSettings, decode_step
from labcore.inpaint import inpaint_one
from labcore.schedules import SCHEDULES


def decoding_controls(num_images: int, settings: DecodingSettings | None = None, image_index: int = 0,
                      max_iter: int = 16) -> dict:
    """The panel's widgets, keyed by ``decode_and_draw``'s keyword names, starting at ``settings``.
    Decoding takes a moment, so sliders redraw on release (``continuous_update=False``); the
    sweet-spot slider's maximum follows the total-iterations slider (S <= T always)."""
    import ipywidgets as widgets

    s = DecodingSettings.resolve(settings)
    if s.schedule not in SCHEDULES:
        raise ValueError(f"the panel's schedule must be one of {', '.join(SCHEDULES)}, got {s.schedule!r}")
    style = {"description_width": "140px"}
    layout = widgets.Layout(width="410px")
    slow = dict(continuous_update=False, style=style, layout=layout)
    controls = {
        "schedule": widgets.Dropdown(options=list(SCHEDULES), value=s.schedule, description="schedule γ",
                                     style=style, layout=layout),
        "choice_temperature": widgets.FloatSlider(value=s.choice_temperature, min=0.0, max=10.0, step=0.5,
                                                  description="choice temperature", **slow),
        "sample_temperature": widgets.FloatSlider(value=s.sample_temperature, min=0.0, max=2.0, step=0.1,
                                                  readout_format=".1f", description="sample temperature",
                                                  tooltip="0: argmax tokens; > 0: sample softmax(logits / t)",
                                                  **slow),
        "total_iter": widgets.IntSlider(value=s.total_iter, min=1, max=max(max_iter, s.total_iter),
                                        description="total iterations T", **slow),
        "sweet_spot": widgets.IntSlider(value=s.steps, min=1, max=s.total_iter, description="sweet spot S", **slow),
        "image_index": widgets.IntSlider(value=image_index, min=0, max=num_images - 1, description="test image",
                                         **slow),
        "seed": widgets.IntSlider(value=s.seed, min=0, max=99, description="seed", **slow),
    }
    total, spot = controls["total_iter"], controls["sweet_spot"]

    def follow_total(change):
        # S stays at T when it was at T (decode all the way); otherwise it is clamped to the new T
        at_max = spot.value == change["old"]
        spot.max = change["new"]  # ipywidgets clamps the value into [min, max]
        if at_max:
            spot.value = change["new"]

    total.observe(follow_total, "value")  # registered before the panel's redraw: S is valid when it runs
    return controls


def decode_and_draw(maskgit, test_set, settings: DecodingSettings | None = None, image_index: int = 0,
                    step=decode_step, **changes) -> Figure:
    """What the panel shows for these settings: test image ``image_index`` decoded with ``settings``
    and keyword ``changes`` (e.g. ``schedule="square", total_iter=12``; seeded with the settings'
    seed) by ``labcore.inpaint.inpaint_one`` with ``step`` (labcore's ``decode_step`` or yours),
    then drawn by ``labcore.viz.show_decoding``. Bad settings raise a ValueError before any work."""
    settings = DecodingSettings.resolve(settings, **changes)
    item, result = inpaint_one(maskgit, test_set, image_index, settings, step)
    step_images = result.trace.images(maskgit)                                  # (S, 1, 3, 64, 64) per step
    return viz.show_decoding(item, result, step_images, test_set.normalization, settings, step)


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of a figure, cropped to its content as the inline backend does."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _image_output(fig: Figure) -> dict:
    """A figure as one display_data output (the nbformat dict an ``Output`` widget holds)."""
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(figure_png(fig)).decode("ascii"), "text/plain": repr(fig)}}


class DecodingPanel:
    """The ipywidgets panel of notebook 03 (displays itself). ``controls`` are the widgets,
    ``output`` the Output widget holding the figure, ``status`` a label saying "decoding..."
    while a redraw runs (the controls are disabled meanwhile) and how long the last one took,
    ``figure`` the latest figure, ``error`` the latest bad-settings message (None when the last
    draw worked), ``draws`` how many redraws ran, ``step`` the step function every redraw decodes
    with (labcore's ``decode_step`` or yours: ``decode_and_draw(..., step=)``).

    Every control change redraws exactly once. The figure is a bare matplotlib ``Figure`` written
    into ``output.outputs`` as a PNG, replacing the previous one: no pyplot, no backend, no
    capture of display messages, so it works the same in JupyterLab, in a headless run and in
    tests. (``widgets.interactive_output`` relies on the inline backend's name to flush figures,
    which matplotlib 3.11 + IPython 9 no longer match: figures never reached the Output.)"""

    def __init__(self, maskgit, test_set, settings: DecodingSettings | None = None, image_index: int = 0,
                 step=decode_step, **changes):
        import ipywidgets as widgets

        self.maskgit, self.test_set, self.step = maskgit, test_set, step
        self.figure: Figure | None = None
        self.error: str | None = None
        self.draws = 0
        self.seconds: float | None = None  # how long the last redraw took
        self._drawn: dict | None = None  # the settings of the figure on show
        self.controls = decoding_controls(len(test_set), DecodingSettings.resolve(settings, **changes), image_index)
        self.output = widgets.Output()
        self.status = widgets.Label()
        for control in self.controls.values():
            control.observe(self._changed, "value")
        column = list(self.controls.values())
        # two columns of controls (and the status line) above the per-step strips
        self.widget = widgets.VBox([widgets.HBox([widgets.VBox(column[:4]), widgets.VBox(column[4:] + [self.status])]),
                                    self.output])
        self.draw(**self.settings())

    def settings(self) -> dict:
        """The controls' current values, keyed by ``decode_and_draw``'s argument names."""
        return {name: control.value for name, control in self.controls.items()}

    def _changed(self, change) -> None:
        # a T move notifies twice (T, then S's clamp or follow): only settings not on show are drawn
        if self.settings() != self._drawn:
            self.draw(**self.settings())

    def draw(self, **settings) -> Figure | None:
        """Decode with ``settings`` and put the figure (or why it cannot be drawn) in ``output``."""
        self._set_busy(True)
        start = time.perf_counter()
        self.draws += 1
        try:
            figure = decode_and_draw(self.maskgit, self.test_set, step=self.step, **settings)
        except ValueError as err:  # a setting the sliders should not allow: say why, draw nothing
            self.figure, self.error, self._drawn = None, str(err), None
            shown = {"output_type": "stream", "name": "stdout", "text": f"cannot decode with these settings: {err}\n"}
        else:
            self.figure, self.error, self._drawn = figure, None, settings
            shown = _image_output(figure)
        finally:
            self.seconds = time.perf_counter() - start
            self._set_busy(False)
        self.output.outputs = (shown,)  # replaces what was there: one output, never a pile
        return self.figure

    def _set_busy(self, busy: bool) -> None:
        for control in self.controls.values():
            control.disabled = busy
        if busy:
            self.status.value = "decoding..."
        else:
            self.status.value = f"drawn in {self.seconds:.1f} s" if self.error is None else "not drawn: see below"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        # Where widgets cannot render (the notebook not run yet or not trusted, GitHub, nbviewer):
        # the figure on show and a one-line description, instead of the raw VBox(children=...) repr.
        whose = viz.step_text(self.step)
        bundle["text/plain"] = f"DecodingPanel: {len(self.controls)} controls over labcore.viz.show_decoding" + \
                               (f" with {whose}" if whose else "") + " (run the notebook to use them)"
        on_show = self.output.outputs[0].get("data", {}) if self.output.outputs else {}
        if "image/png" in on_show:
            bundle["image/png"] = on_show["image/png"]
        return bundle


def decoding_panel(maskgit, test_set, settings: DecodingSettings | None = None, image_index: int = 0,
                   step=decode_step, **changes) -> DecodingPanel:
    """Controls for schedule, choice temperature, sample temperature, T, sweet spot, test image and
    seed over ``decode_and_draw``, starting at ``settings`` with keyword ``changes``
    (e.g. ``total_iter=8``); every redraw decodes with ``step`` (labcore's ``decode_step`` or your
    own with its signature). Display the returned panel."""
    return DecodingPanel(maskgit, test_set, settings, image_index, step, **changes)
