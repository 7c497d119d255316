import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging as hf_logging

from conftest import TOY_CAPTIONS
from spatial_clap_hf import SpatialClapFeatureExtractor, SpatialClapProcessor, train_caption_tokenizer
from spatial_clap_hf.models.spatial_clap import feature_extraction_spatial_clap as fe_module


@pytest.fixture
def extractor():
    return SpatialClapFeatureExtractor(num_channels=2, sampling_rate=16000, max_length_s=1.0)


def _clip(samples: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, samples)).astype(np.float32)


def test_single_clip_list_batch_and_tensor_inputs(extractor):
    one = extractor(_clip(16000), sampling_rate=16000)
    assert one["input_values"].shape == (1, 2, 16000) and one["input_values"].dtype == torch.float32
    assert one["attention_mask"].shape == (1, 16000) and bool(one["attention_mask"].all())
    listed = extractor([_clip(8000), torch.from_numpy(_clip(20000, seed=1))], sampling_rate=16000)
    assert listed["input_values"].shape == (2, 2, 16000)
    batch = extractor(np.stack([_clip(16000), _clip(16000, seed=2)]), sampling_rate=16000, return_tensors="np")
    assert isinstance(batch["input_values"], np.ndarray) and batch["input_values"].shape == (2, 2, 16000)


def test_repeatpad_repeat_pad_and_mask(extractor):
    clip = _clip(5000)
    out = extractor(clip, sampling_rate=16000)
    values, mask = out["input_values"][0].numpy(), out["attention_mask"][0].numpy()
    np.testing.assert_array_equal(values[:, :15000], np.tile(clip, (1, 3)))
    assert not values[:, 15000:].any()
    assert mask[:5000].all() and not mask[5000:].any()
    repeated = extractor(clip, sampling_rate=16000, padding="repeat")["input_values"][0].numpy()
    np.testing.assert_array_equal(repeated, np.tile(clip, (1, 4))[:, :16000])
    padded = extractor(clip, sampling_rate=16000, padding="pad")["input_values"][0].numpy()
    np.testing.assert_array_equal(padded[:, :5000], clip)
    assert not padded[:, 5000:].any()


def test_truncation_start_and_seeded_random(extractor):
    clip = _clip(40000)
    start = extractor(clip, sampling_rate=16000)["input_values"][0].numpy()
    np.testing.assert_array_equal(start, clip[:, :16000])
    crops = [
        SpatialClapFeatureExtractor(max_length_s=1.0, truncation="random", seed=7)(clip, sampling_rate=16000)["input_values"]
        for _ in range(2)
    ]
    assert torch.equal(crops[0], crops[1])
    offset = int(np.flatnonzero(np.isclose(clip[0], crops[0][0, 0, 0].item()))[0])
    np.testing.assert_array_equal(crops[0][0].numpy(), clip[:, offset : offset + 16000])


def test_cutting_a_longer_clip_is_logged(extractor):
    logger = hf_logging.get_logger(fe_module.__name__)
    type(logger).warning_once.cache_clear()
    with CaptureLogger(logger) as captured:
        extractor(_clip(16000), sampling_rate=16000)  # exactly max_length_s: nothing cut
    assert "is cut" not in captured.out
    with CaptureLogger(logger) as captured:
        extractor(_clip(20000), sampling_rate=16000)
    assert "Audio of 1.25 s is longer than this model's max_length_s=1.0 s; it is cut to 1.0 s" in captured.out


def test_resampling_is_logged_and_changes_length(extractor):
    logger = hf_logging.get_logger(fe_module.__name__)
    type(logger).warning_once.cache_clear()  # the message is logged once per process and rate
    with CaptureLogger(logger) as captured:
        out = extractor(_clip(11025), sampling_rate=22050)  # 0.5 s at 22.05 kHz
    assert "Resampling audio from 22050 Hz to the model's 16000 Hz" in captured.out
    assert int(out["attention_mask"][0].sum()) == 8000


def test_a_silent_clip_is_logged(extractor):
    logger = hf_logging.get_logger(fe_module.__name__)
    with CaptureLogger(logger) as captured:
        extractor([_clip(16000), np.zeros((2, 16000), dtype=np.float32)], sampling_rate=16000)
    assert "Clip 1 is silent (every sample is 0)" in captured.out
    assert "Clip 0" not in captured.out


@pytest.mark.parametrize(
    "audio, kwargs, error, match",
    [
        (_clip(16000), {}, ValueError, "needs sampling_rate: this model expects 16000 Hz"),
        (np.zeros(16000, dtype=np.float32), {"sampling_rate": 16000}, ValueError, "1-D array \\(mono\\).*pass \\(channels, samples\\)"),
        (_clip(16000, channels=1), {"sampling_rate": 16000}, ValueError, "has 1 channel\\(s\\) but the model expects 2"),
        (_clip(16000).T.copy(), {"sampling_rate": 16000}, ValueError, "transpose it"),
        (np.full((2, 100), np.nan, dtype=np.float32), {"sampling_rate": 16000}, ValueError, "NaN or Inf"),
        (np.array([[0.0, np.inf], [0.0, 0.0]], dtype=np.float32), {"sampling_rate": 16000}, ValueError, "NaN or Inf"),
        (np.zeros((2, 0), dtype=np.float32), {"sampling_rate": 16000}, ValueError, "empty"),
        ("not audio", {"sampling_rate": 16000}, TypeError, "audio must be"),
    ],
)
def test_bad_audio_raises_clear_errors(extractor, audio, kwargs, error, match):
    with pytest.raises(error, match=match):
        extractor(audio, **kwargs)


def test_feature_extractor_from_model_config():
    from spatial_clap_hf import get_config

    fe = SpatialClapFeatureExtractor.from_model_config(get_config("tiny"))
    assert (fe.num_channels, fe.sampling_rate, fe.max_length_samples) == (2, 16000, 64000)
    mono = SpatialClapFeatureExtractor.from_model_config(get_config("tiny-mono"), num_channels=1)
    assert mono.num_channels == 1


def test_feature_extractor_save_load(extractor, tmp_path):
    extractor.save_pretrained(tmp_path)
    loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert isinstance(loaded, SpatialClapFeatureExtractor)
    assert loaded.to_dict() == extractor.to_dict()


def test_processor_call_text_and_audio(tiny_processor):
    out = tiny_processor(text=TOY_CAPTIONS[:2], audio=[_clip(16000), _clip(8000)], sampling_rate=16000)
    assert set(out) == {"input_ids", "attention_mask", "input_values", "audio_attention_mask"}
    assert out["input_values"].shape == (2, 2, 64000)
    assert out["audio_attention_mask"].shape == (2, 64000)
    assert out["input_ids"].shape[0] == 2 and int(out["input_ids"][0, 0]) == 0  # <s>
    assert set(tiny_processor(text="A dog barks.")) == {"input_ids", "attention_mask"}
    assert set(tiny_processor(audio=_clip(100), sampling_rate=16000)) == {"input_values", "audio_attention_mask"}


@pytest.mark.parametrize("text, match", [([""], "Caption 0 is empty"), (["ok", "   \t"], "Caption 1 is empty"), ([], "empty list")])
def test_processor_rejects_empty_captions(tiny_processor, text, match):
    with pytest.raises(ValueError, match=match):
        tiny_processor(text=text)


def test_processor_needs_some_input(tiny_processor):
    with pytest.raises(ValueError, match="needs text, audio or both"):
        tiny_processor()


def test_processor_save_load_roundtrip(tiny_processor, tmp_path):
    tiny_processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SpatialClapProcessor)
    a = tiny_processor(text=TOY_CAPTIONS[:3], audio=_clip(30000), sampling_rate=16000)
    b = loaded(text=TOY_CAPTIONS[:3], audio=_clip(30000), sampling_rate=16000)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_caption_tokenizer_roundtrip_and_special_ids(caption_tokenizer, tmp_path):
    tok = caption_tokenizer
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    ids = tok("A dog is barking.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2
    assert tok.decode(ids, skip_special_tokens=True) == "A dog is barking."
    assert len(tok("word " * 200, truncation=True)["input_ids"]) == 64
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(TOY_CAPTIONS)["input_ids"] == tok(TOY_CAPTIONS)["input_ids"]
    assert len(loaded) == len(tok) <= 400


def test_caption_tokenizer_is_deterministic_and_validates():
    a = train_caption_tokenizer(TOY_CAPTIONS, vocab_size=300)
    b = train_caption_tokenizer(TOY_CAPTIONS, vocab_size=300)
    assert a.get_vocab() == b.get_vocab()
    with pytest.raises(ValueError, match="at least one non-empty caption"):
        train_caption_tokenizer(["  "])
    with pytest.raises(ValueError, match="vocab_size=100"):
        train_caption_tokenizer(TOY_CAPTIONS, vocab_size=100)
