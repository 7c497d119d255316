"""Model cards and the Hub upload, up to the network boundary (the local HTTP server of conftest's ``fake_hub``)."""

import json
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

from spatial_clap_hf import get_config
from spatial_clap_hf.hub import (
    CARD_TEMPLATE,
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
    from spatial_clap_hf.data.dataset_card import DATASET_CARD_TEMPLATE

    root = Path(__file__).resolve().parents[2] / "model_cards"
    assert CARD_TEMPLATE.read_text() == (root / "spatial_clap.md").read_text()
    assert DATASET_CARD_TEMPLATE.read_text() == (root / "dataset_card.md").read_text()


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
