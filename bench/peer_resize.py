"""peer_resize.py - the benchmark's Pillow peer for the resize stage.

The same work as the pipeline's resize, done as a careful Pillow user would: draft()
so that libjpeg decodes at the smallest DCT scale still at least SIDE x SIDE, EXIF
orientation applied, resize to exactly SIDE x SIDE (reducing_gap for a cheap box
pre-shrink), then the float32 CHW tensor with ImageNet mean/std.

    python3 peer_resize.py SIDE THREADS ROUNDS FILE...
        one line per round: photos_per_s=X cpu_ms_per_photo=X
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def tensor(path, side):
    with Image.open(path) as im:
        im.draft("RGB", (side, side))
        im = ImageOps.exif_transpose(im).convert("RGB")
        im = im.resize((side, side), Image.BICUBIC, reducing_gap=2.0)
    a = (np.asarray(im, dtype=np.float32) - MEAN) / STD
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def main():
    side, threads, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    paths = sys.argv[4:]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda p: tensor(p, side), paths))  # warm-up
        for _ in range(rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            out = list(pool.map(lambda p: tensor(p, side), paths))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert all(o.shape == (3, side, side) for o in out)
            print("photos_per_s=%.2f cpu_ms_per_photo=%.3f"
                  % (len(paths) / wall, 1000 * cpu / len(paths)), flush=True)


if __name__ == "__main__":
    main()
