"""Tiny Hugging Face models made here, no hub: configs with a few layers and random weights, tokenizers
trained on a few sentences with ``tokenizers``, written with ``save_pretrained``.

Each ``make_*`` writes one model directory and returns its path; ``seed`` makes its weights repeatable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny model made for tests",
    "paris is the capital of france and berlin is the capital of germany",
    "i love this movie it was great",
    "i hate this film it was terrible and boring",
    "alice met bob in london on monday",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "one two three four five six seven eight nine ten",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('roles must be system, user or assistant') }}{% endif %}"
    "<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def wordpiece_tokenizer() -> Any:
    """A BERT-style tokenizer ([CLS] text [SEP], [MASK], lower case) trained on SENTENCES."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES * 4, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def bpe_tokenizer(*, chat: bool = True) -> Any:
    """A GPT-style byte-level BPE tokenizer with <s> </s> <pad>, and a small chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def _bert_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _save(model: Any, tokenizer: Any, directory: Path, settings: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    if settings is not None:
        (directory / "model-settings.json").write_text(json.dumps(settings))
    return directory


def make_classifier(directory: Path, *, seed: int = 0, settings: dict[str, Any] | None = None) -> Path:
    """BertForSequenceClassification, labels NEGATIVE and POSITIVE."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    tok = wordpiece_tokenizer()
    config = _bert_config(
        tok, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1}
    )
    return _save(BertForSequenceClassification(config).eval(), tok, directory, settings)


def make_tagger(directory: Path, *, seed: int = 0) -> Path:
    """BertForTokenClassification with O, B-PER, I-PER, B-LOC labels."""
    import torch
    from transformers import BertForTokenClassification

    torch.manual_seed(seed)
    tok = wordpiece_tokenizer()
    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    config = _bert_config(
        tok, num_labels=4, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    return _save(BertForTokenClassification(config).eval(), tok, directory)


def make_masked_lm(directory: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    tok = wordpiece_tokenizer()
    return _save(BertForMaskedLM(_bert_config(tok)).eval(), tok, directory)


def make_encoder(directory: Path, *, seed: int = 0) -> Path:
    """A BertModel without a head: feature extraction (KServe's mean pooling and normalisation)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    tok = wordpiece_tokenizer()
    return _save(BertModel(_bert_config(tok)).eval(), tok, directory)


def make_sentence_transformer(directory: Path, *, seed: int = 0, pooling: str = "cls") -> Path:
    """A sentence-transformers model (Transformer, Pooling, Normalize) saved by sentence-transformers."""
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer, models

    base = make_encoder(Path(tempfile.mkdtemp(prefix="prebake-st-")), seed=seed)
    torch.manual_seed(seed)
    transformer = models.Transformer(str(base), max_seq_length=48)
    pool = models.Pooling(transformer.get_embedding_dimension(), pooling_mode=pooling)
    model = SentenceTransformer(modules=[transformer, pool, models.Normalize()], device="cpu")
    model.save(str(directory))
    return directory


def make_nli(directory: Path, *, seed: int = 0) -> Path:
    """An NLI classifier (contradiction, neutral, entailment) for zero-shot classification."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    tok = wordpiece_tokenizer()
    labels = ["contradiction", "neutral", "entailment"]
    config = _bert_config(
        tok, num_labels=3, id2label=dict(enumerate(labels)), label2id={k: i for i, k in enumerate(labels)}
    )
    settings = {"parameters": {"task": "zero-shot-classification"}}
    return _save(BertForSequenceClassification(config).eval(), tok, directory, settings)


def make_causal_lm(
    directory: Path,
    *,
    seed: int = 0,
    kind: str = "llama",
    context: int = 128,
    chat: bool = True,
    settings: dict[str, Any] | None = None,
) -> Path:
    """A decoder-only LM (Llama or GPT-2 architecture) with a byte-level BPE tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = bpe_tokenizer(chat=chat)
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    if kind == "gpt2":
        config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=context, **ids)
        model: Any = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=context,
            **ids,
        )
        model = LlamaForCausalLM(config)
    # Random weights rarely pick </s>; make it rarer still so generations run to max_tokens unless told.
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id].zero_()
        if hasattr(model.lm_head, "bias") and model.lm_head.bias is not None:
            model.lm_head.bias[tok.eos_token_id] = -10.0
    model.generation_config.max_new_tokens = 16
    return _save(model.eval(), tok, directory, settings)


def make_seq2seq(directory: Path, *, seed: int = 0) -> Path:
    """A T5-architecture encoder-decoder (text2text-generation)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    tok = bpe_tokenizer(chat=False)
    config = T5Config(
        vocab_size=len(tok),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=tok.pad_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 8
    return _save(model.eval(), tok, directory)
