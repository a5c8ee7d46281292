"""python -m training: fine-tune (or train from scratch) a Wav2Vec2ForCTC model for Turkish.

    # the bundled model: from scratch on the synthetic corpus (see models/*/README.md for the exact run)
    python -m training --dataset build/corpus --preset small --output_dir build/train/small ...
    # the seed's run, on a machine with network and a GPU
    python -m training --model_name_or_path facebook/wav2vec2-large-xlsr-53 \\
        --dataset ysdede/khanacademy-turkish --subset_fraction 0.15 --num_train_epochs 5 ...

Every `transformers.TrainingArguments` flag is accepted too (learning rate, batch size, epochs, ...).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("training")


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained checkpoint to fine-tune: a hub id or a local folder."}
    )
    preset: str | None = field(
        default=None, metadata={"help": "Train from scratch with this config instead: tiny | small | xlsr-large."}
    )
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "Freeze the convolutional feature encoder (usual when fine-tuning)."}
    )
    mask_time_prob: float = field(default=0.05, metadata={"help": "SpecAugment time-mask probability."})


@dataclass
class DataArguments:
    dataset: str = field(metadata={"help": "Hub id, a folder of {split}.jsonl manifests, or one manifest file."})
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    train_split: str = field(default="train")
    eval_split: str = field(default="validation")
    test_splits: str = field(default="", metadata={"help": "Comma-separated splits for the final evaluation."})
    audio_column_name: str = field(default="audio")
    text_column_name: str = field(default="text")
    subset_fraction: float = field(default=1.0, metadata={"help": "Train on this fraction of the train split."})
    max_eval_samples: int = field(default=300, metadata={"help": "Cap on clips evaluated each epoch."})
    max_duration_seconds: float = field(default=20.0, metadata={"help": "Drop longer clips (needs a duration column)."})
    spell_numbers: bool = field(default=False, metadata={"help": "Write digits as Turkish words (num2words)."})
    max_train_minutes: float = field(default=0.0, metadata={"help": "Stop training after this long; 0 = no cap."})
    pad_silence_seconds: float = field(
        default=0.0,
        metadata={
            "help": "Augmentation: add a random pause of up to this many seconds (at the clip's own noise floor) "
            "before and after each training clip; 0 = off."
        },
    )


def parse(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, Any]:
    from transformers import HfArgumentParser, TrainingArguments

    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))  # type: ignore[arg-type]
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if bool(model_args.model_name_or_path) == bool(model_args.preset):
        parser.error("give exactly one of --model_name_or_path (fine-tune) or --preset (from scratch)")
    return model_args, data_args, training_args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from transformers import Trainer, set_seed

    from training.checkpoints import build_model, build_processor
    from training.collator import CtcCollator
    from training.data import check_columns, load_split, undecoded
    from training.evaluate import evaluate
    from training.progress import EpochEvaluation, TimeBudget

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    model_args, data_args, args = parse(argv)
    set_seed(args.seed)
    started = time.monotonic()

    # 1. Data: load, check columns, normalise the text the model must learn to write.
    from training.text import normalize

    def prepare(split: str) -> Any:
        rows = load_split(data_args.dataset, split, config=data_args.dataset_config)
        check_columns(rows, data_args.audio_column_name, data_args.text_column_name)
        rows = undecoded(rows, data_args.audio_column_name)
        rows = rows.map(
            lambda r: {
                data_args.text_column_name: normalize(
                    r[data_args.text_column_name], spell_numbers=data_args.spell_numbers
                )
            }
        )
        rows = rows.filter(lambda r: bool(r[data_args.text_column_name]))
        if "duration" in rows.column_names:
            rows = rows.filter(lambda r: r["duration"] <= data_args.max_duration_seconds)
        return rows

    train = prepare(data_args.train_split)
    if data_args.subset_fraction < 1.0:
        train = train.shuffle(seed=args.seed).select(range(max(1, int(len(train) * data_args.subset_fraction))))
    evaluation = prepare(data_args.eval_split)
    evaluation = evaluation.select(range(min(len(evaluation), data_args.max_eval_samples)))
    if "duration" in train.column_names:
        train = train.rename_column("duration", "length")
    logger.info("train %d clips, eval %d clips", len(train), len(evaluation))

    # 2. Vocabulary, processor and model.
    processor = build_processor(Path(args.output_dir), train[data_args.text_column_name])
    model = build_model(model_args, processor)
    logger.info("model: %.2f M parameters", sum(p.numel() for p in model.parameters()) / 1e6)

    # 3. Train, evaluating WER/CER each epoch (TensorBoard via --report_to tensorboard).
    args.remove_unused_columns = False
    args.length_column_name = "length"
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=CtcCollator(
            processor, data_args.audio_column_name, data_args.text_column_name, data_args.pad_silence_seconds
        ),
        processing_class=processor,  # checkpoints then carry the vocabulary too
        callbacks=[
            EpochEvaluation(processor, evaluation, data_args.audio_column_name, data_args.text_column_name),
            TimeBudget(data_args.max_train_minutes),
        ],
    )
    result = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    processor.save_pretrained(args.output_dir)

    # 4. Final evaluation, written as JSON beside the model.
    report: dict[str, Any] = {
        "train": {
            "loss": result.training_loss,
            "steps": result.global_step,
            "minutes": round((time.monotonic() - started) / 60, 1),
            "clips": len(train),
        },
        "history": trainer.state.log_history,
        "eval": {
            data_args.eval_split: evaluate(
                model, processor, evaluation, data_args.audio_column_name, data_args.text_column_name
            )
        },
    }
    for split in filter(None, data_args.test_splits.split(",")):
        rows = prepare(split)
        report["eval"][split] = evaluate(
            model, processor, rows, data_args.audio_column_name, data_args.text_column_name
        )
    Path(args.output_dir, "evaluation.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    logger.info("evaluation: %s", report["eval"])
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
