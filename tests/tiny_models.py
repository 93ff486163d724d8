"""A tiny random BERT (hidden 32, 2 layers) with a WordPiece tokenizer trained here.

Saved with ``save_pretrained`` next to its tokenizer, it is a valid catalog entry, so
tests exercise the same loading path as production.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def train_tokenizer(texts: Iterable[str], vocab_size: int = 600):
    """A WordPiece tokenizer whose vocabulary is built here, deterministically: the
    special tokens, every character alone and as a ``##`` continuation, then the most
    frequent words (ties by spelling). (The ``tokenizers`` trainer breaks frequency ties
    differently from run to run, which would make the tiny model differ per session.)"""
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab_list = special + chars + [f"##{c}" for c in chars]
    ranked = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
    vocab_list += ranked[: max(0, vocab_size - len(vocab_list))]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab_list)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_tiny_bert(directory: Path, texts: Iterable[str], seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = train_tokenizer(texts)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def write_catalog(path: Path, model_dir: Path, name: str = "tiny", revision: str = "r1") -> Path:
    import yaml

    doc = {
        "models": [
            {
                "name": name,
                "revision": revision,
                "aliases": ["stable"],
                "location": str(model_dir),
                "architecture": "bert",
                "pooling": "mean",
            }
        ]
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path
