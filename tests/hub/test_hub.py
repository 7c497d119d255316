"""Model cards and the Hub upload, up to the network boundary (the local HTTP server of conftest's ``fake_hub``)."""

import json

import pytest
from huggingface_hub import ModelCard

from spatial_clap_hf import get_config
from spatial_clap_hf.hub import push_to_hub, render_model_card, write_model_card

ROW = {"r1_a2t_sp_src": 0.41, "doa_accuracy": 0.93, "assignment_accuracy": 0.8, "doa_probe_mae_deg": 7.5}


def test_card_carries_conventions_and_model_index(tmp_path):
    config = get_config("tiny", scl=True)
    path = write_model_card(tmp_path, config, repo_id="someone/spatial-clap-tiny", eval_row=ROW)
    card = ModelCard.load(path)
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == pytest.approx(ROW)
    text = card.text
    assert "+90° = left" in text and "Channel 0 is the left microphone" in text
    assert "front from back" in text and "AutoModel.from_pretrained(\"someone/spatial-clap-tiny\")" in text
    assert "| DoA classification accuracy (5 classes) | 93.00 % |" in text
    assert "| Linear-probe DoA error (degrees) | 7.50 |" in text
    assert card.data.pipeline_tag == "zero-shot-audio-classification"


def test_card_without_results_has_no_model_index():
    card = render_model_card(get_config("tiny-mono"))
    assert not card.data.eval_results
    assert "mono baseline" in card.text and "## Evaluation" not in card.text


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
