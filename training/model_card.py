"""Measure an exported model on the corpus's held-out test splits (fp32 and INT8, through the same
engine the worker uses), then ship it: copy the INT8 model into the served folder with those metrics
in its manifest and a model card (README.md) beside it.

    python -m training.model_card --model build/models/NAME --training build/train/NAME \\
        --corpus build/corpus --out models/NAME
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Any

from stt_common.model_folder import ONNX_FILES, VOCAB, read_manifest, write_manifest
from training.evaluate import HELD_OUT, load_split, score
from worker.recognizer import Recognizer


def measure(model_dir: Path, corpus: Path, variant: str, max_clips: int = 0) -> dict[str, Any]:
    recognizer = Recognizer.load(model_dir, variant=variant, threads=1)
    return {split: score(recognizer, load_split(corpus, split, max_clips)) for split in HELD_OUT}


def distinct_texts(corpus: Path, split: str) -> int:
    lines = (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return len({json.loads(line)["text"] for line in lines})


def recipe(training: dict[str, Any], frame_seconds: float) -> str:
    """The architecture and optimiser settings, read from the checkpoint's config.json and the Trainer's
    training_args.bin, so the card states what ran rather than what was meant to."""
    m, a = training["model_config"], training["args"]
    conv = m.get("conv_dim", [])
    parts = [
        f"hidden {m['hidden_size']}, {m['num_hidden_layers']} layers, {m['num_attention_heads']} heads, "
        f"feed-forward {m['intermediate_size']}, convolutional encoder {min(conv)}–{max(conv)} channels, "
        f"{frame_seconds * 1000:g} ms frames"
    ]
    if a:
        parts.append(
            f"AdamW, learning rate {a['learning_rate']:g} with {a['warmup_steps']:g} warm-up steps and "
            f"{a['lr_scheduler_type']} decay, batch {a['batch']}, weight decay {a['weight_decay']:g}"
        )
    parts.append(f"SpecAugment time masks (p = {m.get('mask_time_prob', 0):g})")
    return "; ".join(parts)


def training_settings(folder: Path) -> dict[str, Any]:
    """The Trainer's own record of its arguments (training_args.bin), or {} without one."""
    path = folder / "training_args.bin"
    if not path.is_file():
        return {}
    import torch

    args = torch.load(path, weights_only=False)  # a TrainingArguments pickle the Trainer wrote
    return {
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "lr_scheduler_type": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
        "batch": args.per_device_train_batch_size * max(1, args.gradient_accumulation_steps),
        "weight_decay": args.weight_decay,
    }


# What the card's readers (and the Hugging Face hub) take as the model's terms and sources; NOTICE at the
# repository's root says the same at more length. The weights and the n-gram are trained on texts that
# include word sequences sampled from wordfreq's data (CC BY-SA 4.0), so they are shared alike.
FRONT_MATTER = """---
license: cc-by-sa-4.0
language:
- tr
datasets:
- google-research-datasets/turkish-treebanks
- rspeer/wordfreq
tags:
- automatic-speech-recognition
- ctc
- synthetic-speech
---
"""
PROVENANCE = """## Licence and provenance
- **Texts**: the Turkish Web Treebank's sentences (the `turkish-treebanks` package, Google Research,
  Apache-2.0) and word sequences sampled from `wordfreq`'s Turkish frequency list (code Apache-2.0; its
  data CC BY-SA 4.0, built from Wikipedia, OpenSubtitles 2018, ParaCrawl, Google Books Ngrams and other
  sources its README credits).
- **Voices**: espeak-ng (GPL-3.0-or-later) rendered the audio. The program's licence does not extend to
  the sound it outputs; no espeak-ng code or data is in this folder.
- **Terms of this folder** (`model.int8.onnx`, `lm.arpa.gz`, `vocab.json`): CC BY-SA 4.0, because the
  training and language-model texts include the wordfreq-derived word sequences. Attribute "tr-espeak-small
  (turkish-stt), trained on text from the Turkish Web Treebank and wordfreq" and share adaptations under
  the same licence. The repository's code is MIT (LICENSE); NOTICE lists every source.
"""


def card(
    name: str,
    manifest: Any,
    corpus: dict[str, Any],
    training: dict[str, Any],
    held_out: dict[str, Any],
    config: dict[str, Any],
) -> str:
    def row(variant: str) -> str:
        m = held_out[variant]
        return (
            f"| {variant} | {m['test']['wer']:.3f} | {m['test']['cer']:.3f} | {m['test_heldout_voice']['wer']:.3f} "
            f"| {m['test_heldout_voice']['cer']:.3f} | {m['test']['rtf_one_thread']:.4f} |"
        )

    size = manifest.files[ONNX_FILES["int8"]].bytes / 1e6
    cfg = corpus["config"]
    body = f"""# {name}

A small Turkish speech recogniser (Wav2Vec2ForCTC, {training["parameters"] / 1e6:.1f} M parameters, INT8 ONNX
{size:.1f} MB) trained **from scratch on synthetic speech only**: Turkish sentences spoken by espeak-ng.
It knows espeak-ng's voices, not people. Expect it to fail on real recordings; it exists so the service
runs end to end on real Turkish text with a model that actually transcribes. For real speech, fine-tune
a pretrained encoder (see the repository README: *Training*) and export it with `python -m export`.

## Data
`python -m training.corpus`: {corpus["renderings"]["train"]} training renderings ({corpus["train_hours"]} h) of
{corpus["distinct_train_texts"]} distinct texts: the Turkish Web Treebank's speakable sentences (digits, acronyms and
symbols excluded) plus {cfg["word_sequences"]} word sequences sampled from wordfreq's Turkish list, each rendered
{cfg["renders_per_train_sentence"]} times with {len(cfg["voices"])} espeak-ng voices, rates 125–195 wpm, pitches 25–75,
half of the renderings with white noise at 15–35 dB SNR. {cfg["validation_sentences"]} validation and
{cfg["test_sentences"]} test sentences are held out whole; `test_heldout_voice` renders the test sentences with a voice
(`{cfg["held_out_voice"]}`) never heard in training.

## Training
`{config["command"]}` — {training["steps"]} steps in {training["minutes"]} min on {config["trained_on"]}
(final training loss {training["loss"]:.3f}). Configuration: {recipe(training, manifest.frame_seconds)}.

## Held-out results
Measured through the service's own engine (ONNX Runtime, greedy CTC), one thread, on {config["machine"]}:

| model | WER (seen voices) | CER | WER (held-out voice) | CER | real-time factor, 1 thread |
|---|---|---|---|---|---|
{row("fp32")}
{row("int8")}

INT8 quantises MatMul weights only; the export's parity gate requires INT8 within
{config["max_int8_wer_increase"] * 100:.0f} WER point(s) of fp32 on the validation set.

{PROVENANCE}"""
    return FRONT_MATTER + body


def put_section(card: Path, start: str, end: str, section: str) -> None:
    """Replace the card's section between `start` and `end` (which `section` begins and ends with), or
    append it; a card that does not exist is left alone."""
    if not card.is_file():
        return
    text = card.read_text()
    text = (
        (text.split(start)[0] + section + text.split(end)[1])
        if start in text
        else text.rstrip("\n") + "\n\n" + section + "\n"
    )
    card.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="Exported folder with both variants.")
    parser.add_argument("--training", type=Path, required=True, help="The training output (evaluation.json).")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", default="make model")
    parser.add_argument("--max-clips", type=int, default=0, help="Score only this many clips a split (0 = all).")
    parser.add_argument(
        "--trained-on",
        default="",
        help="The machine the training ran on, when not this one (e.g. 'one NVIDIA H100 GPU').",
    )
    parser.add_argument(
        "--training-minutes",
        type=float,
        default=0,
        help="Total training time, when the run was resumed (default: from evaluation.json).",
    )
    args = parser.parse_args()

    manifest = read_manifest(args.model)
    held_out = {variant: measure(args.model, args.corpus, variant, args.max_clips) for variant in ("fp32", "int8")}
    evaluation = json.loads((args.training / "evaluation.json").read_text())
    corpus = json.loads((args.corpus / "corpus.json").read_text())
    corpus["distinct_train_texts"] = distinct_texts(args.corpus, "train")
    training = {
        **evaluation["train"],
        "parameters": manifest.source.get("parameters", 0),
        "model_config": json.loads((args.training / "config.json").read_text()),
        "args": training_settings(args.training),
    }
    if args.training_minutes:
        training["minutes"] = args.training_minutes
    machine = this_machine()

    args.out.mkdir(parents=True, exist_ok=True)
    for name in (ONNX_FILES["int8"], VOCAB):
        shutil.copy2(args.model / name, args.out / name)
    del manifest.files[ONNX_FILES["fp32"]]
    manifest.metrics.update(
        {
            "held_out": held_out,
            "training_minutes": training["minutes"],
            "training_steps": training["steps"],
            "train_hours": corpus["train_hours"],
        }
    )
    write_manifest(args.out, manifest)
    config = {
        "command": args.command,
        "machine": machine,
        "trained_on": args.trained_on or machine,
        "max_int8_wer_increase": 0.01,
    }
    (args.out / "README.md").write_text(card(manifest.name, manifest, corpus, training, held_out, config))
    print(json.dumps(held_out, indent=2))


def this_machine() -> str:
    """ "<CPU model>, <n> cores", as the cards record where a measurement ran."""
    if platform.system() != "Linux":
        return platform.processor() or "unknown CPU"
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    return f"{name}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
