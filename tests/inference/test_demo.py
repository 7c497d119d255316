"""The demo: its example clips, its analysis and the Gradio app in headless Chromium.

The app runs as a Space does: the package and the training extras blocked (the import block of
``scripts/check_remote_code.py``), the model loaded from the checkpoint's own code. The browser test
needs gradio (the ``[demo]`` extra) and Debian's ``chromium`` + ``chromium-driver``; it is skipped when
they are absent. Chromium is driven through chromedriver's W3C WebDriver HTTP API with the standard
library only.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import yaml

from spatial_clap_hf.inference import load_classifier
from spatial_clap_hf.spatial.conventions import DEFAULT_PHRASES, doa_class

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"
EXAMPLES = DEMOS / "examples"
BAR_RGB = np.array([0x1B, 0x9E, 0x77])  # DIRECTION_COLOR of demos/spatial_where.py


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


where_demo = _load(DEMOS / "spatial_where.py")


def _examples_index() -> list[dict]:
    return json.loads((EXAMPLES / "examples.json").read_text())


def _interchannel_lag(stereo: np.ndarray, max_lag: int = 10) -> int:
    """Lag (samples) maximising the cross-correlation; > 0 when channel 0 (left) leads."""
    n = stereo.shape[1]
    spec = np.fft.rfft(stereo[1], 2 * n) * np.conj(np.fft.rfft(stereo[0], 2 * n))
    corr = np.fft.irfft(spec)
    lags = np.r_[np.arange(n), np.arange(-n, 0)]
    keep = np.abs(lags) <= max_lag
    return int(lags[keep][np.argmax(corr[keep])])


def test_examples_are_small_stereo_and_come_from_their_directions():
    index = _examples_index()
    files = [EXAMPLES / e["file"] for e in index]
    assert len(files) >= 2 and sum(f.stat().st_size for f in files) < 200_000
    for entry, path in zip(index, files):
        rate, pcm = scipy.io.wavfile.read(path)
        stereo = pcm.T.astype(np.float64)
        assert rate == entry["sample_rate"] == 16000 and stereo.shape[0] == 2 and pcm.dtype == np.int16
        assert entry["direction"] == DEFAULT_PHRASES.phrases[doa_class(entry["azimuth_deg"])]
        # Channel 0 is the left microphone (0.15 m pair, c = 340 m/s): the lag follows the azimuth.
        expected = 0.15 / 340.0 * rate * np.sin(np.radians(entry["azimuth_deg"]))
        assert abs(_interchannel_lag(stereo) - expected) <= 1.0


def test_make_examples_regenerates_the_committed_clips(tmp_path):
    paths = _load(DEMOS / "make_examples.py").make_examples(tmp_path)
    assert json.loads((tmp_path / "examples.json").read_text()) == _examples_index()
    for path in paths:
        fresh, committed = scipy.io.wavfile.read(path)[1], scipy.io.wavfile.read(EXAMPLES / path.name)[1]
        assert fresh.shape == committed.shape
        assert np.abs(fresh.astype(int) - committed.astype(int)).max() <= 2  # ≤ 2 LSB of 16-bit PCM


def test_analyse_clip_gives_directions_plot_and_ranked_labels(tiny_checkpoint):
    classifier = load_classifier(tiny_checkpoint, device="cpu")
    entry = _examples_index()[0]
    path = str(EXAMPLES / entry["file"])
    result = where_demo.analyse_clip(classifier, path, entry["description"], entry["labels"])
    assert [d["direction"] for d in result.directions] == list(DEFAULT_PHRASES.phrases)
    assert sum(d["score"] for d in result.directions) == pytest.approx(1.0, abs=1e-6)
    assert result.directions == classifier(path, where=entry["description"])
    ranked = classifier(path, candidate_labels=where_demo.parse_labels(entry["labels"]))
    assert list(result.labels) == [s["label"] for s in ranked]
    assert sorted(result.labels) == sorted(where_demo.parse_labels(entry["labels"]))
    best = max(result.directions, key=lambda d: d["score"])
    assert best["direction"] in result.summary and entry["description"] in result.summary
    assert result.figure.axes and result.figure.axes[0].name == "polar"
    assert where_demo.analyse_clip(classifier, path, "a bell").labels == {}
    with pytest.raises(ValueError, match="No audio"):
        where_demo.analyse_clip(classifier, None, "a bell")
    with pytest.raises(ValueError, match="description is empty"):
        where_demo.analyse_clip(classifier, path, "  ")
    assert where_demo.parse_labels(" a dog, rain;\n a car ,, ") == ["a dog", "rain", "a car"]


def test_polar_figure_puts_front_on_top_and_left_on_the_left():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    directions = [
        {"direction": p, "azimuth_deg": az, "score": s}
        for p, az, s in zip(DEFAULT_PHRASES.phrases, [72.0, 36.0, 0.0, -36.0, -72.0], [0.9, 0.04, 0.03, 0.02, 0.01])
    ]
    fig = where_demo.direction_polar_figure(directions, title="Where is it?")
    ax = fig.axes[0]
    assert ax.get_theta_offset() == pytest.approx(np.pi / 2)  # 0° (front) at the top
    assert ax.get_theta_direction() == 1  # counter-clockwise: +90° (left) on the left
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    bar = np.all(np.abs(image - BAR_RGB) < 30, axis=-1)
    ys, xs = np.nonzero(bar)
    assert bar.sum() > 500
    assert xs.mean() < image.shape[1] / 2 - 20  # the dominant "left side" bar is drawn left of centre


def _default_model() -> str:
    """``DEFAULT_MODEL`` of demos/app.py, read without running the app."""
    for node in ast.parse((DEMOS / "app.py").read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(getattr(t, "id", None) == "DEFAULT_MODEL" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("demos/app.py defines no DEFAULT_MODEL")


def test_space_front_matter_and_requirements():
    text = (DEMOS / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and (DEMOS / meta["app_file"]).is_file()
    assert str(meta["sdk_version"]).count(".") == 2 and meta["license"] == "apache-2.0"
    default = _default_model()
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", default) and meta["models"] == [default]
    assert "ffmpeg" in (DEMOS / "packages.txt").read_text().split()
    # Published packages only: names with version specifiers, no local paths, URLs or this package.
    lines = [line.split("#")[0].strip() for line in (DEMOS / "requirements.txt").read_text().splitlines()]
    requirements = [line for line in lines if line]
    names = [re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower() for line in requirements]
    assert sorted(names) == ["matplotlib", "numpy", "torch", "transformers"]
    assert not any(("@" in line or "/" in line or line.startswith("-")) for line in requirements)
    # What the app and its analysis import is the Space's SDK (gradio) plus those requirements.
    imported = set()
    for name in ("app.py", "spatial_where.py"):
        for node in ast.walk(ast.parse((DEMOS / name).read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names} - {"spatial_where", "__future__"}
    assert third_party <= set(names) | {"gradio"}, third_party


# ----------------------------------------------------------------------------------- browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


class WebDriver:
    """Minimal W3C WebDriver client (chromedriver over HTTP, standard library only)."""

    ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1400"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {"args": args}}}}
        self.session = f"/session/{self._call('POST', '/session', caps)['sessionId']}"

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"WebDriver {method} {path}: {err.read().decode()[:500]}") from err

    def get(self, url: str) -> None:
        self._call("POST", self.session + "/url", {"url": url})

    def js(self, script: str, *args):
        return self._call("POST", self.session + "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self._call("POST", self.session + "/element", {"using": "css selector", "value": css})[self.ELEMENT]

    def click(self, css: str) -> None:
        self._call("POST", self.session + f"/element/{self.find(css)}/click", {})

    def screenshot(self, css: str | None = None) -> np.ndarray:
        """RGB screenshot (height, width, 3) uint8 of the page or of one element."""
        import matplotlib.image

        path = "/screenshot" if css is None else f"/element/{self.find(css)}/screenshot"
        png = base64.b64decode(self._call("GET", self.session + path))
        return (matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.uint8)

    def wait_for(self, script: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"Timed out waiting for: {script}")

    def quit(self) -> None:
        self._call("DELETE", self.session)


def _colour_pixels(image: np.ndarray, rgb: np.ndarray, tol: int = 30) -> int:
    return int(np.all(np.abs(image.astype(int) - rgb) < tol, axis=-1).sum())


@pytest.fixture
def demo_server(tiny_checkpoint, tmp_path):
    pytest.importorskip("gradio")
    port = _free_port()
    env = {
        **os.environ,
        "SPATIAL_CLAP_MODEL": str(tiny_checkpoint),
        "SPATIAL_CLAP_DEVICE": "cpu",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    env.pop("PYTHONPATH", None)
    # As on a Space: the package and the training extras cannot be imported (matplotlib, for the plot, and
    # gradio can); the app must run on the checkpoint's own code.
    launcher = (
        f"import runpy, sys; sys.path[:0] = [{str(ROOT / 'scripts')!r}, {str(DEMOS)!r}]; "
        "from check_remote_code import BLOCKED, block_packages; "
        "block_packages([n for n in BLOCKED if n != 'matplotlib']); "
        f"runpy.run_path({str(DEMOS / 'app.py')!r}, run_name='__main__')"
    )
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen([sys.executable, "-c", launcher], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", 180, process)
        yield f"http://127.0.0.1:{port}/"
    except (RuntimeError, TimeoutError) as err:
        log.flush()
        raise AssertionError(f"demo did not start: {err}\n{(tmp_path / 'app.log').read_text()[-3000:]}") from err
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    port = _free_port()
    process = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(f"http://127.0.0.1:{port}/status", 30, process)
        client = WebDriver(port)
        try:
            yield client
        finally:
            client.quit()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_demo_runs_an_example_and_shows_the_polar_plot(demo_server, browser):
    browser.get(demo_server)
    browser.wait_for("return document.querySelector('#examples [data-testid=\"dataset-cell-0-1\"]') !== null")
    assert "Spatial CLAP" in browser.js("return document.title")
    blank = browser.screenshot()
    assert _colour_pixels(blank, BAR_RGB) < 50  # the plot's colour is absent before a run

    entry = _examples_index()[0]
    browser.click('#examples [data-testid="dataset-cell-0-1"]')
    size = browser.wait_for(
        "const i = document.querySelector('#direction-plot img');"
        "return i && i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : null;"
    )
    assert size[0] >= 400 and size[1] >= 250
    summary = browser.wait_for("const s = document.querySelector('#summary'); return s && s.innerText.trim();")
    assert entry["description"] in summary and "most likely" in summary
    assert any(phrase in summary for phrase in DEFAULT_PHRASES.phrases)
    assert browser.js("return document.querySelector('#description textarea').value") == entry["description"]
    top = browser.wait_for("const t = document.querySelector('#top-labels'); return t && t.innerText;")
    assert all(label in top for label in where_demo.parse_labels(entry["labels"]))

    browser.js("document.querySelector('#direction-plot').scrollIntoView()")
    plot = browser.screenshot("#direction-plot img")
    assert plot.shape[0] >= 250 and plot.shape[1] >= 400
    assert _colour_pixels(plot, BAR_RGB) > 200  # the direction bars are drawn
    assert _colour_pixels(browser.screenshot(), BAR_RGB) > 200
