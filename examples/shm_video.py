"""Video frames between processes over shared memory, with no copy on the receiving side.

Run: python examples/shm_video.py

A camera process renders 1080p RGB frames (1920 x 1080 x 3 bytes, about 6 MB
each) with numpy and sends each with ``send_bytes``: one copy, into the ring.
The viewer takes each with ``recv_view()``, which lends the bytes where they lie
in shared memory, wraps them in a numpy array without copying, checks the frame,
and gives the view back, which frees its space in the ring. The ring is sized for
a few frames: a message larger than half the ring would go out of band.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time

import numpy as np

import ipckit

HEIGHT, WIDTH = 1080, 1920
FRAMES = 240
CAPACITY = "64MiB"  # ten frames: the camera can run ahead of the viewer


def render(index: int, canvas: np.ndarray) -> None:
    """Draw frame ``index``: a moving gradient, with the frame number in the first pixels."""
    canvas[:, :, 0] = (np.arange(WIDTH, dtype=np.uint16) + index).astype(np.uint8)
    canvas[:, :, 1] = index % 256
    canvas[:, :, 2] = (np.arange(HEIGHT, dtype=np.uint16)[:, None] + 2 * index).astype(np.uint8)
    canvas[0, 0:4, 0] = np.frombuffer(index.to_bytes(4, "little"), dtype=np.uint8)


def camera(url: str) -> None:
    """Send FRAMES frames, then end the stream."""
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    with ipckit.open(url) as out:
        for i in range(FRAMES):
            render(i, canvas)
            out.send_bytes(canvas, timeout=30)  # any buffer: copied once, into the ring
        out.shutdown()


def check(index: int, frame: np.ndarray) -> bool:
    """The frame the camera drew for ``index`` (a few rows and pixels, not all 6 MB)."""
    number = int.from_bytes(frame[0, 0:4, 0].tobytes(), "little")
    row = (np.arange(WIDTH, dtype=np.uint16) + index).astype(np.uint8)
    return (
        number == index
        and bool((frame[HEIGHT // 2, 4:, 0] == row[4:]).all())
        and int(frame[HEIGHT - 1, WIDTH - 1, 1]) == index % 256
        and int(frame[HEIGHT - 1, 0, 2]) == (HEIGHT - 1 + 2 * index) % 256
    )


def main() -> int:
    url = f"shm://example-video-{os.getpid()}"
    viewer = ipckit.open(url, create=True, capacity=CAPACITY)
    cam = mp.get_context("spawn").Process(target=camera, args=(url,))
    try:
        cam.start()
        seen = 0
        started = time.perf_counter()
        for index in range(FRAMES):
            with viewer.recv_view(timeout=30) as view:
                # A numpy array over the shared memory itself: nothing is copied.
                frame = np.frombuffer(view.data, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3)
                good = check(index, frame)
                del frame  # the array must go before the view is given back
            if not good:
                print(f"frame {index} is wrong", file=sys.stderr)
                return 1
            seen += 1
        elapsed = time.perf_counter() - started
        try:
            viewer.recv_view(timeout=30)
            print("a frame arrived after the last one", file=sys.stderr)
            return 1
        except ipckit.ChannelClosed:
            pass  # the camera shut the stream down: nothing more
        cam.join(30)
        mb = seen * HEIGHT * WIDTH * 3 / 1e6
        print(
            f"{seen} frames of {WIDTH}x{HEIGHT} RGB in {elapsed:.2f} s: {seen / elapsed:.0f} "
            f"frames/s, {mb / elapsed:.0f} MB/s, none copied on the receiving side"
        )
        return 0 if cam.exitcode == 0 else 1
    finally:
        if cam.is_alive():
            cam.kill()
            cam.join()
        viewer.close()
        viewer.unlink()


if __name__ == "__main__":
    sys.exit(main())
