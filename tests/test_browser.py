"""The prompt panel in a real browser: JupyterLab + headless Chromium (Selenium) type a prompt, click, see an image.

Needs (skips with the reason when missing): Debian ``chromium`` and ``chromium-driver`` (or any Chrome +
chromedriver on PATH), and ``pip install jupyterlab selenium``.  A throw-away notebook is written at test time
(``widget_demo.ipynb`` in a temporary folder) that loads a tiny CVAE trained on real Fashion-MNIST and shows
:func:`cvaelib.viz.widgets.prompt_panel`.  The server listens on 127.0.0.1 only, with a random token, and its
settings/runtime folders are temporary.  A screenshot goes to ``ci-artifacts/widget.png``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tiny_models import REPO, tiny_checkpoint

ARTIFACTS = REPO / "ci-artifacts"
PROMPT = "two sneakers and a bag"


def _missing() -> str | None:
    for module, pip in (("jupyterlab", "jupyterlab"), ("selenium", "selenium"), ("ipywidgets", "ipywidgets"),
                        ("ipykernel", "ipykernel"), ("nbformat", "nbformat")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install {pip})"
    if _browser() is None:
        return "no chromium/chrome binary on PATH (apt-get install -y chromium chromium-driver)"
    if shutil.which("chromedriver") is None:
        return "no chromedriver on PATH (apt-get install -y chromium-driver)"
    return None


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=f"browser test needs: {_missing()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_notebook(folder: Path, checkpoint: Path) -> Path:
    import nbformat

    cells = [
        nbformat.v4.new_code_cell(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                                  "from cvaelib import load_model\nfrom cvaelib.viz.widgets import prompt_panel"),
        nbformat.v4.new_code_cell(f"model = load_model({str(checkpoint)!r})\npanel = prompt_panel(model, n=4)\npanel"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = folder / "widget_demo.ipynb"
    nbformat.write(nb, path)
    return path


def _settings(folder: Path) -> Path:
    """JupyterLab user settings that switch off the news/update notification (it covers the page corner)."""
    settings = folder / "lab-settings"
    target = settings / "@jupyterlab" / "apputils-extension"
    target.mkdir(parents=True)
    (target / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                           "checkForUpdates": False}))
    return settings


@pytest.fixture()
def lab(tmp_path, data_root):
    checkpoint = tiny_checkpoint("cvae", "fashion-mnist", data_root)
    work = tmp_path / "nb"
    work.mkdir()
    _write_notebook(work, checkpoint)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(_settings(tmp_path)),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "CVAELIB_DATA": str(data_root), "MPLBACKEND": "Agg"}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
                               "--ServerApp.open_browser=False", "--allow-root", "--ServerApp.terminals_enabled=False",
                               "--LabApp.extension_manager=readonly"],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"jupyter lab did not start: {(tmp_path / 'lab.log').read_text()[-1500:]}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "log": tmp_path / "lab.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _browser()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def _type(driver, box, text: str) -> None:
    """Replace the text box's content and let the widget sync it to the kernel before anything is clicked."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)
    WebDriverWait(driver, 10).until(lambda d: box.get_attribute("value") == text)
    box.send_keys(Keys.TAB)  # blur: the value change is sent even where the text box syncs on change only
    time.sleep(1.0)  # the widget's comm messages are ordered, but give a busy kernel a moment


def test_prompt_panel_renders_an_image_in_jupyterlab(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    ARTIFACTS.mkdir(exist_ok=True)
    driver = _driver()
    try:
        driver.get(f"{lab['base']}/lab/tree/widget_demo.ipynb?token={lab['token']}")
        wait = WebDriverWait(driver, 120)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")))
        # Wait for the kernel, then "Run All Cells" (the app object is exposed by --LabApp.expose_app_in_browser;
        # the command palette is the fallback).
        wait.until(lambda d: d.execute_script(
            "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel);"))
        ran = driver.execute_script(
            "const a = window.jupyterapp; if (!a) return false; a.commands.execute('notebook:run-all-cells');"
            "return true;")
        if not ran:
            body = driver.find_element(By.TAG_NAME, "body")
            body.send_keys(Keys.CONTROL, Keys.SHIFT, "c")
            palette = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".lm-CommandPalette-input")))
            palette.send_keys("Run All Cells", Keys.ENTER)
        for dismiss in driver.find_elements(By.CSS_SELECTOR, ".jp-toast-button, .Toastify__close-button"):
            try:
                dismiss.click()
            except Exception:  # noqa: BLE001 - a toast that vanished meanwhile is fine
                pass
        button = WebDriverWait(driver, 180).until(
            EC.element_to_be_clickable((By.CSS_SELECTOR, "button.jupyter-button")))
        box = driver.find_element(By.CSS_SELECTOR, ".widget-text input")
        _type(driver, box, PROMPT)
        button.click()
        img = WebDriverWait(driver, 120).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, ".widget-output img, .jupyter-widgets-output-area img")))
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        width, height = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
        driver.execute_script("arguments[0].scrollIntoView()", driver.find_element(By.CSS_SELECTOR, ".widget-vbox"))
        driver.save_screenshot(str(ARTIFACTS / "widget.png"))
        assert width > 100 and height > 100, (width, height)
        # exactly one image: the output is replaced, not appended to
        assert len(driver.find_elements(By.CSS_SELECTOR, ".widget-output img, .jupyter-widgets-output-area img")) == 1
        _type(driver, box, "a blue car")
        button.click()
        WebDriverWait(driver, 30).until(lambda d: "no class found" in d.find_element(
            By.CSS_SELECTOR, ".widget-output, .jupyter-widgets-output-area").text)
        assert not driver.find_elements(By.CSS_SELECTOR, ".widget-output img, .jupyter-widgets-output-area img")
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "widget-failure.png"))
        print(Path(lab["log"]).read_text()[-3000:])
        raise
    finally:
        driver.quit()
