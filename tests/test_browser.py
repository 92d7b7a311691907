"""The course in a real browser: JupyterLab and headless Chromium run notebook 00.

nbval executes the notebooks' code; this test checks what a learner *sees*. It starts JupyterLab
(fast mode, data and runs in the test's tmp folder, Jupyter's config, runtime and settings there
too), and drives headless Chromium through selenium: the notebook opens in a fresh browser and
a fresh kernel, its stored outputs are cleared (Edit > Clear Outputs of All Cells) and it is run
with Run > Run All Cells. Then no cell may show an error, every code cell must have run, no output
may say "IProgress not found", and an extra cell (added in the browser, never saved) must show a
progress bar made by ``env.progress`` as a widget and a figure made by the course's plotting
helpers as an image. A tall screenshot of the notebook is saved in the tmp folder and its path
printed.

Each notebook runs once per ``pytest``: where this test runs, nbval leaves the notebooks it runs
(``NOTEBOOKS``) to it (tests/conftest.py); where it is skipped or deselected, nbval runs them.

Needs /usr/bin/chromium, /usr/bin/chromedriver and selenium (``tests/browser_setup.sh`` installs
them); without them the test skips. Nothing is downloaded: the driver's path is given, so
selenium-manager never runs. Autosave is off, the notebooks are never saved and their checkpoints
go to the tmp folder; the test checks JupyterLab's log for any write through its contents API
and that no .ipynb_checkpoints folder appeared. The whole test has a budget
(``UNET_LESSON_BROWSER_BUDGET_S``, default 300 s); a watchdog kills the browser and the server
when it is spent, so a hang fails with a clear message instead of blocking CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOTEBOOKS = ("notebooks/00_welcome_and_setup.ipynb",)
BUDGET_S = float(os.environ.get("UNET_LESSON_BROWSER_BUDGET_S", "300"))
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1400,1000",
)
# The extra cell: a progress bar from the course's own helper, forced on (fast mode hides bars),
# and a figure from its plotting helpers (shown by the inline backend when the cell ends).
EXTRA_CELL = (
    "import numpy as np\n\nfrom unet_lesson import env, plotting\n\n"
    "bar = env.progress(range(3), disable=False)\nlist(bar)\n"
    "figure = plotting.show_images([np.eye(32), np.ones((32, 32))], ['eye', 'ones'])"
)
NO_WIDGETS = "IProgress not found"
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
WIDGET = ".jupyter-widgets.widget-hprogress, .jupyter-widgets.widget-progress"
MAX_SCREENSHOT_HEIGHT = 16000


def _missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (run tests/browser_setup.sh)"
    for module in ("selenium", "jupyterlab", "ipywidgets"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (run tests/browser_setup.sh)"
    return None


_MISSING = _missing()
# the `browser` marker is registered in pyproject.toml: `pytest -m "not browser"` leaves it out
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


class BudgetSpent(AssertionError):
    """A wait ran past its limit or past the whole test's budget."""


class Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _wait_for(deadline: Deadline, what: str, check, timeout: float, poll: float = 0.5):
    """Poll ``check()`` until it returns something truthy; fail clearly when time is up."""
    limit = min(timeout, max(deadline.left(), 0.0))
    end = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= end:
            why = (
                f"the test's whole budget of {deadline.seconds:.0f} s is spent"
                if limit < timeout
                else f"{timeout:.0f} s passed"
            )
            raise BudgetSpent(
                f"timed out waiting for {what} ({why}; "
                "set UNET_LESSON_BROWSER_BUDGET_S for a slower machine)"
            )
        time.sleep(poll)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kill_processes_mentioning(marker: str) -> list[int]:
    """SIGKILL this test's leftovers (kernels, Chromium), found by a tmp path in their cmdline."""
    killed = []
    proc = Path("/proc")
    if not marker or not proc.is_dir():
        return killed
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except OSError:
                pass
    return killed


def _write_settings(settings_dir: Path) -> None:
    """User settings: no autosave (never write the repo's notebooks), no news, all cells in DOM."""
    settings = {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "scrollPastEnd": False},
    }
    for plugin, values in settings.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2), encoding="utf-8")


class Lab:
    """A JupyterLab server in a subprocess, isolated in ``tmp``."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "jupyterlab.log"
        self.runtime_dir = tmp / "jupyter-runtime"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
        for name in ("MPLBACKEND", "TQDM_DISABLE", "IPYTHONDIR"):  # as on a learner's machine
            env.pop(name, None)
        env.update(
            UNET_LESSON_FAST="1",
            UNET_LESSON_RUNS=str(self.tmp / "runs"),
            UNET_LESSON_DATA=str(self.tmp / "data"),
            JUPYTER_CONFIG_DIR=str(self.tmp / "jupyter-config"),
            JUPYTER_DATA_DIR=str(self.tmp / "jupyter-data"),
            JUPYTER_RUNTIME_DIR=str(self.runtime_dir),
            IPYTHONDIR=str(self.tmp / "ipython"),
            MPLCONFIGDIR=str(self.tmp / "matplotlib"),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, deadline: Deadline) -> None:
        settings_dir = self.tmp / "lab-settings"
        _write_settings(settings_dir)
        for attempt in range(2):  # a free port can be taken between our check and the bind
            self.port = _free_port()
            cmd = [
                sys.executable, "-m", "jupyterlab", "--no-browser",
                "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={REPO}",
                f"--LabApp.user_settings_dir={settings_dir}",
                f"--LabApp.workspaces_dir={self.tmp / 'lab-workspaces'}",
                # Lab makes a checkpoint of each notebook it opens: keep them out of the repo
                f"--FileCheckpoints.checkpoint_dir={self.tmp / 'jupyter-checkpoints'}",
                "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, as Galata uses it
                "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
            ]  # fmt: skip
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                cmd.append("--ServerApp.allow_root=True")  # CI containers run as root
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    cmd, cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            try:
                _wait_for(deadline, "JupyterLab to answer", self._answers, timeout=90)
                return
            except BudgetSpent:
                if self.proc.poll() is None or attempt == 1:
                    raise AssertionError(f"JupyterLab did not start:\n{self.log_tail()}") from None

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise BudgetSpent(f"JupyterLab exited with {self.proc.returncode}")
        try:
            return self.api("GET", "/api/status", timeout=3) is not None
        except (OSError, urllib.error.URLError):
            return False

    def api(self, method: str, path: str, timeout: float = 10):
        request = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else {}

    def sessions(self) -> list[dict]:
        return self.api("GET", "/api/sessions")

    def shut_down_kernels(self) -> None:
        for session in self.sessions():
            self.api("DELETE", f"/api/sessions/{session['id']}", timeout=20)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            for step in (self.shut_down_kernels, lambda: self.api("POST", "/api/shutdown")):
                try:
                    step()
                except Exception:  # the signals below are the fallback
                    pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                    try:
                        os.killpg(self.proc.pid, sig)
                        self.proc.wait(timeout=wait)
                        break
                    except (OSError, subprocess.TimeoutExpired):
                        continue
        # kernels run in sessions of their own; their connection files live in our runtime dir
        _kill_processes_mentioning(str(self.runtime_dir))


class Browser:
    """Headless Chromium through selenium, one per notebook (a fresh page, a fresh kernel)."""

    def __init__(self, tmp: Path, name: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tmp / f"chromium-{name}"  # a new, empty --user-data-dir
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        self.service = Service(str(CHROMEDRIVER), log_output=str(tmp / f"chromedriver-{name}.log"))
        try:
            self.driver = webdriver.Chrome(service=self.service, options=options)
        except Exception:
            _kill_processes_mentioning(str(self.profile))
            raise
        self.closed = False
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(30)

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def quit(self) -> None:
        if self.closed:
            return
        self.closed = True
        worker = threading.Thread(target=self._quit, daemon=True)
        worker.start()
        worker.join(timeout=20)
        _kill_processes_mentioning(str(self.profile))  # Chromium left behind by a hung driver
        process = getattr(self.service, "process", None)
        if process is not None and process.poll() is None:
            process.kill()

    def kill(self) -> None:
        """For the watchdog: no polite quit (it waits behind a hung command), just kill."""
        self.closed = True
        process = getattr(self.service, "process", None)
        if process is not None and process.poll() is None:
            process.kill()
        _kill_processes_mentioning(str(self.profile))

    def _quit(self) -> None:
        try:
            self.driver.quit()
        except Exception:  # quitting is best effort; leftovers are killed
            pass


# JavaScript run in the page. The notebook panel is the visible one in the main area.
_PANEL = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')"
_STATE_JS = f"""
const panel = {_PANEL};
if (!panel) return null;
const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
return {{
  cells: panel.querySelectorAll('.jp-Notebook .jp-Cell').length,
  prompts: [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent),
  outputs: panel.querySelectorAll('.jp-OutputArea-output').length,
  kernel: indicator ? indicator.dataset.status : null,
}};
"""
_RESULTS_JS = f"""
const panel = {_PANEL};
const cells = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell')];
const images = [...panel.querySelectorAll('.jp-OutputArea-output img')];
return {{
  cells: cells.map(c => ({{
    prompt: c.querySelector('.jp-InputPrompt').textContent,
    source: [...c.querySelectorAll('.jp-InputArea-editor .cm-line')].map(l => l.textContent)
      .join('\\n').slice(0, 60),
    stderr: [...c.querySelectorAll('.jp-OutputArea-output{STDERR}')].map(e => e.textContent),
    text: c.querySelector('.jp-Cell-outputArea').textContent,
    widgets: c.querySelectorAll('.jp-OutputArea-output :is({WIDGET})').length,
    images: c.querySelectorAll('.jp-OutputArea-output img').length,
  }})),
  images: images.length,
  loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
}};
"""
# The notebook panel (widget) for the path in arguments[0], through window.jupyterapp.
_FIND_PANEL = """
const app = window.jupyterapp;
if (!app) return null;
const panel = Array.from(app.shell.widgets('main'))
  .find(w => w.context && w.context.path === arguments[0]);
if (!panel) return null;
"""
# The document model's own error outputs (output_type "error"), beside what the DOM shows.
_MODEL_ERRORS_JS = """/*FIND_PANEL*/
const errors = [];
for (const cell of Array.from(panel.content.model.cells)) {
  if (cell.type !== 'code') continue;
  for (const out of cell.outputs.toJSON()) {
    if (out.output_type === 'error') errors.push(`${out.ename}: ${out.evalue}`);
  }
}
return errors;
""".replace("/*FIND_PANEL*/", _FIND_PANEL)
# A code cell below the last one, holding arguments[1] (asynchronous: the last argument is done).
_ADD_CELL_JS = """const done = arguments[arguments.length - 1];
const found = (() => { /*FIND_PANEL*/ return panel; })();
if (!found) return done('no notebook panel');
const notebook = found.content;
notebook.activeCellIndex = notebook.widgets.length - 1;
notebook.mode = 'command';
window.jupyterapp.commands.execute('notebook:insert-cell-below')
  .then(() => {
    notebook.activeCell.model.sharedModel.setSource(arguments[1]);
    done(notebook.activeCellIndex);
  })
  .catch(err => done('error: ' + err));
""".replace("/*FIND_PANEL*/", _FIND_PANEL)


def _menu(browser: Browser, deadline: Deadline, menu: str, command: str, took_effect) -> None:
    """Click main menu ``menu``, then its item ``command``, until ``took_effect()`` is true.

    Lumino renders ``data-command`` on every menu item, so no label text is needed for the item.
    A click can get lost (seen once in a few dozen runs: the menu closed, nothing ran), so the
    click is repeated up to three times, but only while the command visibly did nothing.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def close_menus():
        if browser.js("return document.querySelectorAll('.lm-Menu').length"):
            browser.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

    def menu_item():
        close_menus()
        for label in browser.driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item"):
            if label.text.strip() == menu:
                label.click()
                break
        item = f'.lm-Menu .lm-Menu-item[data-command="{command}"]'
        for element in browser.driver.find_elements(By.CSS_SELECTOR, item):
            enabled = "lm-mod-disabled" not in (element.get_attribute("class") or "")
            if element.is_displayed() and enabled:
                return element
        return None

    for attempt in range(1, 4):
        item = _wait_for(deadline, f"the menu item {menu} > {command}", menu_item, timeout=30)
        # hover first: a Lumino menu triggers the item the pointer made active on mouseup
        ActionChains(browser.driver).move_to_element(item).pause(0.3).click().perform()
        try:
            _wait_for(deadline, f"{menu} > {command} to take effect", took_effect, timeout=10)
            return
        except BudgetSpent:
            if attempt == 3 or deadline.left() < 15:
                raise
            print(f"{menu} > {command}: the click did nothing, clicking again")


def _run_notebook(lab: Lab, browser: Browser, deadline: Deadline, path: str) -> None:
    """Open ``path`` in a fresh workspace, clear it, run all cells and wait until all ran."""
    n_cells = len(json.loads((REPO / path).read_text(encoding="utf-8"))["cells"])
    workspace = Path(path).stem.replace("_", "-")
    browser.driver.get(f"{lab.base}/lab/workspaces/{workspace}/tree/{path}?reset&token={lab.token}")

    def state():
        return browser.js(_STATE_JS) or {}

    _wait_for(
        deadline, f"{path} to render its {n_cells} cells and its kernel to be idle",
        lambda: (s := state()).get("cells") == n_cells and s.get("kernel") == "idle", timeout=120,
    )  # fmt: skip
    _menu(browser, deadline, "Edit", "editmenu:clear-all", lambda: state().get("outputs") == 0)

    def started():  # cleared prompts are "[ ]:"; a cell queued or run shows "[*]:" or "[1]:"
        return any(re.fullmatch(r"\[(\*|\d+)\]:", p) for p in state().get("prompts", []))

    _menu(browser, deadline, "Run", "runmenu:run-all", started)
    _wait_until_idle(deadline, path, state)


def _wait_until_idle(deadline: Deadline, what: str, state) -> None:
    """Wait until the run finished: no ``[*]`` prompt and the kernel idle, twice in a row."""
    calm = []

    def finished():
        s = state()
        if s.get("kernel") in {"dead", "unknown", "restarting", "autorestarting"}:
            raise AssertionError(f"the kernel of {what} is {s['kernel']} (killed? out of memory?)")
        calm.append(s.get("kernel") == "idle" and not any("*" in p for p in s["prompts"]))
        return len(calm) >= 2 and calm[-1] and calm[-2]

    _wait_for(deadline, f"every cell of {what} to finish", finished, timeout=BUDGET_S, poll=1)


def _problems(browser: Browser, path: str) -> list[str]:
    """What a learner would see go wrong in the notebook as it is shown now."""
    found = []
    results = browser.js(_RESULTS_JS)
    model_errors = browser.js(_MODEL_ERRORS_JS, path)
    for error in model_errors or []:
        found.append(f"{path}: an error output: {error}")
    not_run = []
    for number, cell in enumerate(results["cells"], 1):
        where = f"{path}, code cell {number} {cell['prompt']} {cell['source']!r}"
        for text in cell["stderr"]:
            if "Traceback" in text:
                found.append(f"{where} shows a traceback:\n{text[-1500:]}")
        if NO_WIDGETS in cell["text"]:
            found.append(f"{where} says {NO_WIDGETS!r}: progress bars are not widgets")
        if not re.fullmatch(r"\[\d+\]:", cell["prompt"]):
            not_run.append(number)
    if not_run:
        found.append(f"{path}: code cells {not_run} of {len(results['cells'])} did not run")
    if model_errors is None:
        found.append(f"{path}: window.jupyterapp did not give the notebook's model")
    return found


def _check_widget_and_figure(browser: Browser, deadline: Deadline, path: str) -> list[str]:
    """Add a cell that makes an ``env.progress`` bar and a figure, run it, and look for the
    widget and the image."""
    index = browser.driver.execute_async_script(_ADD_CELL_JS, path, EXTRA_CELL)
    if not isinstance(index, int):
        return [f"{path}: could not add the progress-bar and figure cell ({index})"]

    def last_cell():
        return browser.js(_RESULTS_JS)["cells"][-1]

    def started():
        return re.fullmatch(r"\[(\*|\d+)\]:", last_cell()["prompt"])

    _menu(browser, deadline, "Run", "notebook:run-cell", started)

    try:
        _wait_for(
            deadline, "the extra cell to run and render its widget and its figure",
            lambda: ((c := last_cell())["widgets"] and c["images"]) or NO_WIDGETS in c["text"]
            or (re.fullmatch(r"\[\d+\]:", c["prompt"]) and c["stderr"]),
            timeout=60,
        )  # fmt: skip
    except BudgetSpent as timeout:
        return [f"{path}: no progress widget or figure rendered ({timeout}): {last_cell()}"]
    cell, shown = last_cell(), last_cell()["text"][-800:]
    if not cell["widgets"] or NO_WIDGETS in cell["text"] or cell["stderr"]:
        return [f"{path}: env.progress did not render as a widget; the cell shows:\n{shown}"]
    found = []

    def loaded():  # the figure's PNG decoded by the browser
        results = browser.js(_RESULTS_JS)
        return results["images"] and results["loaded"] == results["images"]

    try:
        _wait_for(deadline, "the figure to load", loaded, timeout=20)
    except BudgetSpent:
        results = browser.js(_RESULTS_JS)
        found.append(f"{path}: {results['images']} figures, {results['loaded']} loaded")
    return found


def _screenshot(browser: Browser, file: Path) -> Path:
    """The whole notebook in one PNG: hide the sidebar, make the window as tall as the notebook."""
    browser.js("window.jupyterapp && window.jupyterapp.shell.collapseLeft();")
    time.sleep(0.5)
    for _ in range(2):  # the second pass corrects for the window's own frame
        height = browser.js(
            f"""const panel = {_PANEL};
            const scroller = panel.querySelector('.jp-WindowedPanel-outer') || panel;
            return scroller.scrollHeight + window.innerHeight - scroller.clientHeight;"""
        )
        size = browser.driver.get_window_size()
        outer = size["height"] - browser.js("return window.innerHeight;")
        browser.driver.set_window_size(1400, min(int(height) + outer + 20, MAX_SCREENSHOT_HEIGHT))
        time.sleep(1.0)
    browser.js(
        f"const s = {_PANEL}.querySelector('.jp-WindowedPanel-outer'); if (s) s.scrollTop = 0;"
    )
    time.sleep(0.5)
    browser.driver.save_screenshot(str(file))
    return file


def test_notebooks_run_green_in_jupyterlab(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must never fetch a browser or driver
    deadline = Deadline(BUDGET_S)
    checkpoints = [REPO / Path(path).parent / ".ipynb_checkpoints" for path in NOTEBOOKS]
    checkpoints_before = {folder: folder.exists() for folder in checkpoints}

    lab = Lab(tmp_path)
    browsers: list[Browser] = []
    timed_out = threading.Event()

    def watchdog():  # a hung selenium or HTTP call fails once its process is gone
        timed_out.set()
        for browser in browsers:
            browser.kill()
        lab.stop()

    timer = threading.Timer(BUDGET_S + 30, watchdog)
    timer.daemon = True
    timer.start()
    problems: list[str] = []
    screenshots: list[Path] = []
    started = time.monotonic()
    try:
        lab.start(deadline)
        print(f"\nJupyterLab up after {time.monotonic() - started:.1f} s at {lab.base}")
        for path in NOTEBOOKS:
            name = Path(path).stem[:2]
            browser = Browser(tmp_path, name)
            browsers.append(browser)
            t0 = time.monotonic()
            try:
                _run_notebook(lab, browser, deadline, path)
                found = _problems(browser, path)
                found += _check_widget_and_figure(browser, deadline, path)
                text = browser.js(f"return {_PANEL}.textContent;")
                if str(tmp_path / "data") not in text:
                    found.append(f"{path}: the data folder shown is not the test's tmp one")
            except Exception as error:  # recorded; the next notebook still runs
                if timed_out.is_set():
                    raise
                found = [f"{path}: {type(error).__name__}: {error}"]
            problems += found
            print(f"{path}: {time.monotonic() - t0:.1f} s, {len(found)} problems")
            try:
                screenshots.append(_screenshot(browser, tmp_path / f"{Path(path).stem}.png"))
                print(f"screenshot: {screenshots[-1]}")
            except Exception as error:  # a screenshot must not hide the cause
                print(f"no screenshot of {path}: {error!r}")
            browser.quit()
            try:
                lab.shut_down_kernels()  # the next notebook gets a fresh kernel
            except OSError as error:
                print(f"could not shut down the kernels: {error!r}")
    except Exception as error:
        if timed_out.is_set():
            raise BudgetSpent(
                f"the browser test ran past its {BUDGET_S:.0f} s budget and was stopped "
                f"({type(error).__name__}: {error}); JupyterLab log:\n{lab.log_tail()}"
            ) from error
        raise
    finally:
        timer.cancel()
        for browser in browsers:
            browser.quit()
        lab.stop()
        print(f"browser test: {time.monotonic() - started:.1f} s in all; files in {tmp_path}")

    # every write through Jupyter's contents API is logged; the test must have made none
    writes = re.findall(r"(?m)^.*\] (?:Saving file at|Uploading file to|Creating new|delete) .*$",
                        lab.log_tail(chars=10**7))  # fmt: skip
    if writes:
        problems.append("JupyterLab wrote into the repository:\n" + "\n".join(writes))
    for folder, existed in checkpoints_before.items():
        if folder.exists() and not existed:
            problems.append(f"JupyterLab made checkpoints in the repository: {folder}")
    assert not problems, "\n\n".join(problems)
