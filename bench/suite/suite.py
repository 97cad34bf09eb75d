#!/usr/bin/env python3
"""bench/suite/suite.py — `make bench`: every speed claim of Mus2Pic, measured side by side against
its reference in one run, each section bounded in time; prints a table per section, stores the raw
results (RESULTS/<section>.json) and rewrites BENCHMARKS.md and the charts under docs/charts/.

    tools/refvenv/bin/python bench/suite/suite.py --build build [--results DIR] [--only a,b]
                                                  [--report-only] [--section-s 120]

Sections (each ≤ --section-s seconds of wall time, killed by timeout otherwise and then reported as
"not measured: timed out"): machine, sgemm, decode, analysis_lengths, analysis_accuracy, sonic,
tokenizer, nn, lcm_ref, lcm, lcm_batch, model_cli, variations_py, variations, repeat, service, queue_growth, where.
--only reruns some sections and rebuilds the report from the stored results of the others.
The driver needs Python (it is the benchmark harness); the product does not.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
PY = os.path.join(REPO, "tools", "refvenv", "bin", "python")
WORK = os.environ.get("M2P_BENCH_WORK", "/tmp/m2p-bench-suite")
MID_MODEL = os.environ.get("M2P_BENCH_MODEL", "/tmp/m2p-mid-lcm")
SIZE = int(os.environ.get("M2P_BENCH_SIZE", "128"))  # lcm image side in the model sections
# the CLI-driven model sections (model_cli, variations, where) run the whole binary several times:
# they use the small model (bench/suite/make_mid_model.py --small)
SMALL_MODEL = os.environ.get("M2P_BENCH_SMALL_MODEL", "/tmp/m2p-small-lcm")
CLI_SIZE = int(os.environ.get("M2P_BENCH_CLI_SIZE", "64"))  # image side for those sections
SECTION_S = 120.0


# --- helpers -----------------------------------------------------------------------------------

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()


LAST_CPU = [0.0]  # CPU seconds (user + sys) of the last run()'s process tree


def run(cmd, timeout, env=None, cwd=REPO, stdin=None):
    """Runs argv (no shell) in its own process group; returns (rc, out, err, wall). rc 124 on timeout.
    The CPU seconds of the finished process tree land in LAST_CPU[0] (the honest figure on a loaded machine)."""
    t0 = time.monotonic()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if timeout <= 1:
        return 124, "", "no time left in the section", 0.0
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, stdin=subprocess.DEVNULL if stdin is None else stdin)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = 124
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return rc, out or "", err or "", time.monotonic() - t0


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def mmm(xs, fmt="{:.3f}"):
    """median (min–max, n) of a list as text."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    if len(xs) == 1:
        return (fmt + " (n=1)").format(xs[0])
    return (fmt + " (" + fmt + "–" + fmt + ", n={})").format(statistics.median(xs), min(xs), max(xs), len(xs))


def time_line(stderr):
    """Parses the CLI's '  time: fetch 1.23s decode 0.40s ...' line into a dict."""
    for line in stderr.splitlines()[::-1]:
        if line.strip().startswith("time:"):
            return {k: float(v) for k, v in re.findall(r"(\w+) ([0-9.]+)s", line)}
    return {}


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def demo_song(ctx, seconds, ext="ogg", seed=7):
    """A synthetic song of `seconds` s from the product's own synthesiser, encoded like a download."""
    os.makedirs(os.path.join(WORK, "songs"), exist_ok=True)
    base = os.path.join(WORK, "songs", f"song{seconds}s-{seed}")
    out = base + "." + ext
    if os.path.exists(out):
        return out
    rc, o, e, _ = run([ctx.bin, "demo-song", base + ".wav", "--seconds", str(seconds), "--seed", str(seed),
                       "--tempo", "124"], 120)
    if rc != 0:
        raise RuntimeError("demo-song failed: " + (e or o).strip()[-300:])
    if ext != "wav":
        rc, o, e, _ = run(["ffmpeg", "-loglevel", "error", "-y", "-i", base + ".wav", "-ac", "2", "-c:a", "libvorbis",
                           "-q:a", "4", out], 120)
        if rc != 0:
            raise RuntimeError("ffmpeg failed: " + e.strip()[-300:])
    return out


class Ctx:
    def __init__(self, build, results):
        self.build = build
        self.results = results
        self.bin = os.path.join(build, "mus2pic")
        self.benchdir = os.path.join(build, "bench")


def bench_bin(ctx, name):
    p = os.path.join(ctx.benchdir, name)
    if not os.path.exists(p):
        rc, o, e, _ = run(["cmake", "--build", ctx.build, "--target", name], 600)
        if rc != 0 or not os.path.exists(p):
            raise NotMeasured(f"{name} does not build: " + (o + e).strip().splitlines()[-1][:200] if (o + e).strip()
                              else f"{name} does not build")
    return p


class NotMeasured(Exception):
    pass


def tail(text, n=40):
    return "\n".join(text.rstrip().splitlines()[-n:])


# --- sections ----------------------------------------------------------------------------------

def s_machine(ctx, dl):
    r = {"title": "Machine", "cmd": "(read from /proc, CMakeCache.txt, ldd)"}
    cache = {}
    try:
        for line in open(os.path.join(ctx.build, "CMakeCache.txt")):
            m = re.match(r"(\w+):\w+=(.*)", line)
            if m:
                cache[m.group(1)] = m.group(2)
    except OSError:
        pass
    cc = cache.get("CMAKE_C_COMPILER", "cc")
    _, ccv, _, _ = run([cc, "--version"], 10)
    _, ldd, _, _ = run(["ldd", ctx.bin], 10)
    blas = [l.split("=>")[1].split("(")[0].strip() for l in ldd.splitlines() if "blas" in l.lower() and "=>" in l]
    real = [os.path.realpath(b) for b in blas]
    _, tv, _, _ = run([PY, "-c", "import torch, diffusers, librosa; print(torch.__version__, diffusers.__version__, "
                       "librosa.__version__)"], 60)
    gpu = "none used: the product runs on the CPU (no CUDA build); every figure below is CPU-only"
    mem = ""
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    _, commit, _, _ = run(["git", "rev-parse", "--short", "HEAD"], 10)
    r["rows"] = [
        ["CPU", cpu_model()],
        ["cores (nproc)", str(os.cpu_count())],
        ["memory", mem],
        ["compiler", ccv.splitlines()[0] if ccv else cc],
        ["build type / flags", cache.get("CMAKE_BUILD_TYPE", "?") + " " + cache.get("CMAKE_C_FLAGS_RELEASE", "")],
        ["BLAS", ", ".join(real) or "?"],
        ["reference stack", "torch / diffusers / librosa " + tv.strip()],
        ["accelerator", gpu],
        ["commit", commit.strip()],
    ]
    r["header"] = ["", ""]
    return r


def s_sgemm(ctx, dl):
    probe = os.path.join(ctx.results, "sgemm_probe")
    r = {"title": "Floor: sgemm peak (OpenBLAS)",
         "cmd": "cc -O2 bench/suite/sgemm_probe.c -lopenblas; OPENBLAS_NUM_THREADS=T sgemm_probe 1024 7"}
    if not os.path.exists(probe):
        raise NotMeasured("sgemm_probe was not compiled (run-bench.sh compiles it)")
    rows, data = [], {}
    for rnd in range(3):  # interleaved 1 and 2 threads, three rounds
        for t in ("1", "2"):
            rc, o, e, _ = run([probe, "1024", "7"], dl.left(), env={"OPENBLAS_NUM_THREADS": t, "OMP_NUM_THREADS": t})
            if rc == 0:
                j = json.loads(o)
                data.setdefault(t, []).append(j["gflops_best"])
    for t, xs in sorted(data.items()):
        rows.append([f"{t} thread(s), n=1024, best of 7 per round", mmm(xs, "{:.1f}") + " GFLOP/s"])
    r["rows"], r["header"] = rows, ["sgemm", "GFLOP/s: median of rounds (min–max)"]
    r["data"] = {"gflops": {t: max(xs) for t, xs in data.items()}, "all": data}
    r["notes"] = ("The best 2-thread figure is the floor used below. The lcm engineer measured 207 GFLOP/s "
                  "(n=2048, 2 threads) on an idle moment of this machine; under today's load the probe sees a "
                  "fraction of that, which is the same slowdown every other figure here suffers.")
    return r


def s_decode(ctx, dl):
    b = bench_bin(ctx, "bench_decode")
    cmd = [b, "--runs", "5", "--seconds", "60"]
    rc, o, e, w = run(cmd, dl.left())
    r = {"title": "Decode: 1-minute song to mono 22050 Hz, vs the ffmpeg CLI", "cmd": " ".join(cmd)}
    if rc != 0:
        raise NotMeasured(f"rc {rc}: " + tail(e, 3))
    rows = []
    for line in o.splitlines():
        m = re.match(r"(\w+)\s+([0-9.]+)s\s+([0-9.]+)s \|\s+([0-9.]+)s\s+([0-9.]+)s \|\s+([0-9.]+)x", line)
        if m:
            rows.append([m.group(1)] + [m.group(i) + " s" for i in range(2, 6)] + [m.group(6) + "×"])
    r["rows"], r["header"] = rows, ["format", "m2p wall", "m2p CPU", "ffmpeg wall", "ffmpeg CPU",
                                    "CPU ratio ffmpeg/m2p"]
    r["raw"] = o
    r["data"] = {"rows": rows}
    r["notes"] = "Median of 5 per format (bench_decode alternates ours and ffmpeg per format)."
    return r


def _analysis_set(ctx, dl, which):
    b = bench_bin(ctx, "bench_analysis")
    d = os.path.join(WORK, "analysis", which)
    if not os.path.exists(os.path.join(d, "truth.json")):
        os.makedirs(d, exist_ok=True)
        if which == "lengths":
            rc, o, e, _ = run([b, "gen-lengths", d], dl.left())
        else:
            rc, o, e, _ = run([b, "gen", d, "--count", "24", "--seconds", "30", "--seed", "3"], dl.left())
        if rc != 0:
            shutil.rmtree(d, ignore_errors=True)
            raise NotMeasured("song generation failed: " + tail(e, 2))
        for f in sorted(os.listdir(d)):
            if f.endswith(".wav"):
                w = os.path.join(d, f)
                rc, _, e, _ = run(["ffmpeg", "-loglevel", "error", "-y", "-i", w, "-ac", "2", "-c:a", "libvorbis",
                                   "-q:a", "4", w[:-4] + ".ogg"], 120)
                if rc == 0:
                    os.remove(w)
        t = open(os.path.join(d, "truth.json")).read().replace('.wav"', '.ogg"')
        open(os.path.join(d, "truth.json"), "w").write(t)
    return b, d


def s_analysis_lengths(ctx, dl):
    b, d = _analysis_set(ctx, dl, "lengths")
    truth = os.path.join(d, "truth.json")
    ours, ref = os.path.join(ctx.results, "lengths-ours.json"), os.path.join(ctx.results, "lengths-ref.json")
    c1 = [b, "run", truth, "--runs", "5", "--out", ours]
    sub = os.path.join(d, "truth-upto240.json")
    tj = json.load(open(truth))
    tj["songs"] = [x for x in tj["songs"] if "600" not in x["file"]]
    json.dump(tj, open(sub, "w"))
    c2 = [PY, "bench/analysis_reference.py", sub, "--runs", "1", "--modes", "30,full", "--out", ref]
    rc, o, e, _ = run(c1, dl.left())
    if rc != 0:
        raise NotMeasured(f"bench_analysis rc {rc}: " + tail(e, 2))
    rc2, o2, e2, _ = run(c2, dl.left())
    r = {"title": "Analysis vs song length: ours (whole song) vs librosa (first 30 s and whole song)",
         "cmd": " ".join(c1) + "\n" + " ".join(c2) + "\npython3 bench/analysis_compare.py lengths OURS REF"}
    oj = json.load(open(ours))
    data = {"ours": {x["file"]: x for x in oj["results"]}}
    rows = []
    if rc2 == 0:
        rj = json.load(open(ref))
        data["ref"] = {x["file"]: x for x in rj["results"]}
        _, cmp_out, _, _ = run(["python3", "bench/analysis_compare.py", "lengths", ours, ref], 30)
        r["raw"] = cmp_out
    else:
        r["notes_extra"] = f"librosa: not measured ({'timed out' if rc2 == 124 else 'rc %d' % rc2})"
    for f, x in sorted(data["ours"].items(), key=lambda kv: kv[1]["duration_s"]):
        row = [f, "%.0f s" % x["duration_s"], "%.3f s (%.3f–%.3f)" % (x["wall_median_s"], x.get("wall_min_s", x["wall_median_s"]), x.get("wall_max_s", x["wall_median_s"])),
               "%.3f s" % x["cpu_median_s"]]
        rf = data.get("ref", {}).get(f)
        if rf:
            for m in ("30", "full"):
                if m in rf:
                    row.append("%.2f s / %.2f s CPU (%.1f×)" % (rf[m]["wall_median_s"], rf[m]["cpu_median_s"],
                                                               rf[m]["cpu_median_s"] / x["cpu_median_s"]))
                else:
                    row.append("—")
        else:
            row += ["—", "—"]
        rows.append(row)
    r["rows"] = rows
    r["header"] = ["song", "length", "ours wall, median of 5 (min–max)", "ours CPU", "librosa 30 s: wall / CPU (CPU ratio)",
                   "librosa whole: wall / CPU (CPU ratio)"]
    r["data"] = data
    r["notes"] = ("Ours: decode + the whole analysis of the whole song, 5 runs. librosa: one run each (its "
                  "whole-song run of the 10-minute song alone would take most of the 2-minute budget, so librosa "
                  "runs on the songs up to 4 min); the ratio is of CPU seconds, "
                  "the honest figure with other programs on the cores.")
    return r


def s_analysis_accuracy(ctx, dl):
    b, d = _analysis_set(ctx, dl, "synth")
    truth = os.path.join(d, "truth.json")
    ours, ref = os.path.join(ctx.results, "synth-ours.json"), os.path.join(ctx.results, "synth-ref.json")
    c1 = [b, "run", truth, "--runs", "1", "--out", ours]
    c2 = [PY, "bench/analysis_reference.py", truth, "--runs", "1", "--modes", "full", "--out", ref]
    rc, o, e, _ = run(c1, dl.left())
    if rc != 0:
        raise NotMeasured(f"bench_analysis rc {rc}: " + tail(e, 2))
    rc2, o2, e2, _ = run(c2, dl.left())
    if rc2 != 0:
        raise NotMeasured(f"librosa reference {'timed out' if rc2 == 124 else 'rc %d' % rc2}")
    _, cmp_out, _, _ = run(["python3", "bench/analysis_compare.py", "synth", ours, ref], 30)
    r = {"title": "Analysis accuracy on the project's 24 synthetic songs (30 s, 55–200 BPM, all styles)",
         "cmd": " ".join(c1) + "\n" + " ".join(c2) + "\npython3 bench/analysis_compare.py synth OURS REF"}
    rows = []
    for line in cmp_out.splitlines():
        if re.search(r"Acc1|MIREX|ratio", line, re.I) and not line.startswith("song"):
            rows.append([line.strip()])
    r["rows"], r["header"] = rows, ["summary lines of analysis_compare.py"]
    r["raw"] = cmp_out
    return r


def s_sonic(ctx, dl):
    b = bench_bin(ctx, "bench_sonic")
    cmd = [b, "--runs", "5"]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0:
        raise NotMeasured(f"rc {rc}: " + tail(e, 2))
    rows, sizes = [], {}
    for line in o.splitlines():
        m = re.match(r"\s*(\d+)x(\d+)\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+) ms\s+([0-9.]+)x", line)
        if m:
            rows.append([f"{m.group(1)}²", m.group(3) + " ms", m.group(4) + " ms", m.group(5) + " ms", m.group(6) + "×"])
            sizes[int(m.group(1))] = {"one": float(m.group(3)), "all": float(m.group(4)), "cpu": float(m.group(5))}
    r = {"title": "Renderer sonic: ms per poster by size (requests of 4 posters, median of 5)", "cmd": " ".join(cmd),
         "rows": rows, "header": ["size", "1 thread wall/poster", "all cores wall/poster", "CPU/poster",
                                  "1 thr / all"], "raw": o, "data": {"sizes": sizes}}
    return r


def s_tokenizer(ctx, dl):
    b = bench_bin(ctx, "bench_clip_tokenizer")
    cmd = [PY, "tools/tokenizer/bench.py", b, "200"]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0:
        raise NotMeasured(f"rc {rc}: " + tail(e, 2))
    rows = [[l] for l in o.strip().splitlines()]
    return {"title": "CLIP tokenizer: C vs HF tokenizers and open_clip", "cmd": " ".join(cmd), "rows": rows,
            "header": ["output"], "raw": o}


def need_model(path=None):
    path = path or MID_MODEL
    if not os.path.exists(os.path.join(path, "unet", "config.json")):
        raise NotMeasured(f"no model at {path} (run-bench.sh builds it with bench/suite/make_mid_model.py)")


def s_nn(ctx, dl):
    need_model()
    b = bench_bin(ctx, "bench_nn")
    cmd = [PY, "tools/nn/bench_reference.py", "--bench", b, "--model", MID_MODEL, "--size", str(SIZE), "--runs", "2"]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0:
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e, 2))
    j = json.loads(o[o.index("{"):])
    rows = []
    for k, v in j.items():
        rows.append([k, json.dumps(v)[:160]])
    return {"title": f"CLIP text encoder (full size) and VAE decoder (mid size, {SIZE}²) vs diffusers/transformers",
            "cmd": " ".join(cmd), "rows": rows, "header": ["field", "value"], "data": j, "raw": tail(e, 12)}


def s_lcm_ref(ctx, dl):
    """The PyTorch half of bench_lcm, run alone so that each half fits the section budget under load."""
    need_model()
    ref = os.path.join(WORK, "lcm-ref")
    for ext in (".json", ".safetensors"):
        if os.path.exists(ref + ext):
            os.remove(ref + ext)
    cmd = [PY, "tools/nn/bench_lcm_reference.py", "--model", MID_MODEL, "--out", ref, "--size", str(SIZE)]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0 or not os.path.exists(ref + ".json"):
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e, 2))
    j = json.load(open(ref + ".json"))
    rows = [[k, "%.3f" % v if isinstance(v, float) else str(v)] for k, v in j.items()]
    return {"title": f"diffusers side of the LCM comparison (mid-size model, {SIZE}²)", "cmd": " ".join(cmd),
            "rows": rows, "header": ["field (seconds, bytes)", "value"], "data": j}


def s_lcm(ctx, dl):
    need_model()
    b = bench_bin(ctx, "bench_lcm")
    if not os.path.exists(os.path.join(WORK, "lcm-ref.json")):
        raise NotMeasured("the diffusers half (section lcm_ref) did not finish")
    cmd = [b, "--model", MID_MODEL, "--python", PY, "--ref", os.path.join(WORK, "lcm-ref"), "--size", str(SIZE),
           "--reuse-reference"]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0:
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e, 3))
    rows, data = [], {}
    for line in o.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not cells[0].startswith("---") and cells[0] != "measure":
            rows.append(cells)
            if cells[0].startswith("CPU seconds") and rows[:-1]:
                data[rows[-2][0] + " / CPU"] = cells[1:]
            else:
                data[cells[0]] = cells[1:]
    m = re.search(r"UNet step: ([0-9.]+) GMACs = ([0-9.]+) GFLOP", o)
    r = {"title": f"LCM engine vs diffusers (mid-size random model, {SIZE}², CPU fp32)", "cmd": " ".join(cmd),
         "rows": rows, "header": ["measure", "mus2pic (C)", "diffusers", "C/torch"], "data": data,
         "raw": "\n".join(l for l in o.splitlines() if not l.startswith("|"))}
    if m:
        data["unet_gflop"] = float(m.group(2))
    r["notes"] = ("bench_lcm --reuse-reference: the diffusers column was measured by the previous section (lcm_ref) "
                  "on the same inputs a couple of minutes earlier (together they do not fit one 2-minute section "
                  "under this load); each part is timed once, so read the CPU-seconds rows. The 'sum of parts' rows "
                  "compose whole images from the parts as bench_lcm does.")
    return r


def s_lcm_batch(ctx, dl):
    """Batch of 4 vs 4 single UNet steps in one process (bench_batch), before/after Winograd."""
    need_model()
    b = bench_bin(ctx, "bench_batch")
    cmd = [b, "--model", MID_MODEL, "--size", str(SIZE), "--rounds", "3", "--configs", "before,after,blin", "--json"]
    rc, o, e, _ = run(cmd, dl.left())
    if rc != 0:
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e, 3))
    j = json.loads(o[o.index("{"):])
    names = {"before": "before (im2col everywhere)", "after": "after (Winograd from 16x16)",
             "blin": "after + batched linears (not reproducible)"}
    rows = []
    for k, v in j["configs"].items():
        rows.append([names.get(k, k), "%.2f / %.2f s" % (v["b4_wall"], v["b4_cpu"]),
                     "%.2f / %.2f s" % (v["s4_wall"], v["s4_cpu"]), "%.3f / %.3f" % (v["ratio_wall"], v["ratio_cpu"]),
                     "%.3f" % v["b4_over_b1_cpu"], "%.1f" % v["gflop_per_cpu_s_b4"],
                     "bitwise" if v["bitwise"] else "no (%.2g)" % v["max_diff"]])
    return {"title": f"UNet batch of 4 vs 4 single runs, one process (mid-size model, {SIZE}²)", "cmd": " ".join(cmd),
            "rows": rows, "header": ["config", "batch 4 wall / CPU", "4 singles wall / CPU",
                                     "img/s b4 ÷ img/s singles (wall / CPU)", "b4 ÷ b1 per step (CPU)",
                                     "GFLOP per CPU-s (b4)", "image in batch == alone"],
            "data": j, "notes": "medians of 3 interleaved rounds; GFLOP per image step: %.2f" % j["gflop_per_image_step"]}


def lcm_ready(stderr):
    """(load s, warm-up s) from the lcm backend's verbose 'renderer ready' line, or (None, None)."""
    m = re.search(r"load ([0-9.]+) s, warm-up ([0-9.]+) s", stderr)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


def s_variations_py(ctx, dl):
    """The diffusers half of the variations section: from_pretrained + first image, then N = 1, 2, 4 batched."""
    need_model(SMALL_MODEL)
    pcmd = [PY, os.path.join(HERE, "diffusers_variations.py"), "--model", SMALL_MODEL, "--size", str(CLI_SIZE), "--steps",
            "4", "--ns", "1,2,4", "--rounds", "5", "--deadline-s", str(int(max(10, dl.left() - 25)))]
    rc, o, e, _ = run(pcmd, dl.left())
    if rc != 0 or not o.strip():
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e, 2))
    py = json.loads(o.strip().splitlines()[-1])
    rows = [["from_pretrained (per request, the Python way)", mmm(py["load_s"], "{:.2f}") + " s"],
            ["first image after loading", mmm(py["first_image_s"], "{:.2f}") + " s"]]
    for n, xs in py["batch"].items():
        rows.append([f"warm pipeline, {n} image(s) batched", mmm(xs, "{:.2f}") + " s"])
    return {"title": f"diffusers: load per request and batched variations (small model, {CLI_SIZE}², 4 steps)",
            "cmd": " ".join(pcmd), "rows": rows, "header": ["measure", "median (min–max, n)"], "data": py}


def s_variations(ctx, dl):
    """Batched N vs sequential: the C engine through the real CLI (render step time), diffusers in one process."""
    need_model(SMALL_MODEL)
    song = demo_song(ctx, 30, "wav")
    ns = [1, 4, 2]  # N=1 and N=4 first in each round: the claim's pair
    c = {str(n): [] for n in ns}
    cnet = {str(n): [] for n in ns}
    ccpu = {str(n): [] for n in ns}
    dd = tempfile.mkdtemp(prefix="m2p-var-", dir=WORK)
    base = [ctx.bin, "make", song, "--renderer", "lcm", "--size", f"{CLI_SIZE}x{CLI_SIZE}", "--steps", "4", "-v",
            "--data-dir", dd, "--set", "model=" + SMALL_MODEL, "--out", os.path.join(dd, "out")]
    pp = os.path.join(ctx.results, "variations_py.json")
    pj = json.load(open(pp)) if os.path.exists(pp) else {}
    py = pj.get("data") if pj.get("status") == "ok" else None
    rc = 0
    pcmd = [pj.get("cmd", "(section variations_py)")]
    rounds = 0
    while dl.left() > 15 and rounds < 5:
        for n in ns:
            rc2, o2, e2, w = run(base + ["-n", str(n), "--seed", str(rounds + 1)], dl.left())
            t = time_line(e2)
            if rc2 == 0 and "render" in t:
                c[str(n)].append(t["render"])
                ld, wu = lcm_ready(e2)
                if ld is not None:
                    cnet[str(n)].append(t["render"] - ld - wu)
                ccpu[str(n)].append(LAST_CPU[0])
        rounds += 1
    rows = []
    for n in sorted(ns):
        k = str(n)
        row = [k, mmm(c[k], "{:.2f}") + " s", mmm(cnet[k], "{:.2f}") + " s", mmm(ccpu[k], "{:.1f}") + " s",
               "%.3f" % (n / med(cnet[k])) if cnet[k] else "—",
               "%.2f×" % (n * med(cnet["1"]) / med(cnet[k])) if cnet[k] and cnet["1"] else "—"]
        if py and py["batch"].get(k):
            pb = med(py["batch"][k])
            row += [mmm(py["batch"][k], "{:.2f}") + " s", "%.3f" % (n / pb),
                    "%.2f×" % (n * med(py["batch"]["1"]) / pb) if py["batch"].get("1") else "—"]
        else:
            row += ["not measured" + (": " + pj.get("status", "no variations_py result") if not py else ""), "—", "—"]
        rows.append(row)
    shutil.rmtree(dd, ignore_errors=True)
    r = {"title": f"Variations: N images batched vs one at a time (lcm, small model, {CLI_SIZE}², 4 steps)",
         "cmd": " ".join(base).replace(dd, "TMP") + " -n N   (render step of the CLI's time: line, minus the logged load + warm-up)\n"
                + " ".join(pcmd),
         "rows": rows, "header": ["N", "C render step (median, min–max)", "C render minus load/warm-up",
                                  "C process CPU s", "C images/s", "C speed-up vs N × single",
                                  "diffusers batched (warm pipeline)", "diffusers images/s",
                                  "diffusers speed-up vs N × single"],
         "data": {"c": cnet, "c_render": c, "c_cpu": ccpu, "py": py, "c_rounds": rounds}}
    r["notes"] = ("C: one CLI process per request, rounds interleave N=1,2,4; the render step includes opening the "
                  "model and a warm-up pass, which the CLI logs and which is subtracted for the per-image figures. "
                  "diffusers (section variations_py, run just before, same small model): one warm pipeline, rounds interleave N=1,2,4 (num_images_per_prompt=N). Sequential = "
                  "N × the N=1 median in both.")
    return r


def s_model_cli(ctx, dl):
    """First request (process maps the model) vs warm request; the Python way loads per request."""
    need_model(SMALL_MODEL)
    song = demo_song(ctx, 30, "wav")
    dd = tempfile.mkdtemp(prefix="m2p-model-", dir=WORK)
    base = [ctx.bin, "make", song, "--renderer", "lcm", "--size", f"{CLI_SIZE}x{CLI_SIZE}", "--steps", "4", "-n", "1",
            "-v", "--data-dir", dd, "--set", "model=" + SMALL_MODEL, "--out", os.path.join(dd, "out")]
    walls, renders, loads, warms, cpus = [], [], [], [], []
    while dl.left() > 15 and len(walls) < 5:
        rc, o, e, w = run(base + ["--seed", str(len(walls) + 1)], dl.left())
        if rc != 0:
            if walls:
                break
            raise NotMeasured(f"mus2pic make --renderer lcm {'timed out' if rc == 124 else 'rc %d' % rc}: "
                              + tail(e, 1)[:200])
        walls.append(w)
        cpus.append(LAST_CPU[0])
        renders.append(time_line(e).get("render"))
        ld, wu = lcm_ready(e)
        loads.append(ld)
        warms.append(wu)
    shutil.rmtree(dd, ignore_errors=True)
    net = [r - l - w for r, l, w in zip(renders, loads, warms) if None not in (r, l, w)]
    r = {"title": f"Model: one CLI process per request (opens the model each time), lcm small model, {CLI_SIZE}²",
         "cmd": " ".join(base).replace(dd, "TMP"),
         "rows": [["whole process wall (30 s song: analysis + prompt + model + 1 image)", mmm(walls, "{:.2f}") + " s"],
                  ["whole process CPU seconds", mmm(cpus, "{:.1f}") + " s"],
                  ["model open (map + bind + fp16→fp32) — paid by a cold process only", mmm(loads, "{:.2f}") + " s"],
                  ["warm-up pass — paid by a cold process only", mmm(warms, "{:.2f}") + " s"],
                  ["the image itself (render step minus the two above) — what a warm server pays", mmm(net, "{:.2f}") + " s"]],
         "header": ["measure", "median (min–max, n)"],
         "data": {"walls": walls, "renders": renders, "loads": loads, "warms": warms, "net": net, "cpus": cpus}}
    r["notes"] = ("`mus2pic serve` opens the model once per process (with --warmup at start), so its requests pay "
                  "only the last row; the CLI pays all three. The Python way (diffusers from_pretrained per request) "
                  "is in the LCM and Variations sections (diffusers load and first image).")
    return r


def s_repeat(ctx, dl):
    song = demo_song(ctx, 240, "ogg")
    kbps = 8000
    srvdir = tempfile.mkdtemp(prefix="m2p-song-", dir=WORK)
    pf, sf = os.path.join(srvdir, "port"), os.path.join(srvdir, "stats.json")
    srv = subprocess.Popen(["python3", os.path.join(HERE, "song_server.py"), "--song", song, "--duration", "240",
                            "--port-file", pf, "--stats-file", sf, "--kbps", str(kbps)], start_new_session=True)
    try:
        for _ in range(100):
            if os.path.exists(pf):
                break
            time.sleep(0.05)
        port = open(pf).read().strip()
        url = f"http://127.0.0.1:{port}/song"

        def stats():
            return json.load(open(sf))

        first, repeat, req_first, req_rep, bytes_first, tfirst, trep = [], [], [], [], [], [], []
        rounds = 0
        while dl.left() > 30 and rounds < 5:
            dd = tempfile.mkdtemp(prefix="m2p-rep-", dir=WORK)
            cmd = [ctx.bin, "analyze", url, "--data-dir", dd, "--set", "unsafe_test_loopback=true"]
            s0 = stats()
            rc, o, e, w = run(cmd, dl.left())
            s1 = stats()
            if rc != 0:
                raise NotMeasured(f"first analyze rc {rc}: " + tail(e, 3))
            first.append(w)
            tfirst.append(time_line(e))
            req_first.append(s1["total"] - s0["total"])
            bytes_first.append(s1["media_bytes"] - s0["media_bytes"])
            rc, o, e, w = run(cmd, dl.left())
            s2 = stats()
            if rc != 0:
                raise NotMeasured(f"repeat analyze rc {rc}: " + tail(e, 3))
            repeat.append(w)
            trep.append(time_line(e))
            req_rep.append(s2["total"] - s1["total"])
            shutil.rmtree(dd, ignore_errors=True)
            rounds += 1
    finally:
        os.killpg(srv.pid, signal.SIGKILL)
        srv.wait()
        shutil.rmtree(srvdir, ignore_errors=True)
    size = os.path.getsize(song)
    rows = [["first request (download + decode + analysis)", mmm(first, "{:.2f}") + " s", mmm(req_first, "{:.0f}"),
             "%.1f MB" % (med(bytes_first) / 1e6)],
            ["repeat (cache hits)", mmm(repeat, "{:.2f}") + " s", mmm(req_rep, "{:.0f}"), "0"],
            ["saved per repeated URL", "%.2f s (%.0f×)" % (med(first) - med(repeat), med(first) / med(repeat)), "", ""]]
    steps = sorted({k for t in tfirst + trep for k in t})
    for k in steps:
        rows.append([f"  step {k}: first / repeat",
                     "%s / %s" % (mmm([t.get(k) for t in tfirst], "{:.2f}"), mmm([t.get(k) for t in trep], "{:.2f}")),
                     "", ""])
    return {"title": f"Repeated song: a 4-minute OGG ({size / 1e6:.1f} MB) from a loopback page throttled to "
                     f"{kbps / 1000:.0f} Mbit/s, through the real binary",
            "cmd": f"bench/suite/song_server.py --kbps {kbps}; {ctx.bin} analyze http://127.0.0.1:PORT/song "
                   "--data-dir FRESH --set unsafe_test_loopback=true   (then the same again)",
            "rows": rows, "header": ["request", "wall (median, min–max, n)", "network requests", "media bytes"],
            "data": {"first": first, "repeat": repeat, "req_first": req_first, "req_rep": req_rep,
                     "tfirst": tfirst, "trep": trep}}


def _service(ctx, dl, jobs, extra=()):
    cmd = ["python3", "bench/bench_service.py", "--bin", ctx.bin, "--jobs", str(jobs), "--workers", "2"] + list(extra)
    rc, o, e, w = run(cmd, dl.left())
    return cmd, rc, o, e, w


def _parse_service(o):
    d = {}
    m = re.search(r"submit\s*: p50\s+([0-9.]+) ms\s+p99\s+([0-9.]+) ms", o)
    if m:
        d["submit_p50"], d["submit_p99"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"status\s*: p50\s+([0-9.]+) ms\s+p99\s+([0-9.]+) ms\s+\((\d+) reads", o)
    if m:
        d["status_p50"], d["status_p99"], d["reads"] = float(m.group(1)), float(m.group(2)), int(m.group(3))
    m = re.search(r"throughput:\s*([0-9.]+) jobs/s end to end \(([0-9.]+) s", o)
    if m:
        d["jobs_s"], d["all_s"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"outcome\s*: (.*)", o)
    if m:
        d["outcome"] = m.group(1).strip()
    m = re.search(r"memory\s*: (.*)", o)
    if m:
        d["memory"] = m.group(1).strip()
    m = re.search(r"websocket\s*: (.*)", o)
    if m:
        d["websocket"] = m.group(1).strip()
    return d


def s_service(ctx, dl):
    cmd, rc, o, e, w = _service(ctx, dl, 100, ["--ws-clients", "100"] if _service_has_ws() else [])
    if rc != 0:
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e or o, 3))
    d = _parse_service(o)
    rows = [["submit latency p50 / p99", "%.1f / %.1f ms" % (d.get("submit_p50", float("nan")), d.get("submit_p99", float("nan")))],
            ["status read p50 / p99", "%.2f / %.2f ms (%s reads)" % (d.get("status_p50", float("nan")),
                                                                   d.get("status_p99", float("nan")), d.get("reads", "?"))],
            ["throughput", "%s jobs/s (all in %s s)" % (d.get("jobs_s", "?"), d.get("all_s", "?"))],
            ["outcome", d.get("outcome", "?")],
            ["server memory", d.get("memory", "?")],
            ["100 WebSocket clients watching", d.get("websocket", "see the next section "
                                                                  "(bench/suite/ws_watch.py)")]]
    return {"title": "Service: 100 concurrent job submissions (sonic 256², 2 workers)", "cmd": " ".join(cmd),
            "rows": rows, "header": ["measure", "value"], "raw": o, "data": d}


def s_service_ws(ctx, dl):
    cmd = ["python3", os.path.join(HERE, "ws_watch.py"), "--bin", ctx.bin, "--jobs", "100", "--workers", "2",
           "--timeout", str(int(max(10, dl.left() - 15)))]
    rc, o, e, w = run(cmd, dl.left())
    if rc != 0 or not o.strip():
        raise NotMeasured(f"{'timed out' if rc == 124 else 'rc %d' % rc}: " + tail(e or o, 2))
    d = json.loads(o.strip().splitlines()[-1])
    rows = [["clients connected", "%d of %d" % (d.get("connected", 0), d["jobs"])],
            ["final state seen exactly once / twice / never (lost)", "%d / %d / %d" % (
                d.get("finals_once", 0), d.get("finals_twice", 0), d.get("lost", 0))],
            ["final statuses", json.dumps(d.get("statuses"))],
            ["events pushed", str(d.get("events"))],
            ["WebSocket handshake p50 / max", "%.1f / %.1f ms" % (d.get("connect_ms_p50", float("nan")),
                                                                d.get("connect_ms_max", float("nan")))],
            ["100 jobs submitted and watched to the end", "%.1f s" % d.get("all_s", float("nan"))],
            ["server memory (VmHWM) idle / peak", "%.0f / %.0f MiB" % (d.get("rss_idle_kb", 0) / 1024,
                                                                     d.get("rss_peak_kb", 0) / 1024)],
            ["/metrics m2p_websockets_total / open after", "%s / %s" % (d.get("m2p_websockets_total"),
                                                                       d.get("m2p_websockets_open"))]]
    if d.get("errors"):
        rows.append(["client errors (first 5)", "; ".join(d["errors"])])
    return {"title": "Service: 100 WebSocket clients watching 100 jobs (sonic 256², 2 workers)", "cmd": " ".join(cmd),
            "rows": rows, "header": ["measure", "value"], "data": d}


def _service_has_ws():
    try:
        return "--ws-clients" in open(os.path.join(REPO, "bench", "bench_service.py")).read()
    except OSError:
        return False


def s_queue_growth(ctx, dl):
    pts = {}
    for jobs in (10, 25, 50):
        if dl.left() < 20:
            break
        cmd, rc, o, e, w = _service(ctx, dl, jobs)
        if rc == 0:
            pts[jobs] = _parse_service(o)
    if not pts:
        raise NotMeasured("no run finished in time")
    rows = [[str(j), "%.1f s" % d.get("all_s", float("nan")), "%.2f" % d.get("jobs_s", float("nan")),
             "%.1f ms" % d.get("submit_p99", float("nan")), "%.2f ms" % d.get("status_p99", float("nan"))]
            for j, d in sorted(pts.items())]
    return {"title": "Queue latency vs load (jobs submitted at once; sonic 256², 2 workers)",
            "cmd": "python3 bench/bench_service.py --bin BIN --jobs {10,25,50} --workers 2",
            "rows": rows, "header": ["jobs at once", "time until the last finished", "jobs/s", "submit p99",
                                     "status p99"], "data": {str(k): v for k, v in pts.items()}}


def s_where(ctx, dl):
    """Where the time goes in one `make` request: per-step times from the CLI's time: line."""
    song = demo_song(ctx, 240, "ogg")
    variants = [("sonic, 4 posters 1024²", ["--renderer", "sonic", "-n", "4"])]
    if os.path.exists(os.path.join(SMALL_MODEL, "unet", "config.json")):
        variants.append((f"lcm small model, 1 image {CLI_SIZE}²", ["--renderer", "lcm", "--size", f"{CLI_SIZE}x{CLI_SIZE}", "-n",
                                                            "1", "--set", "model=" + SMALL_MODEL]))
    res = {v[0]: [] for v in variants}
    walls = {v[0]: [] for v in variants}
    rounds = 0
    while dl.left() > 25 and rounds < 5:
        for name, args in variants:
            dd = tempfile.mkdtemp(prefix="m2p-where-", dir=WORK)
            rc, o, e, w = run([ctx.bin, "make", song, "--data-dir", dd, "--out", os.path.join(dd, "o")]
                              + args, dl.left())
            shutil.rmtree(dd, ignore_errors=True)
            if rc == 0:
                res[name].append(time_line(e))
                walls[name].append(w)
        rounds += 1
    rows = []
    for name in res:
        steps = sorted({k for t in res[name] for k in t}, key=lambda s: ["fetch", "decode", "analyze", "prompt",
                                                                          "render", "store"].index(s)
                       if s in ("fetch", "decode", "analyze", "prompt", "render", "store") else 9)
        for s in steps:
            rows.append([name, s, mmm([t.get(s) for t in res[name]], "{:.3f}") + " s"])
        rows.append([name, "whole process (wall)", mmm(walls[name], "{:.3f}") + " s"])
    return {"title": "Where the time goes: one `mus2pic make` of a 4-minute OGG (fresh data folder each run)",
            "cmd": f"{ctx.bin} make SONG.ogg --data-dir FRESH [--renderer sonic -n 4 | --renderer lcm "
                   f"--size {CLI_SIZE}x{CLI_SIZE} -n 1 --set model={SMALL_MODEL}]   (per-step times from the stderr 'time:' line)",
            "rows": rows, "header": ["request", "step", "median (min–max, n)"],
            "data": {"steps": {k: [t for t in v] for k, v in res.items()}, "walls": walls}}


SECTIONS = [
    ("machine", s_machine), ("sgemm", s_sgemm), ("decode", s_decode), ("analysis_lengths", s_analysis_lengths),
    ("analysis_accuracy", s_analysis_accuracy), ("sonic", s_sonic), ("tokenizer", s_tokenizer), ("nn", s_nn),
    ("lcm_ref", s_lcm_ref), ("lcm", s_lcm), ("lcm_batch", s_lcm_batch), ("model_cli", s_model_cli), ("variations_py", s_variations_py), ("variations", s_variations), ("repeat", s_repeat),
    ("service", s_service), ("service_ws", s_service_ws), ("queue_growth", s_queue_growth), ("where", s_where),
]


def run_section(ctx, name, fn, budget):
    dl = Deadline(budget)
    la0, t0 = loadavg(), time.time()
    print(f"\n=== {name} (≤ {budget:.0f} s, load average {la0})", flush=True)
    try:
        r = fn(ctx, dl)
        r["status"] = "ok"
    except NotMeasured as ex:
        r = {"status": "not measured: " + str(ex)}
    except Exception as ex:  # noqa: BLE001 — a broken section must not stop the suite
        r = {"status": "not measured: %s: %s" % (type(ex).__name__, str(ex)[:300])}
    r["name"] = name
    r["wall_s"] = time.time() - t0
    r["when"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0))
    r["load_before"], r["load_after"] = la0, loadavg()
    if r["wall_s"] > budget + 5:
        r["over_budget"] = True
    json.dump(r, open(os.path.join(ctx.results, name + ".json"), "w"), indent=1, default=str)
    print_table(r)
    return r


def print_table(r):
    print(f"--- {r.get('title', r['name'])}: {r['status']} ({r['wall_s']:.0f} s, load {r['load_before']} → "
          f"{r['load_after']})")
    for row in r.get("rows", []):
        print("  " + " | ".join(str(c) for c in row))


def main():
    # OpenMP threads that spin between parallel regions steal the cores from OpenBLAS's and from the
    # neighbours on a shared machine (bench_batch at 128², load 3.5: 0.51 s per batch-4 step spinning,
    # 0.24 s passive); every engine measured here (ours, PyTorch) gets the same setting.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--results", default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--section-s", type=float, default=SECTION_S)
    ap.add_argument("--md", default=os.path.join(REPO, "BENCHMARKS.md"))
    ap.add_argument("--charts", default=os.path.join(REPO, "docs", "charts"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    results = os.path.abspath(args.results or os.path.join(build, "bench-results"))
    os.makedirs(results, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    ctx = Ctx(build, results)
    only = [s for s in args.only.split(",") if s]
    t0 = time.time()
    if not args.report_only:
        for name, fn in SECTIONS:
            if only and name not in only:
                continue
            run_section(ctx, name, fn, args.section_s)
    all_r = {}
    for name, _ in SECTIONS:
        p = os.path.join(results, name + ".json")
        if os.path.exists(p):
            all_r[name] = json.load(open(p))
    sys.path.insert(0, HERE)
    import report  # noqa: E402
    report.write(all_r, args.md, args.charts, build, time.time() - t0)
    print(f"\nwrote {args.md} and charts in {args.charts} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
