"""bench.py - `make bench`'s driver: runs every measurement, prints one table and writes it
as CSV and markdown into OUT (out/bench). Started by scripts/bench, which sets up the
environment (PG* for a throwaway PostgreSQL, SHARED, BUILD, BENCH_QUICK, OUT).

Each figure is the median of ROUNDS runs taken in this one invocation; ratios compare
figures measured minutes apart on the same machine. Rows from other measurements come
from every executable in bench/extra/ (see scripts/bench).
"""
import csv
import glob
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ["SHARED"]
BUILD = os.environ.get("BUILD", "build")
OUT = os.environ.get("OUT", os.path.join(ROOT, "out/bench"))
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = 1 if QUICK else 3
PY = "/usr/bin/python3"  # Debian's, where python3-torch and python3-pil live
TOOLS = os.path.join(ROOT, BUILD, "tools")
NCPU = os.cpu_count() or 1
ADS = os.path.join(SHARED, "data/sop-ads")
EFF_W = os.path.join(SHARED, "golden/tf_efficientnet_b0_ns",
                     "tf_efficientnet_b0_ns.random.safetensors")
MNV2_W = os.path.join(SHARED, "models/mobilenetv2_100.coral_imagenet.safetensors")
WEIGHTS = {"mobilenetv2_100": MNV2_W, "tf_efficientnet_b0_ns": EFF_W}
# Both sides of the embed comparison run with the same OpenMP setting, the one
# pipeline-run picks for itself (pipeline/main.c).
TORCH_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

COLUMNS = ["section", "case", "ours", "peer", "peer_value", "unit", "ratio", "per_core_ratio",
           "goal", "met"]
rows = []


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def sh(cmd, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run(cmd, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (cmd[0], r.returncode, r.stderr[-2000:]))
    return r.stdout, r.stderr


def values(text, key):
    return [float(v) for v in re.findall(r"\b%s=([0-9.]+)" % key, text)]


def med(v):
    return statistics.median(v) if v else float("nan")


def add(section, case, ours, peer="", peer_value=None, unit="photos/s", ratio=None,
        per_core=None, goal="", met=""):
    def f(x):
        if x is None or x == "":
            return ""
        return "%.3g" % x if abs(x) < 100 else "%.0f" % x
    rows.append({"section": section, "case": case, "ours": f(ours), "peer": peer,
                 "peer_value": f(peer_value), "unit": unit,
                 "ratio": f(ratio) + ("x" if ratio is not None else ""),
                 "per_core_ratio": f(per_core) + ("x" if per_core is not None else ""),
                 "goal": goal, "met": met})


def verdict(x, floor):
    return "" if x is None else ("yes" if x >= floor else "no")


# ---- resize ----

def mogrify(files, side, threads, warm):
    """ImageMagick as a careful user runs it: one mogrify over all files, the JPEG decoder
    told the size wanted (jpeg:size, twice the output as ImageMagick advises). One timed
    pass (after a warm-up pass when WARM): (photos/s, CPU ms per photo)."""
    with tempfile.TemporaryDirectory() as d:
        cmd = ["mogrify", "-path", d, "-define", "jpeg:size=%dx%d" % (2 * side, 2 * side),
               "-auto-orient", "-resize", "%dx%d!" % (side, side), "-format", "ppm"] + files
        env = {"MAGICK_THREAD_LIMIT": str(threads)}
        if warm:
            sh(cmd, env)
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        sh(cmd, env)
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    return len(files) / wall, 1000 * cpu / len(files)


def bench_resize(sop, big):
    stage_rate = {}
    for name, files in (("132 sample photos (<=500 px)", sop), ("4000x3000 JPEGs", big)):
        for side in (224, 512):
            for t in (1, 2):
                log("resize %s -> %d, %d thread(s)" % (name, side, t))
                # the three tools take turns, round by round, so that they see the same
                # load from whatever else runs on the machine
                o_out = p_out = ""
                im_runs = []
                for r in range(ROUNDS):
                    o_out += sh([os.path.join(TOOLS, "resize_bench"), "-s", str(side), "-t",
                                 str(t), "-r", "1"] + files)[0]
                    p_out += sh([PY, os.path.join(ROOT, "bench/peer_resize.py"), str(side),
                                 str(t), "1"] + files)[0]
                    im_runs.append(mogrify(files, side, t, r == 0))
                ours, ours_cpu = med(values(o_out, "photos_per_s")), med(
                    values(o_out, "cpu_ms_per_photo"))
                pil, pil_cpu = med(values(p_out, "photos_per_s")), med(
                    values(p_out, "cpu_ms_per_photo"))
                im, im_cpu = med([x[0] for x in im_runs]), med([x[1] for x in im_runs])
                big_case = name.startswith("4000")
                case = "%s -> %d, %d thread%s" % (name, side, t, "s" if t > 1 else "")
                add("resize", case, ours, "Pillow", pil, ratio=ours / pil,
                    per_core=pil_cpu / ours_cpu, goal=">=2x per core" if big_case else "",
                    met=verdict(pil_cpu / ours_cpu, 2) if big_case else "")
                add("resize", case, ours, "ImageMagick", im, ratio=ours / im,
                    per_core=im_cpu / ours_cpu, goal=">=5x per core" if big_case else "",
                    met=verdict(im_cpu / ours_cpu, 5) if big_case else "")
                stage_rate[(name, side, t)] = (ours, ours_cpu)
    return stage_rate


# ---- embed ----

def model_bench(bb, size, batch, threads, cl, iters, max_forward=None):
    """(photos/s, overhead %, CPU ms per photo); one forward per batch unless MAX_FORWARD
    (0: the model's own split)."""
    cmd = [os.path.join(TOOLS, "model_bench"), "-b", bb, "-w", WEIGHTS[bb], "-s", str(size),
           "-n", str(batch), "-t", str(threads), "-i", str(iters),
           "-f", str(batch if max_forward is None else max_forward)] + (["-c"] if cl else [])
    out, _ = sh(cmd, TORCH_ENV)
    return (med(values(out, "photos_per_s")), med(values(out, "overhead_pct")),
            med(values(out, "cpu_ms_per_photo")))


def peer_model(bb, size, batch, threads, layout, iters, env=None):
    e = dict(TORCH_ENV)
    e.update(env or {})
    out, _ = sh([PY, os.path.join(ROOT, "bench/peer_model.py"), bb, WEIGHTS[bb], str(size),
                 str(batch), str(threads), layout, str(iters)], e)
    return med(values(out, "photos_per_s"))


# glibc serves large buffers with fresh mmaps that are zeroed on every forward; the
# pipeline keeps them (model.cpp's buffer cache). This is the same effect for the peer.
MALLOC_KEPT = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "68719476736",
               "MALLOC_TOP_PAD_": "1073741824"}


def bench_embed():
    batches = (8,) if QUICK else (1, 8, 32)
    for bb in ("mobilenetv2_100", "tf_efficientnet_b0_ns"):
        for size in (224, 512):
            configs = [(b, NCPU, True) for b in batches]
            if not QUICK:
                configs += [(8, NCPU, False), (8, 1, True)]
            for batch, t, cl in configs:
                log("embed %s %d batch %d threads %d cl %d" % (bb, size, batch, t, cl))
                ours, over, _ = model_bench(bb, size, batch, t, cl, ROUNDS + 1)
                case = "%s %dpx batch %d, %d thread%s, %s" % (
                    bb, size, batch, t, "s" if t > 1 else "", "channels-last" if cl else "NCHW")
                add("embed", case + ": overhead around the forward", over, unit="%",
                    goal="<5%", met="yes" if over < 5 else "no")
                if (batch, t, cl) != (8, NCPU, True):
                    add("embed", case, ours)
                    continue
                goal = ">=1.5x" if size == 512 else ""
                peers = [("python3-torch eager", "cl", None),
                         ("python3-torch frozen+optimize_for_inference", "jit", None)]
                if not QUICK and size == 512:
                    peers.append(("python3-torch eager, glibc keeps big buffers", "cl",
                                  MALLOC_KEPT))
                auto, _, _ = model_bench(bb, size, 16, t, cl, ROUNDS + 1, 0)
                add("embed", "%s %dpx batch 16 as the pipeline runs it (split to ~0.4 Mpx "
                    "per forward)" % (bb, size), auto)
                for pname, layout, env in peers:
                    peer = peer_model(bb, size, batch, t, layout, ROUNDS + 1, env)
                    add("embed", case, ours, pname, peer, ratio=ours / peer, goal=goal,
                        met=verdict(ours / peer, 1.5) if goal and env is None else "")


# ---- store ----

def bench_store():
    n = 3000 if QUICK else 20000
    log("store %d rows" % n)
    out, _ = sh([os.path.join(TOOLS, "store_bench"), str(n)], {"ROOT": ROOT})
    rates = {}
    for line in out.splitlines():
        m = re.match(r"(\w+)\s+(.*?)\s+batch\s+(\d+)\s+(\d+) rows/s", line)
        if m:
            rates[(m.group(1), m.group(2).strip(), int(m.group(3)))] = float(m.group(4))
    for batch in (32, 1000):
        copy = rates[("write_images", "new rows", batch)]
        ins = rates[("insert_rows", "new rows (text INSERT)", batch)]
        add("store", "embeddings, new rows, batch %d (binary COPY + upsert)" % batch, copy,
            "multi-row text INSERT", ins, unit="rows/s", ratio=copy / ins)
        add("store", "groups, new rows, batch %d" % batch,
            rates[("write_groups", "new rows", batch)], unit="rows/s")
    return rates[("write_images", "new rows", 32)], rates[("write_groups", "new rows", 32)]


# ---- end to end ----

def ads_csv(copies):
    """The sample ads listed COPIES times under new ids (id * 100 + copy)."""
    path = os.path.join(OUT, "ads-x%d.csv" % copies)
    with open(os.path.join(ADS, "ads.csv"), newline="") as f:
        src = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ad_id", "image_id", "image", "created_at"])
        for c in range(copies):
            for r in src:
                w.writerow([int(r["ad_id"]) * 100 + c, int(r["image_id"]) * 100 + c,
                            r["image"], r["created_at"]])
    return path, len(src) * copies


def pipeline_config(csv_path, db, turns=False):
    path = os.path.join(OUT, "%s.yaml" % db)
    with open(path, "w") as f:
        f.write("""database:
    conninfo: "dbname=%s"
    sql_dir: %s/sql
source:
    kind: dir
    csv: %s
    images_root: %s/images
pipeline:
    batch_size: 16
    queue_depth: 64
    cpu_turns: %s
model:
    config: %s/configs/models/mobilenetv2_100-coral.yaml
    weights: %s
    device: cpu
""" % (db, ROOT, csv_path, ADS, "true" if turns else "false", ROOT, MNV2_W))
    return path


def run_pipeline(csv_path, tag, turns=False):
    db = "bench_%s_%d" % (tag, int(time.time() * 1000) % 10 ** 9)
    sh(["createdb", db])
    try:
        _, err = sh([os.path.join(ROOT, "bin/pipeline-run"), "--config",
                     pipeline_config(csv_path, db, turns)])
    finally:
        sh(["dropdb", "--if-exists", db])
    fin = [l for l in err.splitlines() if 'msg="run finished"' in l][-1]
    times = [l for l in err.splitlines() if 'msg="stage times"' in l][-1]
    n, el = values(fin, "photos_in")[0], values(fin, "elapsed_s")[0]
    cpu = values(times, "cpu_s")[0]
    return n / el, values(fin, "peak_rss_mb")[0], cpu / (el * NCPU), 1000 * cpu / n


def bench_e2e(resize_rates, store_rates):
    x1, n1 = ads_csv(1)
    xk_copies = 2 if QUICK else 5
    xk, nk = ads_csv(xk_copies)
    log("embed stage alone, as configured (mobilenetv2_100 224px batch 16)")
    embed_rate, _, embed_cpu = model_bench("mobilenetv2_100", 224, 16, NCPU, True,
                                           ROUNDS + 1, 0)
    resize_rate, resize_cpu = resize_rates[("132 sample photos (<=500 px)", 224, min(NCPU, 2))]
    store_rate = 1 / (1 / store_rates[0] + 1 / store_rates[1])
    stages = {"resize": resize_rate, "embed": embed_rate, "store": store_rate}
    slowest = min(stages, key=stages.get)
    shared_bound = 1 / sum(1 / r for r in stages.values())
    for name, r in stages.items():
        add("end to end", "stage alone: %s (sample photos, 224px, %d cores)" % (name, NCPU), r)

    res = {}
    for copies, path, n, reps in ((1, x1, n1, ROUNDS), (xk_copies, xk, nk, 1 if QUICK else 2)):
        # the default (no cpu turns), and at 1x also with turns, for the comparison
        variants = (False,) if (QUICK or copies > 1) else (False, True)
        runs = {v: [] for v in variants}
        for _ in range(reps):
            for turns in variants:  # interleaved: both see the same load
                log("pipeline-run over %d photos, cpu_turns %d" % (n, turns))
                runs[turns].append(run_pipeline(path, "x%d" % copies, turns))
        for turns in variants:
            rs = runs[turns]
            res[(copies, turns)] = (med([r[0] for r in rs]), max(r[1] for r in rs),
                                    med([r[2] for r in rs]), med([r[3] for r in rs]))
    # CPU time per photo does not depend on how much of the machine others take: the
    # run's own against the stages' own, summed (they share the cores).
    stage_cpu = resize_cpu + embed_cpu
    for (copies, turns), (rate, rss, busy, cpu_ms) in res.items():
        case = "pipeline-run, %d photos (%dx sample)%s" % (
            copies * n1, copies, ", cpu_turns on" if turns else "")
        add("end to end", case + ": CPU ms per photo", cpu_ms,
            "resize + embed alone", stage_cpu, unit="ms", ratio=stage_cpu / cpu_ms)
        add("end to end", case, rate, "slowest stage alone (%s)" % slowest, stages[slowest],
            ratio=rate / stages[slowest], goal="" if turns else ">=90%",
            met="" if turns else verdict(rate / stages[slowest], 0.9))
        add("end to end", case + ": vs all stages sharing the cores", rate,
            "1 / sum(1 / stage rate)", shared_bound, ratio=rate / shared_bound)
        add("end to end", case + ": peak RSS", rss, unit="MB")
        add("end to end", case + ": CPU busy (cpu_s / elapsed / cores)", 100 * busy, unit="%")
    store_share = res[(1, False)][0] / store_rate
    add("store", "share of the run spent writing (e2e rate / store rate)", 100 * store_share,
        unit="%", goal="<=5%", met="yes" if store_share <= 0.05 else "no")
    return x1, n1


def python_pipeline(x1, env):
    db = "bench_py_%d" % (int(time.time() * 1000) % 10 ** 9)
    sh(["createdb", db])
    try:
        out, _ = sh([PY, os.path.join(ROOT, "bench/peer_pipeline.py"), x1,
                     os.path.join(ADS, "images"), MNV2_W, str(NCPU)], dict(env, PGDATABASE=db))
    finally:
        sh(["dropdb", "--if-exists", db])
    return values(out, "photos_per_s")[0]


def bench_python_pipeline(x1, n1):
    """pipeline-run and the script take turns over the same photos, so that both see the
    same load; the script as written, and with OpenMP told to wait passively."""
    variants = (("as written", {}), ("OMP_WAIT_POLICY=PASSIVE", TORCH_ENV))
    ours, peers = [], {label: [] for label, _ in variants}
    for _ in range(1 if QUICK else 2):
        log("pipeline-run over %d photos, against the python script" % n1)
        ours.append(run_pipeline(x1, "py")[0])
        for label, env in variants:
            log("python pipeline over %d photos (%s)" % (n1, label))
            peers[label].append(python_pipeline(x1, env))
    for label, _ in variants:
        o, peer = med(ours), med(peers[label])
        add("python pipeline", "%d photos, Pillow + torch + psycopg2 (%s)" % (n1, label), o,
            "Python script", peer, ratio=o / peer, goal=">=2x", met=verdict(o / peer, 2))


# ---- extra lines, output ----

def extra_lines():
    for exe in sorted(glob.glob(os.path.join(ROOT, "bench/extra/*"))):
        if not os.access(exe, os.X_OK) or os.path.isdir(exe):
            continue
        log("extra: %s" % os.path.basename(exe))
        out, _ = sh([exe])
        for rec in csv.reader(out.splitlines()):
            if len(rec) == len(COLUMNS) and rec[0] != "section":
                rows.append(dict(zip(COLUMNS, rec)))


def machine():
    def first(cmd, pat=None):
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True).stdout
        except OSError:
            return "?"
        line = out.splitlines()[0] if out else "?"
        return re.search(pat, out).group(1) if pat and re.search(pat, out) else line
    cpu = first(["grep", "-m1", "model name", "/proc/cpuinfo"], r"model name\s*:\s*(.*)")
    mem = first(["grep", "-m1", "MemTotal", "/proc/meminfo"], r"MemTotal:\s*(\d+)")
    pkgs = ["libvips42", "libtorch1.13", "postgresql-15", "python3-torch", "python3-pil",
            "imagemagick-6.q16", "libjpeg62-turbo"]
    vers = []
    for p in pkgs:
        v = first(["dpkg-query", "-W", "-f", "${Version}", p])
        vers.append("%s %s" % (p, v))
    return ("%s, %d cores, %.0f GiB; %s; load average at start %s" % (
        cpu, NCPU, int(mem) / 1048576 if mem.isdigit() else 0, ", ".join(vers),
        open("/proc/loadavg").read().split()[0]))


def write_outputs(header):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    md = header + "\n\n" + "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    print(md)


def main():
    t0 = time.time()
    header = "Machine: " + machine() + ("\nBENCH_QUICK: one round each" if QUICK else
                                         "\nMedians of %d rounds" % ROUNDS)
    os.makedirs(OUT, exist_ok=True)
    # every third sample photo (132): the same inputs for every tool, in a time that lets
    # ImageMagick run too
    sop = sorted(glob.glob(os.path.join(ADS, "images/*/*.JPG")))[::3]
    bigdir = os.path.join(OUT, "big")
    nbig = 4 if QUICK else 8
    big = sorted(glob.glob(os.path.join(bigdir, "big-*.jpg")))
    if len(big) < nbig:
        log("making %d 4000x3000 JPEGs" % nbig)
        os.makedirs(bigdir, exist_ok=True)
        sh([os.path.join(TOOLS, "resize_bench"), "-g", bigdir, "-k", str(nbig)] + sop[::11])
    big = sorted(glob.glob(os.path.join(bigdir, "big-*.jpg")))[:nbig]

    resize_rates = bench_resize(sop, big)
    bench_embed()
    store_rates = bench_store()
    x1, n1 = bench_e2e(resize_rates, store_rates)
    bench_python_pipeline(x1, n1)
    extra_lines()
    write_outputs(header + "; took %.0f s" % (time.time() - t0))


if __name__ == "__main__":
    main()
