"""Device-side: render the corpus planned here (the plan needs wordfreq and the treebank, which stay
here) with the repo's own training.corpus.build, so the result equals
`python -m training.corpus --out OUT --word-sequences 20000`.

    python .gpu/render.py OUT            # LIMIT=300 for a dry run: held-out splits + 300 training clips
"""

import gzip
import json
import os
import sys
import time
from pathlib import Path

import training.corpus as corpus

items = [corpus.Rendering(**d) for d in json.loads(gzip.decompress(Path(".gpu/plan.json.gz").read_bytes()))]
if os.environ.get("LIMIT"):
    held = [i for i in items if i.split != "train"]
    items = held + [i for i in items if i.split == "train"][: int(os.environ["LIMIT"])]
corpus.select_sentences = lambda _config: []  # type: ignore[assignment]
corpus.plan = lambda _config, _pairs: items  # type: ignore[assignment]
started = time.time()
print(corpus.build(corpus.CorpusConfig(out=Path(sys.argv[1]), word_sequences=20000), processes=16), flush=True)
print(f"rendered {len(items)} clips in {time.time() - started:.0f} s", flush=True)
