"""The model classes against transformers' own model conventions, tested the way transformers tests its
models: a ModelTester per class builds a tiny config and inputs, and the common tests run on all three
(SpatialClapModel, SeldNetModel, SeldNetForSoundEventLocalization)."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable

import pytest
import torch
from accelerate import infer_auto_device_map
from accelerate.utils import compute_module_sizes
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoModelForAudioFrameClassification
from transformers.utils import ModelOutput

from conftest import TOY_CAPTIONS, make_stereo
from spatial_clap_hf import SeldNetConfig, SeldNetForSoundEventLocalization, SeldNetModel, SpatialClapModel, get_config

BATCH = 3
SAMPLES = 16000  # 1 s clips at 16 kHz
LOGITS_MATRICES = ("logits_per_audio", "logits_per_text")  # (audio batch, text batch): compared on the diagonal


def _audio() -> tuple[torch.Tensor, torch.Tensor]:
    """Three stereo clips from three directions, the second padded after 9000 samples."""
    audio = make_stereo(BATCH, 1.0, delays=[3, 0, -3], seed=1)
    mask = torch.ones(BATCH, SAMPLES, dtype=torch.long)
    mask[1, 9000:] = 0
    return audio, mask


def _seld_config() -> SeldNetConfig:
    # Dropout on, so that gradient checkpointing must replay the dropout masks.
    return SeldNetConfig(
        num_classes=4,
        input_features="mag_ipd",
        max_frequency_bins=256,
        conv_filters=[8, 8, 8],
        frequency_pool_sizes=[8, 8, 2],
        gru_hidden_size=16,
        head_hidden_size=16,
        dropout=0.1,
    )


def _seld_hidden_shapes(config: SeldNetConfig) -> list[tuple[int, ...]]:
    frames = SAMPLES // config.hop_length + 1
    shapes = [(BATCH, config.num_input_planes, frames, config.num_frequency_bins)]
    bins = config.num_frequency_bins
    for filters, pool in zip(config.conv_filters, config.frequency_pool_sizes):
        bins //= pool
        shapes.append((BATCH, filters, frames, bins))
    return shapes + [(BATCH, frames, config.output_size)]


def _linear_init(std: float) -> Callable[[str, torch.Tensor], bool]:
    """What `_init_weights` gives a Linear / Conv2d parameter: weights N(0, std), biases 0."""

    def check(name: str, tensor: torch.Tensor) -> bool:
        if name.endswith("bias"):
            return bool((tensor == 0).all())
        return abs(tensor.float().std().item() - std) < 0.25 * std and abs(tensor.float().mean().item()) < 0.25 * std

    return check


class SpatialClapModelTester:
    model_class = SpatialClapModel
    auto_class = AutoModel
    devices_in_split_map = 2

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def get_config(self):
        return get_config("tiny")

    def prepare_inputs(self) -> dict[str, torch.Tensor]:
        text = self.tokenizer(TOY_CAPTIONS[:BATCH], padding=True, return_tensors="pt")
        audio, mask = _audio()
        return {
            "input_ids": text.input_ids,
            "attention_mask": text.attention_mask,
            "input_values": audio,
            "audio_attention_mask": mask,
        }

    def prepare_training_inputs(self) -> dict[str, Any]:
        return {**self.prepare_inputs(), "return_loss": True}

    @staticmethod
    def training_loss(output) -> torch.Tensor:
        return output.loss

    @staticmethod
    def hidden_shapes(config, inputs) -> dict[str, list[tuple[int, ...]]]:
        """Expected shapes of every hidden-state tuple, by attribute path in the output."""
        source = config.source_config
        grid, levels = source.spec_size // source.patch_stride[0], len(source.depths)
        width = source.patch_embeds_hidden_size
        audio = [(BATCH, width, grid, grid)]
        for stage in range(levels):
            level = min(stage + 1, levels - 1)  # every stage but the last halves the grid and doubles the width
            audio.append((BATCH, width * 2**level, grid // 2**level, grid // 2**level))
        tokens = inputs["input_ids"].shape[1]
        text = [(BATCH, tokens, config.text_config.hidden_size)] * (config.text_config.num_hidden_layers + 1)
        return {
            "audio_model_output.hidden_states": audio,
            "audio_model_output.spatial_hidden_states": _seld_hidden_shapes(config.spatial_config),
            "text_model_output.hidden_states": text,
        }

    @staticmethod
    def attention_shapes(config, inputs) -> dict[str, list[tuple[int, ...]]]:
        source, text = config.source_config, config.text_config
        grid = source.spec_size // source.patch_stride[0]
        audio = []
        for stage, (depth, heads) in enumerate(zip(source.depths, source.num_attention_heads)):
            resolution = grid // 2**stage
            window = min(source.window_size, resolution)
            audio += [(BATCH * (resolution // window) ** 2, heads, window**2, window**2)] * depth
        tokens = inputs["input_ids"].shape[1]
        return {
            "audio_model_output.attentions": audio,
            "text_model_output.attentions": [(BATCH, text.num_attention_heads, tokens, tokens)]
            * text.num_hidden_layers,
        }

    @staticmethod
    def checkpointed_modules(model) -> dict[str, torch.nn.Module]:
        """Modules that run again in the backward pass under gradient checkpointing, one per tower."""
        return {
            "HTS-AT attention": model.source_model.audio_encoder.layers[0].blocks[0].attention,
            "SELDnet conv": model.spatial_model.conv_blocks[0].conv,
            "SELDnet GRU": model.spatial_model.gru,
            "text attention": model.text_model.encoder.layer[0].attention,
        }

    @staticmethod
    def batch_norms(model) -> list[torch.nn.BatchNorm2d]:
        return [block.norm for block in model.spatial_model.conv_blocks]

    def dropped_weights(self, model) -> dict[str, Callable[[str, torch.Tensor], bool]]:
        """Weights to leave out of a checkpoint, and what each must be initialised to on loading."""
        text = model.config.text_config
        pad = text.pad_token_id

        def embeddings(name, tensor):
            rows = torch.cat([tensor[:pad], tensor[pad + 1 :]])
            return bool((tensor[pad] == 0).all()) and abs(rows.std().item() - text.initializer_range) < 0.005

        return {
            "fusion.linear1.weight": _linear_init(model.config.initializer_range),
            "fusion.linear1.bias": _linear_init(model.config.initializer_range),
            "logit_scale": lambda name, t: math.isclose(t.item(), math.log(model.config.logit_scale_init_value)),
            "spatial_model.conv_blocks.0.norm.running_var": lambda name, t: bool((t == 1).all()),
            "text_model.embeddings.word_embeddings.weight": embeddings,
        }


class SeldNetModelTester:
    model_class = SeldNetModel
    auto_class = AutoModel
    devices_in_split_map = 1

    def __init__(self, tokenizer=None):
        pass

    def get_config(self):
        return _seld_config()

    def prepare_inputs(self) -> dict[str, torch.Tensor]:
        audio, mask = _audio()
        return {"input_values": audio, "attention_mask": mask}

    def prepare_training_inputs(self) -> dict[str, Any]:
        return self.prepare_inputs()

    @staticmethod
    def training_loss(output) -> torch.Tensor:
        # The encoder has no loss of its own; any scalar of its outputs exercises the backward pass.
        return output.pooler_output.square().mean() + output.last_hidden_state.mean()

    @staticmethod
    def hidden_shapes(config, inputs) -> dict[str, list[tuple[int, ...]]]:
        return {"hidden_states": _seld_hidden_shapes(config)}

    attention_shapes = None  # no attention

    @staticmethod
    def checkpointed_modules(model) -> dict[str, torch.nn.Module]:
        encoder = getattr(model, "seldnet", model)
        modules = {f"conv {i}": block.conv for i, block in enumerate(encoder.conv_blocks)}
        return {**modules, "GRU": encoder.gru}

    @staticmethod
    def batch_norms(model) -> list[torch.nn.BatchNorm2d]:
        return [block.norm for block in getattr(model, "seldnet", model).conv_blocks]

    def dropped_weights(self, model) -> dict[str, Callable[[str, torch.Tensor], bool]]:
        bound = 1.0 / math.sqrt(model.config.gru_hidden_size)

        def gru_init(name, tensor):  # PyTorch's GRU init, U(-1/sqrt(hidden), 1/sqrt(hidden))
            return tensor.abs().max().item() <= bound and abs(tensor.std().item() - bound / math.sqrt(3)) < 0.2 * bound

        return {
            "conv_blocks.1.conv.weight": _linear_init(model.config.initializer_range),
            "conv_blocks.1.norm.running_mean": lambda name, t: bool((t == 0).all()),
            "gru.weight_ih_l0": gru_init,
        }


class SeldNetForSoundEventLocalizationTester(SeldNetModelTester):
    model_class = SeldNetForSoundEventLocalization
    auto_class = AutoModelForAudioFrameClassification

    def prepare_training_inputs(self) -> dict[str, Any]:
        return {
            **self.prepare_inputs(),
            "sed_labels": torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 1.0], [0, 0, 1.0, 0]]),
            "doa_labels": torch.tensor([[60.0, 0, 0, 0], [0, 0.0, 0, -30.0], [0, 0, -60.0, 0]]),
        }

    @staticmethod
    def training_loss(output) -> torch.Tensor:
        return output.loss

    def dropped_weights(self, model) -> dict[str, Callable[[str, torch.Tensor], bool]]:
        # The heads, as when the classifier is loaded from a bare encoder checkpoint.
        init = _linear_init(model.config.initializer_range)
        return {name: init for name, _ in model.named_parameters() if "_head." in name}


TESTERS = [SpatialClapModelTester, SeldNetModelTester, SeldNetForSoundEventLocalizationTester]


@pytest.fixture(params=TESTERS, ids=lambda tester: tester.model_class.__name__)
def tester(request, caption_tokenizer):
    return request.param(caption_tokenizer)


def _model(tester, seed: int = 0):
    torch.manual_seed(seed)
    return tester.model_class(tester.get_config())


def _attribute(output, path: str):
    for name in path.split("."):
        output = getattr(output, name)
    return output


def _flatten(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a (nested) model output or tuple, by path."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if isinstance(value, ModelOutput):
        items = value.items()
    elif isinstance(value, (tuple, list)):
        items = enumerate(value)
    else:
        return {}
    tensors = {}
    for key, item in items:
        tensors.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return tensors


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """As transformers' output comparisons: by subtraction (which a bool tensor does not support)."""
    return (a - b).abs().max().item() if a.numel() else 0.0


# ------------------------------------------------------------------------------------------ common tests
def test_save_and_load_give_the_same_model(tester, tmp_path):
    model = _model(tester).eval()
    model.save_pretrained(tmp_path)
    reloaded = tester.auto_class.from_pretrained(tmp_path).eval()
    assert type(reloaded) is tester.model_class
    state, reloaded_state = model.state_dict(), reloaded.state_dict()
    assert state.keys() == reloaded_state.keys()
    assert all(torch.equal(state[k], reloaded_state[k]) for k in state)
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        before, after = _flatten(model(**inputs)), _flatten(reloaded(**inputs))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_same_seed_same_model_and_repeated_forward_passes_are_identical(tester):
    first, second = _model(tester, seed=3).eval(), _model(tester, seed=3).eval()
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    other = _model(tester, seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values()))
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        runs = [_flatten(first(**inputs, output_hidden_states=True)) for _ in range(2)]
    assert runs[0].keys() == runs[1].keys() and all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_a_batch_equals_its_clips_one_by_one(tester):
    model = _model(tester).eval()
    inputs = tester.prepare_inputs()
    flags = {"output_hidden_states": True}
    if tester.attention_shapes is not None:
        flags["output_attentions"] = True
        model.set_attn_implementation("eager")  # attention weights come from the eager path
    with torch.no_grad():
        batched = _flatten(model(**inputs, **flags))
        singles = [_flatten(model(**{k: v[i : i + 1] for k, v in inputs.items()}, **flags)) for i in range(BATCH)]
    assert len(batched) > 5
    for path, tensor in batched.items():
        for i, single in enumerate(singles):
            if path.split(".")[-1] in LOGITS_MATRICES:
                got, expected = tensor[i, i], single[path][0, 0]
            else:  # batch-major rows; HTS-AT's attentions hold batch * windows rows
                got, expected = tensor.reshape(BATCH, -1)[i], single[path].reshape(-1)
            assert _max_difference(got, expected) < 1e-5, (path, i)


def test_tuple_and_dict_outputs_agree_and_hold_no_bool_tensors(tester):
    model = _model(tester).eval()
    inputs = tester.prepare_training_inputs()
    with torch.no_grad():
        as_dict = model(**inputs, output_hidden_states=True, return_dict=True)
        as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(as_dict, ModelOutput) and isinstance(as_tuple, tuple)
    from_dict, from_tuple = _flatten(as_dict), _flatten(as_tuple)
    assert len(from_dict) == len(from_tuple) > 5
    assert not [path for path, t in from_dict.items() if t.dtype == torch.bool]
    for a, b in zip(from_dict.values(), from_tuple.values()):
        assert a.shape == b.shape and _max_difference(a, b) == 0.0


def test_hidden_states_have_the_towers_shapes_and_change_nothing_else(tester):
    model = _model(tester).eval()
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        plain = model(**inputs)
        full = model(**inputs, output_hidden_states=True)
    for path, shapes in tester.hidden_shapes(model.config, inputs).items():
        assert _attribute(plain, path) is None, path
        assert [tuple(h.shape) for h in _attribute(full, path)] == shapes, path
    full_tensors = _flatten(full)
    assert all(torch.equal(tensor, full_tensors[path]) for path, tensor in _flatten(plain).items())
    # The SELDnet's last hidden state is its output frames.
    seldnet = full.audio_model_output.spatial_model_output if isinstance(model, SpatialClapModel) else full
    assert torch.equal(seldnet.hidden_states[-1], seldnet.last_hidden_state)


def test_attentions_reach_the_towers_that_have_attention(tester, tmp_path):
    if tester.attention_shapes is None:
        pytest.skip("the SELDnet has no attention")
    model = _model(tester).eval()
    model.save_pretrained(tmp_path)
    eager = tester.auto_class.from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        plain = eager(**inputs)
        out = eager(**inputs, output_attentions=True)
    for path, shapes in tester.attention_shapes(model.config, inputs).items():
        assert _attribute(plain, path) is None, path
        attentions = _attribute(out, path)
        assert [tuple(a.shape) for a in attentions] == shapes, path
        # Softmax rows over the keys.
        torch.testing.assert_close(attentions[0].sum(-1), torch.ones(attentions[0].shape[:-1]), atol=1e-5, rtol=0)


def test_unknown_keyword_arguments_raise_naming_them(tester):
    model = _model(tester).eval()
    with pytest.raises(TypeError, match="output_everything"):
        model(**tester.prepare_inputs(), output_everything=True)


def test_a_training_step_reaches_every_parameter(tester):
    model = _model(tester).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)  # only gradients move weights
    inputs = tester.prepare_training_inputs()
    loss = tester.training_loss(model(**inputs))
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    without_grad = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not without_grad
    before = copy.deepcopy(model.state_dict())
    optimizer.step()
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert len(changed) == len(list(model.parameters()))


def _gradients(model, inputs, tester, checkpointing: dict | None):
    """Parameter gradients of one training step, and how often each checkpointed module ran; ``checkpointing``:
    None for a plain backward, else the keyword arguments of ``gradient_checkpointing_enable``."""
    if checkpointing is not None:
        with warnings.catch_warnings():
            # transformers 5.x calls it activation_checkpointing_enable and keeps this name as an alias
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable(**checkpointing)
    calls = dict.fromkeys(tester.checkpointed_modules(model), 0)
    for name, module in tester.checkpointed_modules(model).items():
        # A pre-hook: the recomputation stops as soon as it has rebuilt what the backward pass needs,
        # possibly inside the module's forward (the GRU's), before a forward hook would run.
        module.register_forward_pre_hook(lambda *args, name=name: calls.__setitem__(name, calls[name] + 1))
    torch.manual_seed(7)  # the same dropout masks in both runs
    tester.training_loss(model(**inputs)).backward()
    return {name: p.grad for name, p in model.named_parameters()}, calls


@pytest.mark.parametrize(
    "checkpointing", [{}, {"gradient_checkpointing_kwargs": {"use_reentrant": True}}], ids=["default", "reentrant"]
)
def test_gradient_checkpointing_recomputes_every_tower_and_gives_the_same_gradients(tester, checkpointing):
    model = _model(tester).train()
    plain, checkpointed = copy.deepcopy(model), copy.deepcopy(model)
    inputs = tester.prepare_training_inputs()
    expected, plain_calls = _gradients(plain, inputs, tester, checkpointing=None)
    got, checkpointed_calls = _gradients(checkpointed, inputs, tester, checkpointing=checkpointing)
    assert checkpointed.is_activation_checkpointing and not plain.is_activation_checkpointing
    assert set(plain_calls.values()) == {1}
    assert set(checkpointed_calls.values()) == {2}, checkpointed_calls  # forward, then again in the backward pass
    assert all(grad is not None for grad in expected.values())
    for name, grad in expected.items():
        assert got[name] is not None, name
        torch.testing.assert_close(got[name], grad, atol=1e-5, rtol=0, msg=name)
    # The recomputation normalises with the batch statistics without updating the running averages twice.
    for norm, reference in zip(tester.batch_norms(checkpointed), tester.batch_norms(plain)):
        assert torch.equal(norm.num_batches_tracked, reference.num_batches_tracked)
        torch.testing.assert_close(norm.running_mean, reference.running_mean, atol=1e-6, rtol=0)
        torch.testing.assert_close(norm.running_var, reference.running_var, atol=1e-6, rtol=1e-5)
    checkpointed.activation_checkpointing_disable()
    assert not checkpointed.is_activation_checkpointing


def test_missing_weights_are_initialised_on_loading(tester, tmp_path):
    model = _model(tester).eval()
    model.save_pretrained(tmp_path)
    dropped = tester.dropped_weights(model)
    weights = load_file(str(tmp_path / "model.safetensors"))
    kept = {name: tensor for name, tensor in weights.items() if name not in dropped}
    save_file(kept, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reloaded, info = tester.model_class.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == set(dropped) and not info["unexpected_keys"]
    state = reloaded.state_dict()
    for name, is_initialised in dropped.items():
        assert is_initialised(name, state[name]), name
    assert all(torch.equal(weights[name], state[name]) for name in weights if name not in dropped)
    with torch.no_grad():
        outputs = _flatten(reloaded.eval()(**tester.prepare_inputs()))
    assert all(torch.isfinite(t).all() for t in outputs.values())


# accelerate lists the root's own parameter (logit_scale) in its map and then finds no submodule of that name.
@pytest.mark.filterwarnings("ignore:The following device_map keys do not match any submodules")
def test_a_device_map_keeps_no_split_modules_whole_and_gives_the_same_outputs(tester, tmp_path):
    from spatial_clap_hf.models.spatial_clap import modeling_seldnet

    model = _model(tester).eval()
    no_split = set(model._no_split_modules)
    classes = {type(m).__name__ for m in model.modules()}
    assert no_split & classes and all(name in classes or hasattr(modeling_seldnet, name) for name in no_split)
    # Half the weights in memory, the rest offloaded to disk: the map splits the model between modules.
    total = compute_module_sizes(model)[""]
    device_map = infer_auto_device_map(
        model, max_memory={"cpu": total // 2, "disk": 10 * total}, no_split_module_classes=list(no_split)
    )
    whole = [name for name, module in model.named_modules() if type(module).__name__ in no_split and name]
    assert not [placed for placed in device_map for name in whole if placed.startswith(f"{name}.")]
    # SpatialClapModel's towers spread over both; a SELDnet is one unit (its encoder must not split).
    assert len(set(device_map.values())) == tester.devices_in_split_map
    model.save_pretrained(tmp_path / "model")
    dispatched = tester.auto_class.from_pretrained(
        tmp_path / "model", device_map=device_map, offload_folder=str(tmp_path / "offload")
    ).eval()
    inputs = tester.prepare_inputs()
    with torch.no_grad():
        expected, got = _flatten(model(**inputs)), _flatten(dispatched(**inputs))
    assert expected.keys() == got.keys()
    for path, tensor in expected.items():
        torch.testing.assert_close(got[path], tensor, atol=1e-5, rtol=0, msg=path)


# ------------------------------------------------------------------------------------------ SpatialClapModel
@pytest.fixture
def spatial_clap_tester(caption_tokenizer):
    return SpatialClapModelTester(caption_tokenizer)


def test_text_tower_keyword_arguments_reach_it(spatial_clap_tester):
    model = _model(spatial_clap_tester).eval()
    inputs = spatial_clap_tester.prepare_inputs()
    text = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
    positions = torch.arange(text["input_ids"].shape[1]).expand_as(text["input_ids"]) + 3
    with torch.no_grad():
        plain = model(**inputs).text_embeds
        shifted = model(**inputs, position_ids=positions)
        features = model.get_text_features(**text, position_ids=positions)
        tower = model.text_model(**text, position_ids=positions)
    assert not torch.allclose(plain, shifted.text_embeds, atol=1e-4)
    torch.testing.assert_close(shifted.text_embeds, features.pooler_output, atol=0, rtol=0)
    torch.testing.assert_close(features.last_hidden_state, tower.last_hidden_state, atol=0, rtol=0)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attention_implementation_reaches_the_text_tower(spatial_clap_tester, tmp_path, implementation):
    model = _model(spatial_clap_tester).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
    assert loaded.config._attn_implementation == implementation
    assert loaded.text_model.config._attn_implementation == implementation
    # HTS-AT's window attention has one (eager) implementation; the SELDnet has no attention.
    assert loaded.source_model.config._attn_implementation == "eager"
    assert loaded.spatial_model.config._attn_implementation == "eager"
    inputs = spatial_clap_tester.prepare_inputs()
    with torch.no_grad():
        expected, got = model(**inputs).logits_per_audio, loaded(**inputs).logits_per_audio
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    other = "sdpa" if implementation == "eager" else "eager"
    loaded.set_attn_implementation(other)
    assert loaded.text_model.config._attn_implementation == other
    assert loaded.source_model.config._attn_implementation == "eager"
    assert loaded.spatial_model.config._attn_implementation == "eager"


def test_seldnet_takes_only_eager_attention(tmp_path):
    SeldNetModel(_seld_config()).save_pretrained(tmp_path)
    assert SeldNetModel.from_pretrained(tmp_path, attn_implementation="eager").config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):  # no attention to run through it
        SeldNetModel.from_pretrained(tmp_path, attn_implementation="sdpa")


@pytest.mark.slow
def test_flex_attention_reaches_the_text_tower(spatial_clap_tester, tmp_path):
    model = _model(spatial_clap_tester).eval()
    model.save_pretrained(tmp_path)
    flex = AutoModel.from_pretrained(tmp_path, attn_implementation="flex_attention").eval()
    assert flex.text_model.config._attn_implementation == "flex_attention"
    assert flex.source_model.config._attn_implementation == "eager"
    inputs = spatial_clap_tester.prepare_inputs()
    with torch.no_grad():
        torch.testing.assert_close(flex(**inputs).text_embeds, model(**inputs).text_embeds, atol=1e-5, rtol=0)


def test_resized_token_embeddings_take_new_tokens_and_save_and_load(spatial_clap_tester, tmp_path):
    model = _model(spatial_clap_tester).eval()
    old = model.config.text_config.vocab_size
    assert model.get_input_embeddings() is model.text_model.embeddings.word_embeddings
    model.resize_token_embeddings(old + 8)
    assert model.get_input_embeddings().num_embeddings == old + 8
    assert model.config.text_config.vocab_size == model.text_model.config.vocab_size == old + 8
    inputs = spatial_clap_tester.prepare_inputs()
    inputs["input_ids"][:, 1] = old + 5  # a new token
    with torch.no_grad():
        before = model(**inputs).text_embeds
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).text_embeds, before)
    replacement = torch.nn.Embedding(old + 8, model.config.text_config.hidden_size, padding_idx=1)
    model.set_input_embeddings(replacement)
    assert model.text_model.get_input_embeddings() is replacement


# ------------------------------------------------------------------------------------------ SeldNetForSoundEventLocalization
def test_sound_event_localization_logits_are_the_sed_logits_per_frame_and_class():
    torch.manual_seed(0)
    model = SeldNetForSoundEventLocalization(_seld_config()).eval()
    inputs = SeldNetForSoundEventLocalizationTester().prepare_inputs()
    with torch.no_grad():
        out = model(**inputs)
    frames = SAMPLES // model.config.hop_length + 1
    assert out.logits.shape == (BATCH, frames, model.config.num_classes)
    torch.testing.assert_close(out.logits, model.sed_head(out.last_hidden_state), atol=0, rtol=0)
    assert out.sed_logits is out.logits
    single = SeldNetConfig(**{**_seld_config().to_dict(), "doa_mode": "single", "num_classes": 0})
    with torch.no_grad():
        assert SeldNetForSoundEventLocalization(single).eval()(**inputs).logits is None  # no SED head
