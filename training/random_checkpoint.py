"""Write a randomly initialised CTC checkpoint (wav2vec2 or another family) with the Turkish vocabulary.

Weights do not change a model's size or speed, so a random checkpoint stands in for a trained one in
tests (`--preset tiny`) and in benchmarks of the full architecture (`--preset xlsr-large`).

    python -m training.random_checkpoint --preset tiny --out build/tiny-random
    python -m training.random_checkpoint --preset tiny --family hubert --out build/tiny-hubert
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.checkpoints import CTC_CLASSES, PRESETS, build_processor, config_for


def write_random_checkpoint(out: Path, preset: str, seed: int = 0, family: str = "wav2vec2") -> Path:
    import torch
    from transformers import AutoModelForCTC

    processor = build_processor(out, [])
    config = config_for(preset, len(processor.tokenizer), processor.tokenizer.pad_token_id, family)
    torch.manual_seed(seed)
    AutoModelForCTC.from_config(config).eval().save_pretrained(out)
    if family == "wav2vec2-bert":  # it reads log-mel features: its own extractor replaces wav2vec2's
        from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2BertProcessor

        processor = Wav2Vec2BertProcessor(
            feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=processor.tokenizer
        )
    processor.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="Folder to write the checkpoint into.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=sorted(CTC_CLASSES), default="wav2vec2", help="The architecture.")
    args = parser.parse_args()
    print(write_random_checkpoint(args.out, args.preset, args.seed, args.family))


if __name__ == "__main__":
    main()
