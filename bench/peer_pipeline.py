"""peer_pipeline.py - the job done the way a data scientist would script it.

Reads the ads CSV, resizes each photo with Pillow (draft, EXIF orientation, 224x224,
(x - 128) / 128 as the MobileNetV2 weights want), embeds batches of 16 with the same
network in python3-torch (channels-last, inference mode, every core), writes the
embeddings with psycopg2, groups each ad by average linkage on cosine similarity
(threshold 0.45) and writes the groups. The database comes from the PG* environment.

    python3 peer_pipeline.py ADS_CSV IMAGES_ROOT WEIGHTS THREADS
        prints: photos=N elapsed_s=X photos_per_s=X peak_rss_mb=N
"""
import csv
import os
import resource
import sys
import time

import numpy as np
import psycopg2
import psycopg2.extras
import torch
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_model  # noqa: E402

SIDE, BATCH, THRESHOLD = 224, 16, 0.45


def load_photo(path):
    with Image.open(path) as im:
        im.draft("RGB", (SIDE, SIDE))
        im = ImageOps.exif_transpose(im).convert("RGB").resize((SIDE, SIDE), Image.BICUBIC)
    return (np.asarray(im, dtype=np.float32) - 128.0) / 128.0


def group(emb):
    """Average-linkage clusters of the rows of EMB (unit vectors): a label per row."""
    sim = emb @ emb.T
    clusters = [[i] for i in range(len(emb))]
    while len(clusters) > 1:
        best, pair = -2.0, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = sim[np.ix_(clusters[a], clusters[b])].mean()
                if s > best:
                    best, pair = s, (a, b)
        if best < THRESHOLD:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    labels = [0] * len(emb)
    for c in clusters:
        for i in c:
            labels[i] = min(c)
    return labels


def main():
    ads_csv, root, weights, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    net = peer_model.load("mobilenetv2_100", weights)
    conn = psycopg2.connect("")
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS py_embeddings (image_id text PRIMARY KEY, "
                "ad_id text, embedding real[])")
    cur.execute("CREATE TABLE IF NOT EXISTS py_groups (image_id text PRIMARY KEY, "
                "ad_id text, group_id text)")
    conn.commit()
    with open(ads_csv, newline="") as f:
        rows = list(csv.DictReader(f))

    by_ad = {}
    for at in range(0, len(rows), BATCH):
        chunk = rows[at:at + BATCH]
        x = np.stack([load_photo(os.path.join(root, r["image"])) for r in chunk])
        x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(
            memory_format=torch.channels_last)
        with torch.inference_mode():
            emb = net(x).numpy()
        psycopg2.extras.execute_values(
            cur, "INSERT INTO py_embeddings VALUES %s ON CONFLICT (image_id) DO UPDATE "
            "SET embedding = EXCLUDED.embedding",
            [(r["image_id"], r["ad_id"], e.tolist()) for r, e in zip(chunk, emb)])
        conn.commit()
        for r, e in zip(chunk, emb):
            by_ad.setdefault(r["ad_id"], []).append((r["image_id"], e))

    out = []
    for ad, photos in by_ad.items():
        photos.sort(key=lambda p: p[0])
        labels = group(np.stack([e for _, e in photos]))
        out += [(img, ad, "%s/%s" % (ad, photos[lab][0]))
                for (img, _), lab in zip(photos, labels)]
    psycopg2.extras.execute_values(
        cur, "INSERT INTO py_groups VALUES %s ON CONFLICT (image_id) DO UPDATE "
        "SET group_id = EXCLUDED.group_id", out)
    conn.commit()
    elapsed = time.perf_counter() - t0
    print("photos=%d elapsed_s=%.2f photos_per_s=%.2f peak_rss_mb=%d" % (
        len(rows), elapsed, len(rows) / elapsed,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))


if __name__ == "__main__":
    main()
