"""Model cards and the Hub upload, up to the network boundary (a local HTTP server)."""

import json
from pathlib import Path
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jinja2
import jinja2.meta
import pytest
import yaml
from huggingface_hub import DatasetCard, DatasetCardData, ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from spatial_clap_hf import get_config
from spatial_clap_hf.hub import (
    CARD_TEMPLATE,
    DATASET_CARD_TEMPLATE,
    hub_ids,
    push_to_hub,
    render_model_card,
    write_model_card,
)
from spatial_clap_hf.models.spatial_clap.configuration_spatial_clap import PIPELINE_TASK

ROW = {"r1_a2t_sp_src": 0.41, "doa_accuracy": 0.93, "assignment_accuracy": 0.8, "doa_probe_mae_deg": 7.5}


def test_card_carries_conventions_metadata_and_model_index(tmp_path):
    config = get_config("tiny", scl=True)
    path = write_model_card(
        tmp_path,
        config,
        repo_id="someone/spatial-clap-tiny",
        eval_row=ROW,
        base_model=["laion/larger_clap_music_and_speech", "FacebookAI/roberta-base"],
        datasets=["someone/spatialized-audiocaps"],
    )
    card = ModelCard.load(path)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == PIPELINE_TASK
    assert data.license == "apache-2.0" and data.language == ["en"]
    assert data.base_model == ["laion/larger_clap_music_and_speech", "FacebookAI/roberta-base"]
    assert data.datasets == ["someone/spatialized-audiocaps"]
    assert {"audio", "spatial-audio", "spatial_clap_hf"} <= set(data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == pytest.approx(ROW)
    assert {r.task_type for r in data.eval_results} == {PIPELINE_TASK}
    # The front matter is plain YAML whose model-index huggingface_hub reads back into the same results.
    meta = yaml.safe_load(path.read_text().split("---\n")[1])
    name, parsed = model_index_to_eval_results(meta["model-index"])
    assert name == "spatial-clap-tiny" and eval_results_to_model_index(name, parsed) == meta["model-index"]
    text = card.text
    assert "+90° = left" in text and "Channel 0 is the left microphone" in text and "front from back" in text
    assert f'pipeline("{PIPELINE_TASK}", model="someone/spatial-clap-tiny", trust_remote_code=True)' in text
    assert 'AutoModel.from_pretrained("someone/spatial-clap-tiny", trust_remote_code=True)' in text
    assert "| DoA classification accuracy (5 classes) | 93.00 % |" in text
    assert "| Linear-probe DoA error (degrees) | 7.50 |" in text
    assert "{{" not in path.read_text()


def test_card_without_results_or_sources_has_no_model_index():
    card = render_model_card(get_config("tiny-mono"))
    assert not card.data.eval_results and card.data.base_model is None and card.data.datasets is None
    assert "mono baseline" in card.text and "## Evaluation" not in card.text


def test_hub_ids_keep_repository_ids_and_drop_local_paths(tmp_path, monkeypatch):
    (tmp_path / "runs" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    references = ["FacebookAI/roberta-base", None, "runs/model", str(tmp_path / "runs"), "runs/x/model", "name", "a/b", "a/b"]
    assert hub_ids(references) == ["FacebookAI/roberta-base", "a/b"]


def test_card_templates_are_the_top_level_model_cards_folder():
    root = Path(__file__).resolve().parents[2] / "model_cards"
    assert CARD_TEMPLATE.read_text() == (root / "spatial_clap.md").read_text()
    assert DATASET_CARD_TEMPLATE.read_text() == (root / "dataset_card.md").read_text()


#: Every placeholder of model_cards/dataset_card.md, with an example value.
DATASET_CARD_VALUES = {
    "pretty_name": "Spatialized AudioCaps",
    "repo_id": "someone/spatialized-audiocaps",
    "package_version": "spatial_clap_hf 0.1.0",
    "source_corpus": "AudioCaps",
    "source_url": "https://audiocaps.github.io",
    "source_license": "the MIT licence (captions)",
    "source_license_note": "The audio comes from YouTube videos of AudioSet; its rights stay with their owners.",
    "source_citation": "@inproceedings{kim2019audiocaps, title = {AudioCaps}, year = {2019}}",
    "license": "CC BY 4.0",
    "sample_rate": 16000,
    "num_channels": 2,
    "room_x_range": "7.0–10.5",
    "room_y_range": "6.0–8.5",
    "room_z_range": "2.5–4.5",
    "absorption_values": "0.4, 0.5, 0.6",
    "num_grid_rooms": 720,
    "speed_of_sound": 340.0,
    "rt60_min_s": 0.21,
    "rt60_max_s": 0.47,
    "source_distance_m": 2.0,
    "azimuth_step_deg": 5,
    "room_seed": 0,
    "splits_table": "| split | rooms | clips |\n|---|---|---|\n| train | 360 | 49838 |",
    "scene_description": "Scenes: single sources and two-source mixtures.",
    "features_table": "| column | type |\n|---|---|\n| audio | Audio(num_channels=2) |",
}


def test_dataset_card_template_renders_every_placeholder():
    template = DATASET_CARD_TEMPLATE.read_text()
    names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template))
    assert names == set(DATASET_CARD_VALUES) | {"card_data"}
    card_data = DatasetCardData(
        license="cc-by-4.0",
        language=["en"],
        pretty_name="Spatialized AudioCaps",
        task_categories=["audio-classification"],
        tags=["audio", "spatial-audio"],
    )
    card = DatasetCard.from_template(card_data, template_path=str(DATASET_CARD_TEMPLATE), **DATASET_CARD_VALUES)
    text = str(card)
    assert "{{" not in text and card.data.license == "cc-by-4.0" and card.data.pretty_name == "Spatialized AudioCaps"
    assert 'load_dataset("someone/spatialized-audiocaps", split="train", streaming=True)' in text
    for fact in ("counter-clockwise", "channel 0 is the", "0.15 m", "asin(sin θ)", "on the right side", "seki2025"):
        assert fact in text


class _FakeHub(BaseHTTPRequestHandler):
    requests: list = []

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), body))

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        self._record()
        if self.path == "/api/repos/create":
            port = self.server.server_address[1]
            self._reply(200, {"url": f"http://127.0.0.1:{port}/someone/my-model", "name": "someone/my-model"})
        else:
            self._reply(403, {"error": "uploads are refused by this test server"})

    do_GET = do_PUT = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    _FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _FakeHub.requests
    server.shutdown()


def test_push_creates_the_repo_with_the_token_then_uploads_to_it(tmp_path, fake_hub):
    endpoint, requests = fake_hub
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"0" * 16)
    with pytest.raises(Exception, match="403|refused"):
        push_to_hub(tmp_path, "someone/my-model", token="hf_test_token", endpoint=endpoint)
    method, path, auth, body = requests[0]
    assert (method, path, auth) == ("POST", "/api/repos/create", "Bearer hf_test_token")
    payload = json.loads(body)
    assert payload["name"] == "my-model" and payload["organization"] == "someone"
    assert not payload.get("private")
    # The next call is the upload of the folder into that repository.
    assert any("/api/models/someone/my-model/" in p for _, p, _, _ in requests[1:])


def test_push_rejects_bad_input_before_the_network(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved model directory"):
        push_to_hub(tmp_path, "someone/x", endpoint="http://127.0.0.1:9")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(tmp_path, "no-namespace", endpoint="http://127.0.0.1:9")
