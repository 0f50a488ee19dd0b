"""``RUN/report.html``: one self-contained static page about a run (every image embedded as a data URI;
no scripts, no server, no network)."""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from .api import Run, load
from .checkpoint import write_atomic
from .config import TOY_DATA
from .data import load_dataset
from .errors import GanforgeError
from .logs import log
from .metric_spec import columns, is_score, label
from .metrics import real_baseline
from .models import ARCH_KIND, grid_labels
from .report import grid_step, plot_curves, save_grid, save_toy_plot

MAX_TIMELINE = 12


def _img(path: Path, alt: str, width: Optional[int] = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    w = f' style="max-width:{width}px"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{w}>'


def _fmt(key: str, value: Any, total: Optional[int] = None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    if key == "modes_covered":
        return f"{int(value)}/{total}" if total else str(int(value))
    if key == "hq_fraction":
        return f"{100 * value:.1f}%"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def metric_rows(run: Run, floor: Optional[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The table's rows: evaluations logged in training, those of ``ganforge eval`` (eval.jsonl), and the
    real-vs-real floor, each a dict with ``label`` and the metric values."""
    n = run.config.eval.n if run.config.data.name in TOY_DATA else run.config.eval.n_train
    rows = [{"label": f"step {m['step']} (in training, n={n})", **m}
            for m in run.metrics if m.get("kind") == "eval"]
    path = run.dir / "eval.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        label = (f"real vs real (ganforge eval --real-baseline, n={rec.get('n')})" if rec.get("kind") == "real-baseline"
                 else f"step {rec.get('step')} (ganforge eval, n={rec.get('n')})")
        rows.append({"label": label, **rec})
    if floor is not None:
        rows.append({"label": f"real vs real (floor, n={floor.get('n')})", **floor})
    return rows


def _table(rows: List[Dict[str, Any]]) -> str:
    keys = [k for k in columns() if any(k in r for r in rows)]
    for r in rows:
        keys += [k for k, v in r.items() if k not in keys and is_score(k) and k != "label"
                 and isinstance(v, (int, float)) and not isinstance(v, bool)]
    head = "".join(f'<th title="{html.escape(label(k))}">{html.escape(k)}</th>' for k in keys)
    body = []
    for r in rows:
        cls = ' class="floor"' if r.get("kind") == "real-baseline" else ""
        cells = "".join(f"<td>{_fmt(k, r.get(k), r.get('modes_total'))}</td>" for k in keys)
        body.append(f"<tr{cls}><th scope=\"row\">{html.escape(r['label'])}</th>{cells}</tr>")
    return (f'<table id="metrics"><thead><tr><th>evaluation</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _floor(run: Run, verbose: bool) -> Optional[Dict[str, Any]]:
    """The real-vs-real floor at the in-training evaluation's count (or None when no metric applies)."""

    toy = run.config.data.name in TOY_DATA
    if run.config.model.arch in ARCH_KIND:  # text and audio carry their real rows in their own metrics
        return None
    data = load_dataset(run.config.data)
    n = run.config.eval.n if toy else run.config.eval.n_train
    try:
        return real_baseline(data, run.config.eval, n, names=None, verbose=verbose)
    except GanforgeError as e:  # e.g. an unlabelled folder without Inception weights
        log.info(f"note: no real-vs-real floor in the report: {e}")
        return None


def _players(run: Run, n: int = 8) -> str:
    """Audio runs: the first ``n`` clips of the fixed noise from the latest checkpoint, each a player."""
    import io

    from .data.audio import write_wav

    if ARCH_KIND.get(run.config.model.arch) != "audio":
        return ""
    try:
        gan = load(run.dir)
    except GanforgeError:
        return ""
    z = gan.fixed_z[:n] if gan.fixed_z is not None else gan.noise(n, 0)
    y = grid_labels(z.shape[0], gan.n_classes)
    out = []
    for i, clip in enumerate(gan.generate(z, y)):
        buf = io.BytesIO()
        write_wav(clip, gan.sample_rate, buf)
        name = gan.classes[int(y[i])] if y is not None else f"sample {i}"
        src = base64.b64encode(buf.getvalue()).decode()
        out.append(f'<figure><audio controls src="data:audio/wav;base64,{src}"></audio>'
                   f"<figcaption>{html.escape(name)}</figcaption></figure>")
    return f'<div id="players"><p>Step {gan.step}, fixed noise:</p>{"".join(out)}</div>'


def _best_picture(run: Run) -> Optional[Path]:
    """``RUN/best.png``: the fixed-noise picture of ``checkpoints/best.pt`` (the best evaluation's G)."""

    best = run.dir / "checkpoints" / "best.pt"
    if not best.exists():
        return None
    out = run.dir / "best.png"
    if out.exists() and out.stat().st_mtime >= best.stat().st_mtime:
        return out
    gan = load(best)
    if gan.is_image:  # the grid's own noise and (conditional) labels, as training drew them
        z = gan.fixed_z
        return save_grid(gan.generate(z, grid_labels(z.shape[0], gan.n_classes)), out)
    ev = run.config.eval
    x = gan.generate(gan.noise(ev.n, ev.seed))
    return save_toy_plot(x, load_dataset(run.config.data), out, title=f"best: step {gan.step}")


def _events_html(events: list) -> str:
    """The diagnostics events as a table, or a sentence saying there were none."""
    if not events:
        return '<p id="events">No diagnostics events: D did not overpower G, G\'s loss did not explode, ' \
               'no collapse was detected, no NaN.</p>'
    rows = "".join(f"<tr><td>{m.get('step')}</td><td>{html.escape(str(m.get('event')))}</td>"
                   f"<td>{html.escape(str(m.get('message') or m.get('why') or ''))}</td></tr>" for m in events)
    return f'<table id="events"><thead><tr><th>step</th><th>event</th><th>message</th></tr></thead>' \
           f"<tbody>{rows}</tbody></table>"


_STYLE = """body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
figure { display: inline-block; margin: .5em; vertical-align: top; text-align: center; }
figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #eee; }
#timeline img { max-width: 240px; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; }
thead th { background: #f4f4f4; } tbody th, #events td:last-child { text-align: left; font-weight: normal; }
tr.floor { background: #eef6ee; } pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: .85em; }
.note { color: #555; font-size: .9em; }
"""


def _pictures(run: Run) -> str:
    """The final, best and real pictures as figures."""
    final = run.dir / "final.png" if (run.dir / "final.png").exists() else run.last_grid
    out = []
    for path, caption in ((final, f"final: step {run.step} (fixed noise{', EMA of G' if run.config.ema else ''})"),
                          (_best_picture(run), "best evaluation (checkpoints/best.pt)"),
                          (run.dir / "samples" / "real.png", "real data")):
        if path is not None and path.exists():
            out.append(f"<figure>{_img(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>")
    for path, caption in ((run.dir / "final.txt", f"final: step {run.step} (fixed noise)"),
                          (run.dir / "samples" / "real.txt", "real text")):  # text runs
        if path.exists():
            lines = html.escape(path.read_text(encoding="utf-8", errors="replace"))
            out.append(f'<figure><pre class="text">{lines}</pre>'
                       f'<figcaption>{html.escape(caption)}</figcaption></figure>')
    return "".join(out)


def _timeline(grids: List[Path]) -> str:
    """At most MAX_TIMELINE grids, evenly spaced, first and last kept."""
    if len(grids) > MAX_TIMELINE:
        idx = sorted({round(i * (len(grids) - 1) / (MAX_TIMELINE - 1)) for i in range(MAX_TIMELINE)})
        grids = [grids[i] for i in idx]
    return "".join(f"<figure>{_img(p, p.stem)}<figcaption>step {grid_step(p)}</figcaption></figure>" for p in grids)


def _note(rows: List[Dict[str, Any]], toy: bool) -> str:
    features = next((r.get("features") for r in rows if r.get("features")), None)
    return ("Toy data: the metrics are computed against the exact distribution; the floor row scores exact "
            "draws, so it shows the metrics' own sampling noise." if toy else
            f"Image metrics on the features of <b>{html.escape(str(features))}</b>; numbers from different "
            f"extractors or sample counts do not compare. The floor row scores n real images against n other "
            f"real images (n as in the in-training evaluations): what a perfect generator would get at that "
            f"count." if features else "")


def write_report(run_dir: Path, floor: bool = True, verbose: bool = True) -> Path:
    """Write ``run_dir/report.html`` (and refresh ``curves.png``, ``best.png``); return its path."""
    run = Run(run_dir)
    lines = run.metrics
    if not any(m.get("kind") == "train" for m in lines):
        raise GanforgeError(f"nothing to report yet: {run.dir / 'metrics.jsonl'} has no training lines")
    cfg = run.config
    curves = plot_curves(lines, run.dir / "curves.png", title=f"{run.dir.name} ({cfg.preset})")
    rows = metric_rows(run, _floor(run, verbose) if floor else None)
    pictures, timeline = _pictures(run) + _players(run), _timeline(run.grids)
    events_html = _events_html([m for m in lines if m.get("kind") == "event"])
    note = _note(rows, cfg.data.name in TOY_DATA)
    last = [m for m in lines if m.get("kind") == "train"][-1]
    summary = (f"{run.step} steps, epoch {run.epoch:g}, {run.elapsed:.0f} s of training; last logged: "
               f"D loss {last['d_loss']:.4g}, G loss {last['g_loss']:.4g}, D(x) {last['d_real']:.3f}, "
               f"D(G(z)) {last['d_fake']:.3f}, {last.get('img_per_s', 0):.0f} img/s")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ganforge report: {html.escape(run.dir.name)}</title>
<style>
{_STYLE}</style></head><body>
<h1>ganforge run <code>{html.escape(run.dir.name)}</code></h1>
<p>Preset <b>{html.escape(cfg.preset)}</b>{(": " + html.escape(cfg.description)) if cfg.description else ""}.<br>
Loss <b>{html.escape(cfg.loss)}</b>, data <b>{html.escape(cfg.data.name)}</b>, seed {cfg.seed}.<br>
<span id="summary">{html.escape(summary)}</span></p>
<h2>Samples</h2>
<div id="samples">{pictures}</div>
<h2>Training curves</h2>
<figure>{_img(curves, "training curves")}</figure>
<h2>Metrics</h2>
{_table(rows) if rows else '<p id="metrics">No evaluations were logged (eval.every: off?); run ganforge eval.</p>'}
<p class="note">{note}</p>
<h2>Diagnostics</h2>
{events_html}
<h2>Timeline of the fixed-noise grids</h2>
<div id="timeline">{timeline}</div>
<h2>Config</h2>
<pre id="config">{html.escape(yaml.safe_dump(cfg.to_dict(), sort_keys=False))}</pre>
<p class="note">Written by ganforge from {html.escape(str(run.dir))}/metrics.jsonl.</p>
</body></html>
"""
    out = run.dir / "report.html"
    write_atomic(out, lambda f: f.write(page.encode()))
    return out
