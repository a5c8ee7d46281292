"""Write a randomly initialised Wav2Vec2ForCTC checkpoint with the Turkish vocabulary.

Weights do not change a model's size or speed, so a random checkpoint stands in for a trained one in
tests (`--preset tiny`) and in benchmarks of the full architecture (`--preset xlsr-large`).

    python -m training.random_checkpoint --preset tiny --out build/tiny-random
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.vocab import BLANK, UNK, WORD_DELIMITER, turkish_vocab

PRESETS: dict[str, dict[str, object]] = {
    # A few hundred kB: enough to exercise every code path quickly.
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32, 32, 32, 32, 32), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    ),
    # facebook/wav2vec2-large-xlsr-53's architecture (about 315 M parameters).
    "xlsr-large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        conv_dim=(512, 512, 512, 512, 512, 512, 512), num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
    ),
}


def write_random_checkpoint(out: Path, preset: str, seed: int = 0) -> Path:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    out.mkdir(parents=True, exist_ok=True)
    vocab = turkish_vocab()
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(out / "vocab.json"), unk_token=UNK, pad_token=BLANK, word_delimiter_token=WORD_DELIMITER,
        bos_token=None, eos_token=None,
    )
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab), pad_token_id=vocab[BLANK], ctc_loss_reduction="mean",
        feat_extract_norm="layer", do_stable_layer_norm=True, **PRESETS[preset],  # type: ignore[arg-type]
    )
    torch.manual_seed(seed)
    model = Wav2Vec2ForCTC(config).eval()
    model.save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="Folder to write the checkpoint into.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write_random_checkpoint(args.out, args.preset, args.seed))


if __name__ == "__main__":
    main()
