"""Server memory under load: ``aerialseg serve`` against ``aerialseg predict``.

1. The same scene at the server's pixel limit (default 40 MP, a mosaic of Dubai images as
   a JPEG) predicted by the CLI, then uploaded to a fresh server with 1 worker and with 2
   workers (one upload, then two at once): peak RSS of each process (VmHWM).
2. 50 concurrent uploads of a real Dubai image to a server with 1 worker and a queue of 8:
   status codes (no 5xx; 503 once full) and peak RSS.
3. A soak: for --soak-minutes, two clients send a mix of valid uploads (a Dubai image,
   a 16-bit GeoTIFF with NaN) and invalid ones (text, a truncated JPEG, a PNG declaring
   400 MP); status codes, and the RSS sampled every few seconds with its slope per hour
   fitted over the second half (after warm-up).

    python bench/serve_memory.py [--soak-minutes 10] [--megapixels 40]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, write_result  # noqa: E402

IMAGES = sorted((DATA / "Semantic segmentation dataset").glob("Tile */images/*.jpg"))
AERIALSEG = str(Path(sys.executable).with_name("aerialseg"))


def mosaic_jpeg(path: Path, megapixels: float) -> tuple[int, int]:
    """A square JPEG of about ``megapixels`` tiled from the Dubai images (real content)."""
    side = int((megapixels * 1e6) ** 0.5)
    canvas = np.zeros((side, side, 3), np.uint8)
    y = 0
    k = 0
    while y < side:
        x, row_h = 0, 0
        while x < side:
            tile = np.asarray(Image.open(IMAGES[k % len(IMAGES)]).convert("RGB"))
            k += 1
            h, w = min(tile.shape[0], side - y), min(tile.shape[1], side - x)
            canvas[y : y + h, x : x + w] = tile[:h, :w]
            x, row_h = x + w, max(row_h, h)
        y += row_h
    Image.fromarray(canvas).save(path, quality=90)
    return side, side


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cli_peak(image: Path, out: Path) -> dict:
    start = time.perf_counter()
    child = subprocess.Popen([AERIALSEG, "predict", str(image), "--out", str(out)])
    _, status, usage = os.wait4(child.pid, 0)
    assert status == 0, "predict failed"
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024), "seconds": time.perf_counter() - start}


class Server:
    """``aerialseg serve`` on a free loopback port, in its own process."""

    def __init__(self, *args: str):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [AERIALSEG, "serve", "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)
        raise RuntimeError("the server did not start")

    def segment(self, name: str, data: bytes, timeout: float = 1800) -> int:
        files = {"file": (name, data)}
        return httpx.post(self.url + "/v1/segment", files=files, timeout=timeout).status_code

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def at_the_limit(image: Path, workers: int, uploads: int) -> dict:
    server = Server("--workers", str(workers))
    try:
        idle = rss_mb(server.proc.pid)
        data = image.read_bytes()
        start = time.perf_counter()
        with ThreadPoolExecutor(uploads) as pool:
            codes = list(pool.map(lambda _: server.segment(image.name, data), range(uploads)))
        seconds = time.perf_counter() - start
        return {
            "workers": workers,
            "uploads_at_once": uploads,
            "status_codes": codes,
            "idle_rss_mb": round(idle),
            "peak_rss_mb": round(peak_rss_mb(server.proc.pid)),
            "rss_after_mb": round(rss_mb(server.proc.pid)),
            "seconds": round(seconds, 1),
        }
    finally:
        server.stop()


def burst(n: int) -> dict:
    server = Server("--workers", "1", "--max-queue", "8")
    try:
        data = IMAGES[0].read_bytes()
        with ThreadPoolExecutor(n) as pool:
            codes = list(pool.map(lambda _: server.segment("a.jpg", data), range(n)))
        return {
            "uploads": n,
            "status_codes": dict(Counter(codes)),
            "server_errors": sum(c >= 500 and c != 503 for c in codes),
            "peak_rss_mb": round(peak_rss_mb(server.proc.pid)),
        }
    finally:
        server.stop()


def soak_payloads(folder: Path) -> list[tuple[str, bytes, str]]:
    import rasterio
    from rasterio.transform import from_origin

    real = IMAGES[1].read_bytes()
    values = np.asarray(Image.open(IMAGES[2]).convert("RGB")).transpose(2, 0, 1)
    values = values.astype(np.float32) * 100.0
    values[:, 10:20, 10:20] = np.nan
    tif = folder / "nan.tif"
    profile = {"driver": "GTiff", "width": values.shape[2], "height": values.shape[1]}
    profile.update(count=3, dtype="float32", crs="EPSG:32640")
    profile.update(transform=from_origin(300000, 2800000, 0.5, 0.5))
    with rasterio.open(tif, "w", **profile) as dst:
        dst.write(values)
    header_only = io.BytesIO()
    Image.new("L", (20000, 20000)).save(header_only, format="PNG")  # compresses to ~400 KB
    return [
        ("valid", real, "a.jpg"),
        ("valid", tif.read_bytes(), "nan.tif"),
        ("invalid", b"not an image at all", "notes.txt"),
        ("invalid", real[: len(real) // 2], "cut.jpg"),
        ("invalid", header_only.getvalue(), "huge.png"),
    ]


def soak(minutes: float, folder: Path) -> dict:
    server = Server("--workers", "1")
    payloads = soak_payloads(folder)
    codes: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []
    stop = time.monotonic() + 60 * minutes
    lock = threading.Lock()

    def client(offset: int) -> None:
        k = offset
        while time.monotonic() < stop:
            kind, data, name = payloads[k % len(payloads)]
            k += 1
            code = server.segment(name, data)
            with lock:
                codes[f"{kind} {code}"] += 1

    try:
        start = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            samples.append((time.monotonic() - start, rss_mb(server.proc.pid)))
            time.sleep(5)
        late = [(t, r) for t, r in samples if t >= samples[-1][0] / 2]
        slope = np.polyfit([t for t, _ in late], [r for _, r in late], 1)[0] * 3600
        return {
            "minutes": minutes,
            "requests": dict(codes),
            "server_errors": sum(n for k, n in codes.items() if int(k.split()[1]) >= 500),
            "rss_mb_first_last_max": [
                round(samples[0][1]),
                round(samples[-1][1]),
                round(max(r for _, r in samples)),
            ],  # fmt: skip
            "rss_slope_mb_per_hour_second_half": round(float(slope), 1),
            "peak_rss_mb": round(peak_rss_mb(server.proc.pid)),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=40)
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = folder / "mosaic.jpg"
        size = mosaic_jpeg(image, args.megapixels * 0.999)  # just within the limit
        print(f"scene {size[0]} x {size[1]}, {image.stat().st_size / 2**20:.1f} MiB", flush=True)
        cli = cli_peak(image, folder / "cli")
        print("cli", cli, flush=True)
        limit = [at_the_limit(image, 1, 1), at_the_limit(image, 2, 1), at_the_limit(image, 2, 2)]
        print("limit", limit, flush=True)
        many = burst(args.burst)
        print("burst", many, flush=True)
        soaked = soak(args.soak_minutes, folder)
        print("soak", soaked, flush=True)
    write_result(
        "serve_memory",
        {
            "scene": {"width": size[0], "height": size[1], "megapixels": size[0] * size[1] / 1e6},
            "cli_predict": cli,
            "server_at_the_pixel_limit": limit,
            "target_mb": {
                "1 worker": cli["peak_rss_mb"],
                "2 workers": cli["peak_rss_mb"] + 300,
            },
            "concurrent_uploads": many,
            "soak": soaked,
        },
    )


if __name__ == "__main__":
    main()
