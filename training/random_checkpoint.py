"""Write a randomly initialised Wav2Vec2ForCTC checkpoint with the Turkish vocabulary.

Weights do not change a model's size or speed, so a random checkpoint stands in for a trained one in
tests (`--preset tiny`) and in benchmarks of the full architecture (`--preset xlsr-large`).

    python -m training.random_checkpoint --preset tiny --out build/tiny-random
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.checkpoints import PRESETS, build_processor, config_for


def write_random_checkpoint(out: Path, preset: str, seed: int = 0) -> Path:
    import torch
    from transformers import Wav2Vec2ForCTC

    processor = build_processor(out, [])
    config = config_for(preset, len(processor.tokenizer), processor.tokenizer.pad_token_id)
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).eval().save_pretrained(out)
    processor.save_pretrained(out)
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
