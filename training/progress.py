"""Trainer callbacks: WER/CER after every epoch (logged to TensorBoard), and a wall-clock budget."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from training.evaluate import evaluate

logger = logging.getLogger("training")


class EpochEvaluation(TrainerCallback):
    def __init__(self, processor: Any, rows: Any, audio_column: str, text_column: str) -> None:
        self.processor, self.rows = processor, rows
        self.audio_column, self.text_column = audio_column, text_column
        self.trainer_log: Any = None

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **_: Any) -> None:  # noqa: ARG002
        scores = evaluate(model, self.processor, self.rows, self.audio_column, self.text_column)
        model.train()
        entry = {"epoch": state.epoch, "step": state.global_step, "eval_wer": scores["wer"], "eval_cer": scores["cer"]}
        state.log_history.append(entry)
        logger.info("epoch %.2f: WER %.3f CER %.3f", state.epoch, scores["wer"], scores["cer"])
        writer = _tensorboard(args)
        if writer is not None:
            writer.add_scalar("eval/wer", scores["wer"], state.global_step)
            writer.add_scalar("eval/cer", scores["cer"], state.global_step)
            writer.flush()


def _tensorboard(args: Any) -> Any:
    if "tensorboard" not in (args.report_to or []):
        return None
    from torch.utils.tensorboard import SummaryWriter

    # transformers 5 dropped TrainingArguments.logging_dir; its TensorBoard callback writes to runs/.
    return SummaryWriter(log_dir=getattr(args, "logging_dir", None) or str(Path(args.output_dir) / "runs"))


class TimeBudget(TrainerCallback):
    """Stop cleanly (saving a checkpoint) once `minutes` have passed; 0 means no budget."""

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes
        self.started = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:  # noqa: ARG002
        if self.minutes and time.monotonic() - self.started > self.minutes * 60:
            logger.info("time budget of %.0f min reached at step %d", self.minutes, state.global_step)
            control.should_training_stop = True
            control.should_save = True
