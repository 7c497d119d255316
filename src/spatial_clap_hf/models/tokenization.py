"""Small caption tokenizers trained offline, for tiny models, tests and quick starts.

A byte-level BPE with RoBERTa's special tokens and ids (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
``<unk>`` 3, ``<mask>`` 4), so it drives a (tiny) ``RobertaModel`` with the usual
``pad_token_id=1``, ``bos_token_id=0``, ``eos_token_id=2``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["ROBERTA_SPECIAL_TOKENS", "train_caption_tokenizer"]

ROBERTA_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_caption_tokenizer(
    captions: Iterable[str], vocab_size: int = 1000, model_max_length: int = 64
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``captions`` (deterministic for the same input).

    Args:
        captions: training texts (at least one non-empty).
        vocab_size: target vocabulary size, special tokens and the 256 byte symbols included
            (the trainer stops earlier when no merge is left).
        model_max_length: longest tokenized sequence, special tokens included.

    Returns:
        A fast tokenizer that adds ``<s> ... </s>`` and pads with ``<pad>``; ``save_pretrained`` /
        ``AutoTokenizer.from_pretrained`` round-trip it.
    """
    texts = [c for c in captions if isinstance(c, str) and c.strip()]
    if not texts:
        raise ValueError("train_caption_tokenizer needs at least one non-empty caption.")
    minimum = len(ROBERTA_SPECIAL_TOKENS) + 256
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size} is below the {minimum} special + byte symbols; use >= {minimum}.")
    if model_max_length < 3:
        raise ValueError(f"model_max_length must be >= 3 (<s>, a token, </s>), got {model_max_length}.")

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(ROBERTA_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")),
        ("<s>", backend.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=model_max_length,
        padding_side="right",
    )
