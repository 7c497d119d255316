"""The demo: its example clips, the library logic behind it, and the Gradio app in headless Chromium.

The browser test needs gradio (the ``[demo]`` extra) and Debian's ``chromium`` +
``chromium-driver``; it is skipped when they are absent. Chromium is driven through
chromedriver's W3C WebDriver HTTP API with the standard library only.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
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

from spatial_clap_hf.inference import analyse_clip, load_classifier, parse_labels
from spatial_clap_hf.spatial.conventions import DEFAULT_PHRASES, doa_class

DEMOS = Path(__file__).resolve().parents[2] / "demos"
EXAMPLES = DEMOS / "examples"
BAR_RGB = np.array([0x1B, 0x9E, 0x77])  # DIRECTION_COLOR of inference.where


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
    spec = importlib.util.spec_from_file_location("make_examples", DEMOS / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.make_examples(tmp_path)
    assert json.loads((tmp_path / "examples.json").read_text()) == _examples_index()
    for path in paths:
        fresh, committed = scipy.io.wavfile.read(path)[1], scipy.io.wavfile.read(EXAMPLES / path.name)[1]
        assert fresh.shape == committed.shape
        assert np.abs(fresh.astype(int) - committed.astype(int)).max() <= 2  # ≤ 2 LSB of 16-bit PCM


def test_analyse_clip_gives_directions_plot_and_ranked_labels(tiny_checkpoint):
    classifier = load_classifier(tiny_checkpoint, device="cpu")
    entry = _examples_index()[0]
    result = analyse_clip(classifier, str(EXAMPLES / entry["file"]), entry["description"], entry["labels"])
    assert [d["direction"] for d in result.directions] == list(DEFAULT_PHRASES.phrases)
    assert sum(d["score"] for d in result.directions) == pytest.approx(1.0, abs=1e-6)
    ranked = classifier(str(EXAMPLES / entry["file"]), candidate_labels=parse_labels(entry["labels"]))
    assert list(result.labels) == [s["label"] for s in ranked]
    assert sorted(result.labels) == sorted(parse_labels(entry["labels"]))
    best = max(result.directions, key=lambda d: d["score"])
    assert best["direction"] in result.summary and entry["description"] in result.summary
    assert result.figure.axes and result.figure.axes[0].name == "polar"
    assert analyse_clip(classifier, str(EXAMPLES / entry["file"]), "a bell").labels == {}
    with pytest.raises(ValueError, match="No audio"):
        analyse_clip(classifier, None, "a bell")
    assert parse_labels(" a dog, rain;\n a car ,, ") == ["a dog", "rain", "a car"]


def test_space_front_matter():
    text = (DEMOS / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and (DEMOS / meta["app_file"]).is_file()
    assert str(meta["sdk_version"]).count(".") == 2 and meta["license"] == "apache-2.0"
    assert "ffmpeg" in (DEMOS / "packages.txt").read_text().split()


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
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(DEMOS / "app.py")], env=env, stdout=log, stderr=subprocess.STDOUT)
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
    assert all(label in top for label in parse_labels(entry["labels"]))

    browser.js("document.querySelector('#direction-plot').scrollIntoView()")
    plot = browser.screenshot("#direction-plot img")
    assert plot.shape[0] >= 250 and plot.shape[1] >= 400
    assert _colour_pixels(plot, BAR_RGB) > 200  # the direction bars are drawn
    assert _colour_pixels(browser.screenshot(), BAR_RGB) > 200
