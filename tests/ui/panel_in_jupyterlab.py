"""Real-browser test of notebook 03's decoding panel (``make test-ui``).

It starts JupyterLab from this venv on 127.0.0.1 (a free port, a random token, a throw-away copy of
the notebook and throw-away Jupyter settings), opens notebook 03 in headless Chromium driven by
Playwright, runs all cells, then changes every control of the panel through the page as a person
would (the dropdown by choosing an option, a slider by an arrow key on its handle or by typing into
its readout) and checks, for each change:

- the panel's image is replaced by a different one, exactly once (a MutationObserver counts the
  images that appear in the panel's Output), and only one image is on show afterwards;
- the controls are disabled and the status says "decoding..." while the kernel redraws.

At the end the browser console must hold no errors. Screenshots go to results/ui/, and each redraw
time (control change -> new image on the page) is printed. Every process it starts (Jupyter server,
kernel, Chromium, Playwright's driver) is stopped, also on failure.

Not collected by pytest (the name does not start with ``test_``): it needs Chromium and Playwright,
which ``make test-ui`` installs when missing. Run it with ``make test-ui`` or
``.venv/bin/python tests/ui/panel_in_jupyterlab.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "03_iterative_decoding.ipynb"
SHOTS = REPO / "results" / "ui"
CHROMIUM = os.environ.get("LABCORE_CHROMIUM", "/usr/bin/chromium")
# Flags that work headless, as root, on a machine without a GPU or a network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Generous limits: the machine may have two cores shared with other jobs.
SERVER_START_S, RUN_ALL_S, REDRAW_S = 180, 600, 180
# Every cell kept in the page (no virtual scrolling, so the panel's cell is always in the DOM).
# No news or update settings here: the venv's overrides.json (`make setup`, from
# scripts/jupyterlab-overrides.json) must keep the page free of pop-ups, as in `make lab`.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
POPUP_WAIT_S = 8  # JupyterLab asks about news a moment after the page is up
# (control, how, what): each of the panel's controls changed once, as a person would: the dropdown
# by choosing an option, a slider by one arrow key on its handle or by typing into its readout.
CHANGES = [
    ("schedule γ", "select", "square"),
    ("choice temperature", "key", "ArrowLeft"),            # 4.5 -> 4.0
    ("sample temperature", "type", "1"),                   # 0 (argmax) -> 1: sampled tokens
    ("total iterations T", "key", "ArrowRight"),           # 8 -> 9; S was at T and follows: one redraw
    ("sweet spot S", "key", "ArrowLeft"),                  # 9 -> 8
    ("test image", "key", "ArrowRight"),                   # 1 -> 2
    ("seed", "key", "ArrowRight"),                         # 0 -> 1
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_without_outputs(notebook: Path, target: Path) -> None:
    """A copy of ``notebook`` with no outputs or execution counts: after Run All, every cell
    counted and every picture on the page comes from this run."""
    data = json.loads(notebook.read_text())
    for cell in data["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    data["metadata"].pop("widgets", None)
    target.write_text(json.dumps(data, indent=1))


def write_lab_settings(settings_dir: Path) -> None:
    for name, values in LAB_SETTINGS.items():
        plugin, file = name.split("/", 1)
        path = settings_dir / plugin / file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the server's kernels), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def stop(pid: int, grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; a process already gone is fine."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll for it
                if not Path(f"/proc/{pid}").exists():
                    return
            time.sleep(0.2)


class JupyterLab:
    """A JupyterLab server on a free port of 127.0.0.1 serving ``root``, with its own throw-away
    config, data, runtime and settings folders; ``close()`` stops it and the kernels it started."""

    def __init__(self, root: Path, scratch: Path):
        self.port, self.token = free_port(), os.urandom(16).hex()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LABCORE_FAST": "1", "JUPYTER_CONFIG_DIR": str(scratch / "config"),
               "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "workspaces"), "IPYTHONDIR": str(scratch / "ipython"),
               "MPLCONFIGDIR": str(scratch / "matplotlib")}
        write_lab_settings(scratch / "settings")
        self.log_path = scratch / "jupyter.log"
        self.log = open(self.log_path, "w")
        jupyter = Path(sys.executable).parent / "jupyter"
        self.process = subprocess.Popen(
            [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=None", "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"]
            + (["--allow-root"] if os.geteuid() == 0 else []),
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.kernels: set[int] = set()

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as response:
            return json.loads(response.read() or "null")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"jupyter lab did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def remember_kernels(self) -> None:
        self.kernels.update(children_of(self.process.pid))

    def log_tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            self.remember_kernels()
        stop(self.process.pid)      # the server shuts its kernels down on SIGTERM ...
        for pid in self.kernels:    # ... and any kernel that outlived it is stopped here
            stop(pid, grace_s=5)
        self.log.close()


# ----------------------------------------------------------------------------- in the page

def open_notebook(page, lab: JupyterLab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}", timeout=SERVER_START_S * 1000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
                           timeout=SERVER_START_S * 1000)


def check_no_popups(page) -> None:
    """What a student sees on opening the lab: no toast (JupyterLab's "official Jupyter news?"
    question, an update notice) over the notebook."""
    page.wait_for_timeout(POPUP_WAIT_S * 1000)
    toasts = page.locator(".Toastify__toast").all_inner_texts()
    assert not toasts, f"pop-ups on opening the lab: {toasts}"


def start_run_all(page) -> float:
    """Run every cell (Lab's own "Run All Cells" command), as a student does on opening it; the start time."""
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    return time.monotonic()


def wait_run_all(page, start: float) -> float:
    """Wait until each cell has run; the seconds since ``start``."""
    page.wait_for_function(  # every code cell counted ([n]: run; [*]: queued or running; [ ]: not run)
        """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].every(
                   p => /\\[\\d+\\]/.test(p.textContent))
              || [...document.querySelectorAll('.jp-OutputArea-output')].some(
                   o => o.textContent.includes('Traceback'))""", timeout=RUN_ALL_S * 1000)
    failed = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
        .map(o => o.textContent).filter(t => t.includes('Traceback')).map(t => t.slice(0, 600))""")
    assert not failed, f"a cell failed:\n{failed[0]}"
    return time.monotonic() - start


PANEL = "document.querySelector('.jp-Cell .widget-vbox .widget-output')?.closest('.widget-vbox')"


def watch_panel(page) -> None:
    """Count the images that appear in the panel's Output (a redraw adds exactly one)."""
    page.evaluate(f"""() => {{
        const output = {PANEL}.querySelector('.widget-output');
        window.labcoreNewImages = 0;
        window.labcoreObserver?.disconnect();
        window.labcoreObserver = new MutationObserver(records => {{
            for (const r of records) for (const n of r.addedNodes)
                if (n.nodeType === 1)
                    window.labcoreNewImages += (n.tagName === 'IMG') + n.querySelectorAll('img').length;
        }});
        window.labcoreObserver.observe(output, {{childList: true, subtree: true}});
    }}""")


def panel_state(page) -> dict:
    return page.evaluate(f"""() => {{
        const panel = {PANEL};
        if (!panel) return {{src: null, images: 0, status: 'no live panel on the page', disabled: [], newImages: 0}};
        const images = [...panel.querySelectorAll('.widget-output img')];
        const disabled = [...panel.querySelectorAll('select')].map(e => e.disabled).concat(
            [...panel.querySelectorAll('.noUi-target')].map(e => e.hasAttribute('disabled')));
        const labels = [...panel.querySelectorAll('.widget-label-basic, .widget-label')].map(l => l.textContent);
        return {{src: images.length ? images[0].src : null, images: images.length,
                 status: labels.find(t => t.startsWith('drawn in') || t.startsWith('decoding')
                                          || t.startsWith('not drawn')) || '',
                 disabled, newImages: window.labcoreNewImages ?? 0}};
    }}""")


def control(page, description: str):
    """The widget box (description, input, readout) of the panel control called ``description``."""
    return page.locator(".widget-inline-hbox", has=page.locator("label", has_text=description)).first


def change(page, description: str, how: str, what: str) -> None:
    box = control(page, description)
    if how == "select":
        box.locator("select").select_option(what)
    elif how == "key":
        box.locator(".noUi-handle").first.press(what)
    else:  # type into the slider's editable readout, then Enter
        readout = box.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(what)
        page.keyboard.press("Enter")


def check_redraw(page, description: str, how: str, what, before: dict) -> tuple[float, bool]:
    """Change one control; wait for the new image; return (seconds, whether "busy" was seen)."""
    watch_panel(page)
    start = time.monotonic()
    change(page, description, how, what)
    busy_seen = False
    deadline = start + REDRAW_S
    while True:
        state = panel_state(page)
        busy_seen |= state["status"].startswith("decoding") and all(state["disabled"])
        if state["src"] not in (None, before["src"]) and state["status"].startswith("drawn in"):
            break
        assert time.monotonic() < deadline, f"{description}: no new image within {REDRAW_S} s (now {state})"
        time.sleep(0.05)
    seconds = time.monotonic() - start
    page.wait_for_timeout(1500)  # a second redraw of the same change would show up by now
    state = panel_state(page)
    assert state["newImages"] == 1, f"{description}: {state['newImages']} images appeared, expected one redraw"
    assert state["images"] == 1, f"{description}: {state['images']} images on show, expected one"
    assert not any(state["disabled"]), f"{description}: controls still disabled after the redraw"
    return seconds, busy_seen


def drive_panel(page) -> list[tuple[str, float, bool]]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    panel = page.locator(".jp-Cell", has=page.locator(".widget-output")).first
    panel.scroll_into_view_if_needed()
    try:  # the widget views render a moment after the cell has run
        page.wait_for_function(f"() => {PANEL}?.querySelector('.widget-output img')", timeout=60_000)
    except PlaywrightTimeout:
        pass  # reported just below, with what the panel holds
    state = panel_state(page)
    assert state["images"] == 1 and state["status"].startswith("drawn in"), \
        f"after Run All the panel's Output should hold one figure: {state}"
    assert len(state["disabled"]) == len(CHANGES), f"expected {len(CHANGES)} controls in the panel: {state}"
    panel.screenshot(path=str(SHOTS / "00_after_run_all.png"))
    timings = []
    for i, (description, how, what) in enumerate(CHANGES, start=1):
        seconds, busy_seen = check_redraw(page, description, how, what, state)
        state = panel_state(page)
        panel.screenshot(path=str(SHOTS / f"{i:02d}_{description.split()[0]}.png"))
        timings.append((description, seconds, busy_seen))
        print(f"  {description:20s} redraw {seconds:5.1f} s" + ("  (busy shown)" if busy_seen else ""), flush=True)
    assert any(busy for _, _, busy in timings), "no redraw showed 'decoding...' with disabled controls"
    return timings


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"panel_in_jupyterlab: error: Chromium not found at {CHROMIUM} (apt-get install chromium)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a CI timeout still stops what we started
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    console_errors: list[str] = []
    t0 = time.monotonic()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="labcore-ui-")))
        root = scratch / "notebooks"
        root.mkdir()
        copy_without_outputs(NOTEBOOK, root / NOTEBOOK.name)  # Lab autosaves: never the committed file
        lab = JupyterLab(root, scratch)
        stack.callback(lab.close)
        lab.wait_ready()
        print(f"JupyterLab up in {time.monotonic() - t0:.1f} s on 127.0.0.1:{lab.port}", flush=True)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch_persistent_context(
            str(scratch / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        stack.callback(browser.close)
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: console_errors.append(f"page error: {e}"))
        try:
            open_notebook(page, lab, NOTEBOOK.name)
            lab.remember_kernels()
            print(f"notebook 03 open, kernel idle: {time.monotonic() - t0:.1f} s", flush=True)
            start = start_run_all(page)
            check_no_popups(page)                    # while the cells run: the toasts come in the first seconds
            print("no pop-ups on opening the lab", flush=True)
            print(f"ran all cells in {wait_run_all(page, start):.1f} s", flush=True)
            drive_panel(page)
        except BaseException:
            try:
                page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
            finally:
                print(f"--- jupyter log (last lines):\n{lab.log_tail()}", file=sys.stderr)
            raise
    assert not console_errors, "browser console errors:\n  " + "\n  ".join(console_errors)
    print(f"panel_in_jupyterlab: OK in {time.monotonic() - t0:.0f} s; screenshots in {SHOTS.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
