"""The notebooks in a real browser: JupyterLab driven by Playwright in Debian's chromium.

For each notebook with a widget: open it in JupyterLab, choose Run > Run All Cells, wait until the
kernel is idle, then check that (a) every code cell ran and none shows an error, (b) every widget shows
its controls and every explorer its figure, (c) one slider moved with the keyboard changes what the
kernel draws (figure or readout) within ``SLIDER_TIMEOUT_S``. Slider response times are printed
(``pytest -s``); a failing notebook leaves a screenshot in ``test-artifacts/browser/``.

JupyterLab runs on 127.0.0.1 with a random token and a throwaway HOME, settings and runtime folder, on a
copy of ``notebooks/`` (so autosave never writes outputs into the repository); it is shut down, and
checked to leave no kernel behind, even when a test fails. The copy's parameters cell says ``SEED = s`` for the
first seed of ``GSL_SEEDS`` (default 1): this run is that seed's run of the seed test (``tests/test_notebook_seeds.py``
runs the others), so no notebook runs twice with one seed. The browser is the system chromium
(``/usr/bin/chromium`` from Debian's ``chromium`` package; ``.ci/run`` installs it), or the one named by
``GSL_BROWSER``: Playwright never downloads one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import SEEDS

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
RUN_ALL_TIMEOUT_S = 300
SLIDER_TIMEOUT_S = 15
BROWSER_SEED = SEEDS[0]  # the seed test leaves this seed to this test (see the module docstring)
# the slider each notebook's test moves (its description); it must change what the kernel draws
SLIDER_TO_MOVE = {
    "00_start_here": "try me",
    "01_chain_rule_product": "depth",
    "02_initialization": "depth",
    "03_gradient_checking": "eps",
    "04_l2_and_dropout": "dropout p",
    "05_gradient_clipping": "lr",
    "07_recurrent_networks": "length",
    "06_normalization_and_residuals": "depth",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LAB_SETTINGS = {  # JupyterLab user settings for the throwaway profile
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


def _notebook_source(name: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def _explorer_count(name: str) -> int:
    return len(re.findall(r"widgets\.\w+Explorer\(", _notebook_source(name)))


def test_every_notebook_with_a_widget_is_driven_in_the_browser():
    with_widgets = {path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")
                    if re.search(r"ipywidgets\.\w+\(|Explorer\(", _notebook_source(path.stem))}
    assert with_widgets == set(SLIDER_TO_MOVE)


def _set_seed(path: Path, seed: int) -> None:
    """Make ``SEED = seed`` the line of ``path``'s parameters cell that says ``SEED = 0`` (the seed test's structural
    check guarantees that line)."""
    notebook = nbformat.read(path, as_version=4)
    cell = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    cell.source, count = re.subn(r"^SEED = 0$", f"SEED = {seed}", cell.source, flags=re.M)
    assert count == 1, f"{path.name}: no line `SEED = 0` in the parameters cell"
    nbformat.write(notebook, path)


def _browser_path() -> str:
    candidates = [os.environ.get("GSL_BROWSER"), "/usr/bin/chromium",
                  *(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no chromium found: install Debian's package (apt-get install chromium), or set GSL_BROWSER "
                "to a Chromium/Chrome executable")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """PIDs of every process below ``pid`` (kernels are children of the server)."""
    table = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, check=True).stdout
    children: dict[int, list[int]] = {}
    for line in table.splitlines():
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Lab:
    """A running JupyterLab server: its address, token and process, and every kernel process it was seen with."""

    base: str
    token: str
    server: subprocess.Popen
    processes: set[int] = field(default_factory=set)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}{path}", method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def remember_processes(self) -> None:
        """Note the server's current children (kernels), to check at shutdown that none outlives it."""
        self.processes |= _descendants(self.server.pid)

    def shut_down_kernels(self) -> None:
        for session in self.api("/api/sessions"):
            self.api(f"/api/sessions/{session['id']}", method="DELETE")


@contextmanager
def jupyter_lab(workdir: Path):
    """Yield a ``Lab`` serving ``workdir/notebooks``; afterwards shut it down and check nothing is left running."""
    home = workdir / "home"
    settings = home / "lab-settings"
    for relative, values in LAB_SETTINGS.items():
        (settings / relative).parent.mkdir(parents=True, exist_ok=True)
        (settings / relative).write_text(json.dumps(values))
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    port, token = _free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={workdir / 'notebooks'}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    log_path = workdir / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, server)
    try:
        for _ in range(300):
            if server.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {log_path.read_text()[-2000:]}")
            try:
                lab.api("/api/status")
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"jupyter lab did not answer within a minute: {log_path.read_text()[-2000:]}")
        yield lab
    finally:
        lab.remember_processes()
        try:
            lab.api("/api/shutdown", method="POST")
            server.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        time.sleep(0.5)
        left = sorted(pid for pid in lab.processes if _alive(pid))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"processes left behind by jupyter lab (now killed): {left}"


@pytest.fixture(scope="module")
def lab_and_browser(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browser")
    shutil.copytree(ROOT / "notebooks", workdir / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for name in SLIDER_TO_MOVE:
        _set_seed(workdir / "notebooks" / f"{name}.ipynb", BROWSER_SEED)
    with jupyter_lab(workdir) as lab, sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_browser_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield lab, browser
        finally:
            browser.close()


# Read the live notebook model (exposed by --LabApp.expose_app_in_browser); the actions stay a user's.
KERNEL_IDLE = """() => { const kernel = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
    return kernel?.connectionStatus === 'connected' && kernel?.status === 'idle'; }"""
RUN_FINISHED = """() => { const panel = window.jupyterapp.shell.currentWidget;
    const cells = panel.content.widgets.filter(cell => cell.model.type === 'code');
    return panel.sessionContext.session.kernel.status === 'idle'
        && cells.some(cell => cell.model.executionCount !== null)
        && cells.every(cell => cell.model.executionState !== 'running'); }"""
CELL_REPORT = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .map((cell, index) => ({index, type: cell.model.type, count: cell.model.executionCount ?? null,
        errors: cell.model.type !== 'code' ? [] : cell.model.outputs.toJSON()
            .filter(output => output.output_type === 'error').map(output => `${output.ename}: ${output.evalue}`)}))
    .filter(cell => cell.type === 'code')"""
# What the kernel draws in a widget: its text and images, without the sliders' own readouts
# (those change in the browser alone).
DRAWN = """output => { const copy = output.cloneNode(true);
    copy.querySelectorAll('.widget-readout').forEach(readout => readout.remove());
    return copy.textContent + [...output.querySelectorAll('img')].map(img => img.src).join('|'); }"""


@pytest.mark.parametrize("name", sorted(SLIDER_TO_MOVE))
def test_notebook_runs_and_its_widgets_respond_in_jupyterlab(lab_and_browser, name):
    lab, browser = lab_and_browser
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        page.goto(f"{lab.base}/lab/tree/{name}.ipynb?reset&token={lab.token}")
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
        lab.remember_processes()
        page.locator(".lm-MenuBar-item", has_text="Run").click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_TIMEOUT_S * 1000, polling=250)

        cells = page.evaluate(CELL_REPORT)
        not_run = [cell["index"] for cell in cells if cell["count"] is None]
        errors = {cell["index"]: cell["errors"] for cell in cells if cell["errors"]}
        assert not errors, f"{name} (SEED = {BROWSER_SEED}): cells with errors: {errors}"
        assert not not_run, f"{name}: code cells that did not run: {not_run}"
        assert page.get_by_text("Error displaying widget").count() == 0

        outputs = page.locator(".jp-OutputArea-output:has(> .jupyter-widgets)")
        assert outputs.count() >= 1, f"{name}: no widget was rendered"
        for i in range(outputs.count()):
            assert outputs.nth(i).locator(".noUi-handle, select").count() >= 1, f"{name}: widget {i} has no controls"
        figures = outputs.locator("img.widget-image")
        assert figures.count() == _explorer_count(name)
        for i in range(figures.count()):
            figures.nth(i).scroll_into_view_if_needed()
            assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 100"), f"{name}: figure {i} empty"

        label = page.locator(".widget-label", has_text=re.compile(f"^{re.escape(SLIDER_TO_MOVE[name])}$"))
        slider = page.locator(".widget-slider", has=label).first
        output = outputs.filter(has=slider).element_handle()
        handle = slider.locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        value_before, drawn_before = handle.get_attribute("aria-valuenow"), output.evaluate(DRAWN)
        handle.focus()
        start = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"([output, before]) => ({DRAWN})(output) !== before", arg=[output, drawn_before],
                               timeout=SLIDER_TIMEOUT_S * 1000, polling="raf")
        response = time.perf_counter() - start
        assert handle.get_attribute("aria-valuenow") != value_before
        print(f"\n{name}: slider '{SLIDER_TO_MOVE[name]}' {value_before} -> {handle.get_attribute('aria-valuenow')}, "
              f"redrawn after {response:.2f} s")
        assert not page_errors, f"{name}: JavaScript errors in the page: {page_errors}"
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with suppress(Exception):  # the screenshot is a help; the test's own error is what gets reported
            page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        raise
    finally:
        page.close()
        lab.shut_down_kernels()

