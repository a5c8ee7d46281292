"""Model configurations, the vocabulary builder, and processors for Turkish CTC models."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stt_common.text import TURKISH_LETTERS
from training.vocab import BLANK, UNK, WORD_DELIMITER

# wav2vec2's convolutional encoder: 20 ms frames (SEW's own default has 13 layers).
CONV_LAYOUT = {"conv_kernel": (10, 3, 3, 3, 3, 2, 2), "conv_stride": (5, 2, 2, 2, 2, 2, 2)}

PRESETS: dict[str, dict[str, Any]] = {
    # A few hundred kB: exercises every code path quickly (tests, CI smoke training).
    "tiny": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (32, 32, 32, 32, 32, 32, 32),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 4,
    },
    # About 4 M parameters with a cheaper convolutional encoder: trainable on 2 CPU cores in an hour.
    "small": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
        "conv_dim": (64, 128, 128, 128, 128, 256, 256),
        "num_conv_pos_embeddings": 64,
        "num_conv_pos_embedding_groups": 16,
    },
    # facebook/wav2vec2-large-xlsr-53's architecture (about 315 M parameters).
    "xlsr-large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "conv_dim": (512, 512, 512, 512, 512, 512, 512),
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
        "conv_bias": True,
    },
}


# Each waveform CTC family's model class in transformers (what AutoModelForCTC builds from its config).
CTC_CLASSES = {
    "wav2vec2": "Wav2Vec2ForCTC",
    "wav2vec2-conformer": "Wav2Vec2ConformerForCTC",
    "hubert": "HubertForCTC",
    "wavlm": "WavLMForCTC",
    "data2vec-audio": "Data2VecAudioForCTC",
    "unispeech": "UniSpeechForCTC",
    "unispeech-sat": "UniSpeechSatForCTC",
    "sew": "SEWForCTC",
    "sew-d": "SEWDForCTC",
    "wav2vec2-bert": "Wav2Vec2BertForCTC",  # reads log-mel features, not the waveform
}
# What a family's public fine-tunes set beyond the presets: w2v-bert-2.0's CTC fine-tunes add an adapter
# that halves the frame rate (40 ms frames).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {"wav2vec2-bert": {"add_adapter": True, "num_adapter_layers": 1}}


def build_vocab(texts: Iterable[str], letters: str = TURKISH_LETTERS) -> dict[str, int]:
    """Blank (id 0, the CTC blank), the word delimiter, every letter of the alphabet and any other
    character the texts use, then <unk>. Keeping the whole alphabet keeps vocabularies comparable."""
    extra = sorted({ch for text in texts for ch in text if ch != " " and ch not in letters})
    tokens = [BLANK, WORD_DELIMITER, *letters, *extra, UNK]
    return {token: index for index, token in enumerate(tokens)}


def build_processor(folder: Path, texts: Iterable[str]) -> Any:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    folder.mkdir(parents=True, exist_ok=True)
    vocab = build_vocab(texts)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token=UNK,
        pad_token=BLANK,
        word_delimiter_token=WORD_DELIMITER,
        bos_token=None,
        eos_token=None,
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer)


def config_for(preset: str, vocab_size: int, pad_token_id: int, family: str = "wav2vec2", **overrides: Any) -> Any:
    """A CTC model's configuration: `preset`'s sizes in `family`'s architecture (any of transformers'
    waveform CTC families; the presets' keys are the ones they share with wav2vec2)."""
    from transformers import AutoConfig

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return AutoConfig.for_model(
        family,
        vocab_size=vocab_size,
        pad_token_id=pad_token_id,
        ctc_loss_reduction="mean",
        ctc_zero_infinity=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        layerdrop=0.0,
        architectures=[CTC_CLASSES.get(family, "Wav2Vec2ForCTC")],
        **{**CONV_LAYOUT, **PRESETS[preset], **FAMILY_DEFAULTS.get(family, {}), **overrides},
    )


def build_model(model_args: Any, processor: Any) -> Any:
    from transformers import Wav2Vec2ForCTC

    tokenizer = processor.tokenizer
    if model_args.preset:
        config = config_for(
            model_args.preset, len(tokenizer), tokenizer.pad_token_id, mask_time_prob=model_args.mask_time_prob
        )
        model = Wav2Vec2ForCTC(config)
    else:
        # A pretrained encoder (e.g. facebook/wav2vec2-large-xlsr-53) gets a fresh CTC head sized to our vocabulary.
        model = Wav2Vec2ForCTC.from_pretrained(
            model_args.model_name_or_path,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            ctc_loss_reduction="mean",
            ctc_zero_infinity=True,
            mask_time_prob=model_args.mask_time_prob,
            layerdrop=0.0,
            ignore_mismatched_sizes=True,
        )
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model
