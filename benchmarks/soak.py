"""Soak: one run of the default preset through a seeded schedule of faults, each followed by --resume,
then compared with an uninterrupted run of the same seed; or, with --elastic N, N torchrun runs that lose a rank.

    python -m benchmarks.soak                 # 50 faults, about 10 minutes on 2 cores
    python -m benchmarks.soak --faults 5 --steps 300
    python -m benchmarks.soak --elastic 30 --hog 1   # 30 elastic torchrun runs beside a CPU hog (~12 minutes)

Elastic mode: each run is `torchrun --nproc_per_node=2 --max-restarts=2` (c10d rendezvous) of a small
mnist-dcgan evaluated every 8 steps; at a seeded random step one rank is SIGKILLed (`kill`: a random rank at a
random moment; `kill-ckpt`: rank 0 inside a slowed checkpoint write; `kill-eval`: a random rank while rank 0
evaluates). torchrun restarts the group, which resumes by itself.
Reported per run: restarts, hung (past 5x the uninterrupted run's wall time, at least 120 s), steps redone,
bytes of metrics lost, and whether the final weights and optimiser states equal an uninterrupted run's.

Fault kinds, in a seeded random order (each kind at least once):
  kill          SIGKILL at a random moment
  kill-ckpt     SIGKILL inside a checkpoint write (the write is slowed; its temp file exists)
  kill-append   SIGKILL inside a metrics.jsonl append (the append is slowed; the line is half written)
  sigterm       SIGTERM: stop after the step, save, exit 143
  second        a second trainer started on the live run (must exit 2 and change nothing), then SIGKILL
  disk-full     the next checkpoint write fails with ENOSPC (must exit 1, previous checkpoint intact)

At the end: the final weights (G, D, EMA, both optimisers) must be bit-identical to the uninterrupted
run's, metrics.jsonl must hold exactly one line per logged step with the same numbers, every grid the
same bytes, and no kill may lose more steps than one checkpoint interval. Prints the table.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import harness

KINDS = ("kill", "kill-ckpt", "kill-append", "sigterm", "second", "disk-full")
HEADLINE = ("mode", "runs", "faults", "hog", "finished", "hung", "bit_identical", "bytes_lost", "weights_identical")
WALL_CLOCK = ("img_per_s", "elapsed_s")

# The trainer, with the faults' hooks: slow checkpoint writes (SOAK_SLOW_SAVE), slow metrics appends
# (SOAK_SLOW_APPEND), and a full disk at the next checkpoint write (SOAK_FULL_DISK).
_HARNESS = r"""
import errno, os, sys, time, torch
if os.environ.get("SOAK_SLOW_SAVE"):
    _save = torch.save
    def save(obj, f, *a, **k):
        _save(obj, f, *a, **k)
        f.flush()
        time.sleep(float(os.environ["SOAK_SLOW_SAVE"]))
    torch.save = save
if os.environ.get("SOAK_FULL_DISK"):
    def full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    torch.save = full
if os.environ.get("SOAK_SLOW_APPEND"):
    from ganforge.training import runlog
    class Slow:
        def __init__(self, f): self.f = f
        def write(self, text):
            half = len(text) // 2
            self.f.write(text[:half]); self.f.flush()
            time.sleep(float(os.environ["SOAK_SLOW_APPEND"]))
            return self.f.write(text[half:])
        def __getattr__(self, name): return getattr(self.f, name)
    runlog.open = lambda *a, **k: Slow(open(*a, **k))
from ganforge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def train_args(run_dir: Path, steps: int, every: int, sets=()) -> list:
    return ["train", "--run-dir", str(run_dir), "--steps", str(steps), "-q",
            "--set", f"log.checkpoint_every={every} steps", "--set", f"log.sample_every={every * 5} steps",
            *[a for kv in sets for a in ("--set", kv)]]


def _start(args, resume: bool, env_extra=None) -> subprocess.Popen:
    import os
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", _HARNESS, *args, *(["--resume"] if resume else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _logged(run_dir: Path) -> list:
    path = run_dir / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _last_step(run_dir: Path) -> int:
    return max((m["step"] for m in _logged(run_dir) if m["kind"] == "train"), default=0)


def _checkpoint_step(run_dir: Path) -> int:
    latest = run_dir / "checkpoints" / "latest"
    return int(latest.read_text().strip()[5:12]) if latest.exists() else 0


def _wait(cond, p, timeout=120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if cond():
            return True
        time.sleep(0.01)
    return False


def inject(kind: str, run_dir: Path, args: list, rng: random.Random) -> dict:
    """Start (or resume) the run, inject one fault of ``kind``; return what happened."""
    resume = (run_dir / "config.yaml").exists()
    env = {"kill-ckpt": {"SOAK_SLOW_SAVE": "0.3"}, "kill-append": {"SOAK_SLOW_APPEND": "0.3"},
           "disk-full": {"SOAK_FULL_DISK": "1"}}.get(kind, {})
    resumed_from = _checkpoint_step(run_dir) if resume else 0
    before = _last_step(run_dir)
    p = _start(args, resume, env)
    # new progress: past the furthest step logged so far (a resumed child first truncates the log to its
    # checkpoint, then logs again), so the child is inside its training loop
    started = _wait(lambda: _last_step(run_dir) > before, p)
    note = ""
    if kind in ("kill", "sigterm", "second") and started:
        time.sleep(rng.uniform(0.1, 1.0))
    if kind == "kill-ckpt":
        _wait(lambda: any((run_dir / "checkpoints").glob(".*.tmp")), p)
    if kind == "kill-append":
        path = run_dir / "metrics.jsonl"
        _wait(lambda: path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n"), p)
    if kind == "second" and p.poll() is None:
        other = subprocess.run([sys.executable, "-m", "ganforge", *args, "--resume"], capture_output=True, text=True)
        note = f"second exit {other.returncode}" + ("" if other.returncode == 2 and "is in use" in other.stderr
                                                     else f" UNEXPECTED: {other.stderr.strip()[-200:]}")
    at_fault = _last_step(run_dir)
    if p.poll() is None and kind != "disk-full":
        p.send_signal(signal.SIGTERM if kind == "sigterm" else signal.SIGKILL)
    _, err = p.communicate(timeout=180)
    expected = {"sigterm": 128 + signal.SIGTERM, "disk-full": 1}.get(kind, -signal.SIGKILL)
    ok = p.returncode == expected or (kind == "disk-full" and p.returncode == 0)  # finished before a checkpoint
    if not ok:
        note += f" exit {p.returncode}: {err.strip()[-300:]}"
    torn = any((run_dir / "checkpoints").glob(".*.tmp")) or (
        (run_dir / "metrics.jsonl").exists() and not (run_dir / "metrics.jsonl").read_bytes().endswith(b"\n"))
    return {"kind": kind, "resumed_from": resumed_from, "last_logged": at_fault, "exit": p.returncode, "ok": ok,
            "torn": torn, "note": note.strip()}


def final_state(run_dir: Path, step: int) -> dict:
    import torch
    return torch.load(run_dir / "checkpoints" / f"step-{step:07d}.pt", weights_only=True)


def compare(soaked: Path, clean: Path, step: int, stops: set) -> dict:
    """The soaked run against the uninterrupted one. A graceful stop (SIGTERM) also scores and draws the
    step it stopped at, so the soaked run may hold extra eval lines and grids at those ``stops``; everything
    of the uninterrupted run must be there, identical."""
    import torch
    a, b = final_state(soaked, step), final_state(clean, step)
    same = all(torch.equal(a[net][k], b[net][k]) for net in ("G", "D", "G_ema") if net in b for k in b[net])
    same = same and a["opt_g"]["state"].keys() == b["opt_g"]["state"].keys() and all(
        torch.equal(a[o]["state"][i][s], b[o]["state"][i][s]) for o in ("opt_g", "opt_d")
        for i in b[o]["state"] for s in b[o]["state"][i] if torch.is_tensor(b[o]["state"][i][s]))
    strip = lambda lines: [{k: v for k, v in m.items() if k not in WALL_CLOCK} for m in lines  # noqa: E731
                           if m["kind"] in ("train", "eval")]
    lines_a, lines_b = strip(_logged(soaked)), strip(_logged(clean))
    train = lambda lines: [m for m in lines if m["kind"] == "train"]  # noqa: E731
    steps = Counter(m["step"] for m in train(lines_a))
    lost = [m for m in lines_b if m not in lines_a]
    extra = [m for m in lines_a if m not in lines_b]
    grids = lambda d: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (d / "samples").glob("*.png")}  # noqa
    ga, gb = grids(soaked), grids(clean)
    extra_grids = [n for n in ga if n not in gb]
    return {"weights_identical": same, "train_lines_identical": train(lines_a) == train(lines_b),
            "one_line_per_step": all(c == 1 for c in steps.values()),
            "nothing_lost": not lost and all(ga.get(n) == h for n, h in gb.items()),
            "extras_only_at_graceful_stops": all(m["step"] in stops for m in extra)
            and all(int(n[5:12]) in stops for n in extra_grids),
            "extra_lines": len(extra), "extra_grids": len(extra_grids),
            "bytes_lost": sum(len(json.dumps(m)) + 1 for m in lost)}


EVAL_EVERY = 8  # elastic runs evaluate every this many steps (kill-eval strikes at those steps)
ELASTIC_SETS = ("data.limit=128", "train.batch_size=8", "model.g_features=8", "model.d_features=8",
                "conditional=false", "log.every=4", "dist_timeout=60", f"eval.every={EVAL_EVERY} steps",
                "eval.n_train=500")
ELASTIC_KINDS = ("kill", "kill-ckpt", "kill-eval")


def _tree(pid: int) -> list:
    import os
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return [pid] + [q for k in kids for q in _tree(k)]


def _rank(pid: int):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
        return None
    return next((int(e.split(b"=", 1)[1]) for e in env if e.startswith(b"RANK=")), None)


def _evaluating(run_dir: Path) -> bool:
    """Rank 0 is inside an evaluation: the last line is the train line of an evaluation step, and that step's
    eval line has not come yet."""
    lines = _logged(run_dir)
    return bool(lines) and lines[-1]["kind"] == "train" and lines[-1]["step"] % EVAL_EVERY == 0


def _torchrun(harness: Path, run_dir: Path, steps: int, every: int, elastic: bool) -> list:
    port = _free_port()
    launcher = (["--max-restarts=2", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}"] if elastic
                else ["--master_port", str(port)])
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", *launcher, str(harness),
            "train", "--preset", "mnist-dcgan", "--run-dir", str(run_dir), "--steps", str(steps), "-q",
            "--set", f"log.checkpoint_every={every} steps", "--set", f"log.sample_every={every * 5} steps",
            *[a for kv in ELASTIC_SETS for a in ("--set", kv)]]


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def elastic(runs: int, steps: int, every: int, seed: int, root: Path, say=print) -> dict:
    """``runs`` elastic torchrun runs, each losing a rank once; see the module's docstring."""
    import os
    rng, env = random.Random(seed), {**os.environ, "OMP_NUM_THREADS": "1"}
    script = root / "harness.py"
    script.write_text(_HARNESS)
    clean, t0 = root / "clean", time.monotonic()
    subprocess.run(_torchrun(script, clean, steps, every, False), env=env, capture_output=True, check=True)
    base = time.monotonic() - t0
    deadline = max(5 * base, 120.0)
    events = []
    for i in range(runs):
        kind = rng.choice(ELASTIC_KINDS)
        at = rng.randrange(every, steps - every)
        run_dir = root / f"run{i}"
        p = subprocess.Popen(_torchrun(script, run_dir, steps, every, True), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             env={**env, **({"SOAK_SLOW_SAVE": "0.3"} if kind == "kill-ckpt" else {})})
        t0, killed, hung, redone = time.monotonic(), None, False, 0
        while p.poll() is None:
            if killed is None and _last_step(run_dir) >= at and (
                    kind == "kill" or (kind == "kill-ckpt" and any((run_dir / "checkpoints").glob(".*.tmp")))
                    or (kind == "kill-eval" and _evaluating(run_dir))):
                rank = 0 if kind == "kill-ckpt" else rng.randrange(2)
                victim = next((w for w in _tree(p.pid)[1:] if _rank(w) == rank), None)
                if victim is not None:
                    redone = _last_step(run_dir) - _checkpoint_step(run_dir)
                    os.kill(victim, signal.SIGKILL)
                    killed = f"rank {rank} after step {_last_step(run_dir)}"
            if time.monotonic() - t0 > deadline:
                hung = True
                for pid in _tree(p.pid)[::-1]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                break
            time.sleep(0.02)
        _, err = p.communicate()
        seconds = time.monotonic() - t0
        same = {}
        if p.returncode == 0:
            same = compare(run_dir, clean, steps, set())
        events.append({"kind": kind, "killed": killed, "exit": p.returncode, "hung": hung,
                       "restarts": err.count("torchrun restart"), "seconds": round(seconds, 1),
                       "redone": redone, "weights_identical": same.get("weights_identical", False),
                       "bytes_lost": same.get("bytes_lost")})
        e = events[-1]
        say(f"  run {i + 1:>2}/{runs}: {kind:<9} {killed or 'no kill':<22} exit {e['exit']:>4} restarts {e['restarts']} "
            f"{e['seconds']:>6.1f} s{' HUNG' if hung else ''} identical {e['weights_identical']}")
    return {"events": events, "uninterrupted_s": base}


def soak(faults: int, steps: int, every: int, seed: int, root: Path, say=print, sets=()) -> dict:
    rng = random.Random(seed)
    schedule = list(KINDS) + [rng.choice(KINDS) for _ in range(max(0, faults - len(KINDS)))]
    rng.shuffle(schedule)
    schedule = schedule[:faults]
    soaked, clean = root / "soaked", root / "clean"
    args = train_args(soaked, steps, every, sets)
    events = []
    for i, kind in enumerate(schedule):
        if _checkpoint_step(soaked) >= steps:
            say(f"# the run finished after {i} faults; raise --steps for more")
            break
        events.append(inject(kind, soaked, args, rng))
        say(f"  fault {i + 1:>2}/{len(schedule)}: {kind:<11} resumed from {events[-1]['resumed_from']:>5}, "
            f"last logged {events[-1]['last_logged']:>5}, exit {events[-1]['exit']:>4} "
            f"{'ok' if events[-1]['ok'] else 'FAIL'} {events[-1]['note']}")
    final_from = _checkpoint_step(soaked)
    last = subprocess.run([sys.executable, "-m", "ganforge", *args, "--resume"], capture_output=True, text=True)
    whole = subprocess.run([sys.executable, "-m", "ganforge", *train_args(clean, steps, every, sets)],
                           capture_output=True, text=True)
    assert last.returncode == 0 and whole.returncode == 0, (last.stderr[-500:], whole.stderr[-500:])
    # steps redone after each fault: from the checkpoint the next start resumed at to the last step logged before
    starts = [e["resumed_from"] for e in events[1:]] + [final_from]
    redone = [max(0, e["last_logged"] - start) for e, start in zip(events, starts)]
    stops = {starts[i] for i, e in enumerate(events) if e["kind"] == "sigterm"}  # where each graceful stop saved
    return {"events": events, "redone": redone, **compare(soaked, clean, steps, stops)}


def main() -> None:
    ap = harness.parser(__doc__)
    ap.add_argument("--faults", type=int, default=50)
    ap.add_argument("--steps", type=int, default=None,
                    help="the run's budget (default 4000; elastic mode 40)")
    ap.add_argument("--every", type=int, default=None, help="checkpoint interval in steps (default 50; elastic 4)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault schedule and its timing")
    ap.add_argument("--elastic", type=int, default=0, metavar="N", help="N elastic torchrun runs instead")
    ap.add_argument("--hog", type=int, default=0, help="busy-loop processes beside the runs (load)")
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hog)]
    try:
        if args.elastic:
            _main_elastic(args)
        else:
            _main_faults(args)
    finally:
        for h in hogs:
            h.kill()


def _main_elastic(args) -> None:
    steps, every = args.steps or 40, args.every or 4
    print(harness.header(f"{args.elastic} elastic runs, {steps} steps, checkpoints every {every}, {args.hog} hog(s)"))
    with tempfile.TemporaryDirectory() as d:
        r = elastic(args.elastic, steps, every, args.seed, Path(d))
    ev = r["events"]
    done = [e for e in ev if e["exit"] == 0]
    print(f"\nruns {len(ev)}: finished {len(done)}, hung {sum(e['hung'] for e in ev)}, failed "
          f"{sum(e['exit'] != 0 and not e['hung'] for e in ev)}; restarts {Counter(e['restarts'] for e in ev)}; "
          f"final weights bit-identical to the uninterrupted run's: {sum(e['weights_identical'] for e in ev)}; "
          f"bytes lost {sum(e['bytes_lost'] or 0 for e in done)}; steps redone max {max(e['redone'] for e in ev)}; "
          f"seconds {min(e['seconds'] for e in ev):.0f}-{max(e['seconds'] for e in ev):.0f} "
          f"(uninterrupted {r['uninterrupted_s']:.0f})")
    harness.record("soak", {"mode": "elastic", "runs": len(ev), "hog": args.hog, "steps": steps, "every": every,
                            "finished": len(done), "hung": sum(e["hung"] for e in ev),
                            "bit_identical": sum(e["weights_identical"] for e in ev),
                            "bytes_lost": sum(e["bytes_lost"] or 0 for e in done),
                            "restarts": [e["restarts"] for e in ev], "seconds": [e["seconds"] for e in ev],
                            "uninterrupted_s": round(r["uninterrupted_s"], 1)}, args)


def _main_faults(args) -> None:
    args.steps, args.every = args.steps or 4000, args.every or 50
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        r = soak(args.faults, args.steps, args.every, args.seed, Path(d))
    ev = r["events"]
    print(f"\n{'fault kind':<12} {'injected':>8} {'as expected':>11} {'torn file left':>14}")
    for kind in KINDS:
        mine = [e for e in ev if e["kind"] == kind]
        print(f"{kind:<12} {len(mine):>8} {sum(e['ok'] for e in mine):>11} {sum(e['torn'] for e in mine):>14}")
    print(f"\nfaults {len(ev)}, resumes {len(ev)}, steps redone: total {sum(r['redone'])}, max per fault "
          f"{max(r['redone'] or [0])} (checkpoint interval {args.every}), bytes lost {r['bytes_lost']}")
    print(f"final weights (G, D, EMA, optimisers) bit-identical: {r['weights_identical']}; train lines identical: "
          f"{r['train_lines_identical']}; one line per logged step: {r['one_line_per_step']}; every line and grid "
          f"of the uninterrupted run present and identical: {r['nothing_lost']}; extra eval lines / grids from "
          f"graceful stops: {r['extra_lines']} / {r['extra_grids']} (only at those steps: "
          f"{r['extras_only_at_graceful_stops']}); {time.time() - t0:.0f} s")
    harness.record("soak", {"mode": "faults", "faults": len(ev), "steps": args.steps, "every": args.every,
                            "seed": args.seed, "as_expected": sum(e["ok"] for e in ev),
                            "redone_total": sum(r["redone"]), "redone_max": max(r["redone"] or [0]),
                            "bytes_lost": r["bytes_lost"],
                            **{k: r[k] for k in ("weights_identical", "train_lines_identical", "one_line_per_step",
                                                 "nothing_lost")}, "seconds": round(time.time() - t0)}, args)


if __name__ == "__main__":
    main()
