"""Score a trained generator (or real data against itself) after training: what ``ganforge eval`` runs.

:func:`evaluate_run` scores a run's generator with the metrics that apply to its data (and, for
conditional runs, GAN-train / GAN-test when named); :func:`real_floor` scores one half of the real data
against the other, the floor a perfect generator would reach. Both return one record (a dict), which
:func:`append_record` adds to ``RUN/eval.jsonl`` and :func:`format_record` turns into a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from .api import LoadedGAN, load
from .checkpoint import write_atomic
from .config import load_run_config, resolve_config
from .data import load_dataset
from .errors import GanforgeError
from .logs import log
from .metric_spec import BOOKKEEPING, ON_REQUEST
from .metrics import eval_labels, evaluate, parse_names, real_baseline, reference
from .metrics.tstr import gan_test, gan_train, require_classes


def split_names(spec: Optional[str]):
    """'fid,gan_test' → (registry metrics or None for all that apply, the classifier metrics asked for)."""
    wanted = [n.strip() for n in (spec or "").split(",") if n.strip()]
    rest = [n for n in wanted if n not in ON_REQUEST]
    return (parse_names(",".join(rest)) if rest else None), [n for n in wanted if n in ON_REQUEST]


def evaluate_run(run_dir, checkpoint=None, metrics: Optional[str] = None, n: Optional[int] = None,
                 seed: Optional[int] = None, truncation: Optional[float] = None, features: Optional[str] = None,
                 device: str = "cpu", say: Callable[[str], None] = log.info) -> Dict[str, Any]:
    """Score the generator of ``run_dir`` (as ``sample`` picks it) or of ``checkpoint``: ``n`` samples of
    the seeded evaluation noise (default: the run's eval.n and eval.seed; conditional G: labels in the
    reference's class proportions) against the run's own data."""
    if n is not None and n < 2:
        raise GanforgeError(f"--n must be >= 2, got {n}")
    names, tstr = split_names(metrics)
    gan = load(checkpoint or _run_dir(run_dir), device=device)
    if gan.chosen:
        say(gan.chosen)
    if tstr:
        require_classes(gan)
    n = n if n is not None else gan.config.eval.n
    seed = seed if seed is not None else gan.config.eval.seed
    data = load_dataset(gan.config.data)
    if gan.is_text:
        return _text_record(gan, data, names, n, seed, truncation)
    if gan.is_audio:
        return _audio_record(gan, data, names, n, seed, truncation)
    ev = gan.config.eval if features is None else gan.config.replace(eval={"features": features}).eval
    ref = reference(data, ev)
    found: Dict[str, Any] = {}
    if names or not tstr:
        z = gan.noise(n, seed, truncation)  # the in-training evaluation's draw (truncated when asked)
        y = eval_labels(n, gan.n_classes, ref, seed) if gan.n_classes else None  # the reference's class mix
        found = evaluate(gan.generate(z, y), ref, names)
    if tstr:
        found.update(_tstr(gan, data, ref, tstr, n, seed))
    record = {"kind": "generator", "checkpoint": str(gan.source), "step": gan.step, "n": n,
              "n_ref": len(ref.x) if hasattr(ref, "x") else None, "seed": seed,
              **({"truncation": truncation} if truncation is not None else {}), **found}
    if hasattr(ref, "extractor"):
        record["features_info"] = ref.extractor.info
    return record


def _text_record(gan: LoadedGAN, data, names, n: int, seed: int, truncation: Optional[float]) -> Dict[str, Any]:
    """A text generator's n samples scored against its text's held-out tenth (:mod:`.metrics.text`)."""
    from .metrics.text import text_reference

    if names:
        raise GanforgeError("a text generator is scored with the text metrics (js_1..js_4, in_vocab, novelty); "
                            "leave out --metrics")
    samples = gan.text(gan.generate(gan.noise(n, seed, truncation)))
    return {"kind": "generator", "checkpoint": str(gan.source), "step": gan.step, "n": n,
            "n_ref": len(data.held), "seed": seed, **text_reference(data).score(samples)}


def _audio_record(gan: LoadedGAN, data, names, n: int, seed: int, truncation: Optional[float]) -> Dict[str, Any]:
    """An audio generator's n samples (conditional: every class equally often) read by the log-mel classifier
    against the reference clips (:mod:`.metrics.audio`)."""
    from .metrics.audio import audio_reference
    from .models import matched_labels

    if names:
        raise GanforgeError("an audio generator is scored with the audio metrics (accuracy, inception_score, fid, "
                            "memorisation); leave out --metrics")
    ref = audio_reference(data, gan.config.data)
    y = matched_labels(n, torch.ones(gan.n_classes), seed) if gan.n_classes else None
    samples = gan.generate(gan.noise(n, seed, truncation), y)
    return {"kind": "generator", "checkpoint": str(gan.source), "step": gan.step, "n": n, "n_ref": len(ref.test_y),
            "seed": seed, **ref.score(samples, y), "features": ref.extractor.name}


def real_floor(run_dir=None, data: Optional[str] = None, metrics: Optional[str] = None, n: Optional[int] = None,
               seed: Optional[int] = None, features: Optional[str] = None) -> Dict[str, Any]:
    """Half of the real data (the run's, or ``data``) scored against the other half."""
    names, tstr = split_names(metrics)
    if tstr:
        raise GanforgeError(f"{', '.join(tstr)} score a conditional generator, not --real-baseline")
    cfg = load_run_config(_run_dir(run_dir)) if run_dir is not None else resolve_config()
    if data is not None:
        cfg = cfg.replace(data={"name": data})
    elif run_dir is None:
        raise GanforgeError("--real-baseline needs a RUN_DIR or --data naming the data")
    if features is not None:
        cfg = cfg.replace(eval={"features": features})
    dataset = load_dataset(cfg.data)
    if getattr(dataset, "kind", "") == "text":
        from .metrics.text import text_floor

        if names:
            raise GanforgeError("text is scored with the text metrics; leave out --metrics")
        n = n if n is not None else cfg.eval.n
        return {"kind": "real-baseline", "n": n, "n_ref": len(dataset.held), "seed": seed or 0,
                **text_floor(dataset, n, seed or 0), "data": cfg.data.name}
    if getattr(dataset, "kind", "") == "audio":
        raise GanforgeError("audio has no --real-baseline of its own: every ganforge eval of an audio run reports the "
                            "reference clips' own numbers beside the samples' (inception_score_real, nn_train_*_real)")
    if not hasattr(dataset, "take"):
        raise GanforgeError(f"--real-baseline applies to image data; '{cfg.data.name}' is a toy distribution "
                            f"whose metrics are exact")
    return {**real_baseline(dataset, cfg.eval, n, seed, names), "data": cfg.data.name}


def _run_dir(run_dir) -> Path:
    path = Path(run_dir)
    if not path.is_dir():
        raise GanforgeError(f"no such run dir: {path}")
    return path


def _tstr(gan: LoadedGAN, data, ref, which: List[str], n: int, seed: int) -> Dict[str, Any]:
    """GAN-train / GAN-test (Shmelkov et al. 2018) on the run's labelled data."""
    if ref.extractor.classes != gan.n_classes:  # Inception features: the domain classifier reads the classes
        ref = reference(data, gan.config.replace(eval={"features": "classifier"}).eval)
    out: Dict[str, Any] = {}
    if "gan_test" in which:
        out.update(gan_test(gan, ref.extractor, n, seed))
    if "gan_train" in which:
        out.update(gan_train(gan, data.take(torch.arange(len(data))), data.y, n, seed))
        out["gan_train_tested_on"] = f"{len(data)} real images of {data.name} (also G's training data)"
    return out


def append_record(run_dir, record: Dict[str, Any]) -> Path:
    """Add ``record`` as one line of ``RUN/eval.jsonl`` (atomically: the file is whole or as it was)."""
    path = Path(run_dir) / "eval.jsonl"
    old = path.read_bytes() if path.exists() else b""
    write_atomic(path, lambda f: f.write(old + (json.dumps(record) + "\n").encode()))
    return path


def format_record(record: Dict[str, Any]) -> str:
    """The record as ``ganforge eval`` prints it: what was scored, the features, one metric a line."""
    others = f"its held-out {record['n_ref']} characters" if "js_1" in record else f"{record['n_ref']} others"
    unit = "training-text windows" if "js_1" in record else "images"
    what = (f"real vs real: {record['n']} {unit} of {record['data']} against {others}"
            if record["kind"] == "real-baseline" else
            f"{record['checkpoint']} (step {record['step']}): {record['n']} samples, seed {record['seed']}"
            + (f", against {record['n_ref']} {'held-out characters' if 'js_1' in record else 'real images'}"
               if record.get("n_ref") else ""))
    lines = [what]
    if "features" in record:
        acc = record.get("features_info", {}).get("heldout_accuracy")
        lines.append(f"features: {record['features']}" + (f" (held-out accuracy {acc:.1%})" if acc is not None else ""))
    rows = [(k, v) for k, v in record.items() if k not in BOOKKEEPING]
    width = max((len(k) for k, _ in rows), default=0)
    lines += [f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)
