"""Write docs/protocol-vectors.json: test vectors for implementing ipckit's wire protocol.

Run from a clone: ``python scripts/protocol_vectors.py``. The values come from the
protocol as docs/protocol.md states it (struct layouts, HMAC-SHA256 with the two
labels), computed here without ipckit's own encoders; tests/api/test_protocol_vectors.py
checks that ipckit produces and accepts exactly these bytes, so the document, the
vectors and the code cannot drift apart. Every input is fixed: rerunning gives the
same file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

import msgpack

HEADER = struct.Struct("<2sBBB3xQ")


def frame(ser: int, flags: int, payload: bytes) -> bytes:
    """One frame: the 16-byte header, then the payload."""
    return HEADER.pack(b"IK", 1, ser, flags, len(payload)) + payload


def frame_vectors() -> list[dict[str, Any]]:
    """Whole frames of each serializer, and the end-of-stream frame."""
    cases = [
        ("raw bytes (send_bytes)", 0, 0, b"hello"),
        ("empty raw message", 0, 0, b""),
        (
            "msgpack {'op': 'add', 'args': [1, 2]}",
            1,
            0,
            msgpack.packb({"op": "add", "args": [1, 2]}),
        ),
        ("msgpack 'hi' (a str)", 1, 0, msgpack.packb("hi")),
        ("pickle protocol 5 of None", 2, 0, b"\x80\x05N."),
        ("json [1, 2]", 3, 0, b"[1, 2]"),
        ("end of stream", 0, 0x02, b""),
    ]
    return [
        {
            "name": n,
            "serializer_id": s,
            "flags": f,
            "payload": p.hex(),
            "frame": frame(s, f, p).hex(),
        }
        for n, s, f, p in cases
    ]


def bad_headers() -> list[dict[str, str]]:
    """Headers a receiver must refuse, and a word its error contains."""
    good = HEADER.pack(b"IK", 1, 1, 0, 4)
    return [
        {"name": "bad magic", "header": (b"XK" + good[2:]).hex(), "error": "magic"},
        {"name": "version 2", "header": (good[:2] + b"\x02" + good[3:]).hex(), "error": "version"},
        {
            "name": "unknown flag 0x80",
            "header": HEADER.pack(b"IK", 1, 1, 0x80, 4).hex(),
            "error": "flags",
        },
        {
            "name": "reserved byte set",
            "header": (good[:6] + b"\x01" + good[7:]).hex(),
            "error": "reserved",
        },
        {
            "name": "end of stream with a payload",
            "header": HEADER.pack(b"IK", 1, 0, 0x02, 1).hex(),
            "error": "end-of-stream",
        },
        {
            "name": "length over max_message_size (1 MiB here)",
            "header": HEADER.pack(b"IK", 1, 1, 0, 1 << 40).hex(),
            "error": "max_message_size",
        },
    ]


def oob_vector() -> dict[str, Any]:
    """A message sent out of band: the reference frame and the block it names."""
    name = "ikmq.jobs.0123456789ab.oob.1385c659c118318f"
    payload = b"\xab" * 10000
    ref = struct.pack("<QB", len(payload), len(name)) + name.encode()
    return {
        "prefix": "ikmq.jobs.0123456789ab",
        "block": name,
        "block_path": f"/dev/shm/{name}",
        "total": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "payload": "ab repeated 10000 times",
        "reference": ref.hex(),
        "frame": frame(0, 0x01, ref).hex(),
    }


def numpy_vector() -> dict[str, Any]:
    """A msgpack payload carrying a numpy array (the 0xC1 layout)."""
    # {"x": numpy.arange(3, dtype="<i2")}: the layout of docs/protocol.md, by hand.
    doc = b"\x81\xa1x" + b"\xc7\x0a\x01" + msgpack.packb(["<i2", [3], "C", 0])
    head = 16 + 8
    body = bytearray(128)
    struct.pack_into("<B3xIQ", body, 0, 0xC1, 1, len(doc))
    struct.pack_into("<Q", body, 16, 6)
    body[head : head + len(doc)] = doc
    body[64:70] = struct.pack("<3h", 0, 1, 2)
    return {
        "object": "{'x': numpy.arange(3, dtype='<i2')}",
        "arrays": [
            {
                "key": "x",
                "dtype": "<i2",
                "shape": [3],
                "order": "C",
                "data": struct.pack("<3h", 0, 1, 2).hex(),
            }
        ],
        "payload": bytes(body).hex(),
        "frame": frame(1, 0, bytes(body)).hex(),
    }


def handshake_vectors() -> dict[str, Any]:
    """The socket handshake with a fixed key and challenges, one transcript per case."""
    key = b"ipckit test vector key"
    server_challenge = bytes(range(32))
    client_challenge = bytes(range(32, 64))
    client_proof = hmac.new(key, b"ipckit client proof" + server_challenge, hashlib.sha256).digest()
    server_proof = hmac.new(key, b"ipckit server proof" + client_challenge, hashlib.sha256).digest()
    hello = lambda flags: b"IKSH\x01" + bytes((flags,))  # noqa: E731
    return {
        "authkey": key.hex(),
        "server_challenge": server_challenge.hex(),
        "client_challenge": client_challenge.hex(),
        "client_proof": client_proof.hex(),
        "server_proof": server_proof.hex(),
        "transcripts": {
            "no authkey on either side": {
                "server_key": False,
                "client_key": False,
                "outcome": "connected",
                "messages": [
                    ["server", hello(0).hex()],
                    ["client", hello(0).hex()],
                    ["server", b"OKAY".hex()],
                ],
            },
            "the same authkey on both sides": {
                "server_key": True,
                "client_key": True,
                "outcome": "connected",
                "messages": [
                    ["server", (hello(1) + server_challenge).hex()],
                    ["client", (hello(1) + client_proof + client_challenge).hex()],
                    ["server", (b"OKAY" + server_proof).hex()],
                    ["client", b"OKAY".hex()],
                ],
            },
            "client with a wrong authkey": {
                "server_key": True,
                "client_key": "wrong",
                "outcome": "AuthenticationError on both sides",
                "messages": [
                    ["server", (hello(1) + server_challenge).hex()],
                    [
                        "client",
                        (
                            hello(1)
                            + hmac.new(
                                b"wrong", b"ipckit client proof" + server_challenge, hashlib.sha256
                            ).digest()
                            + client_challenge
                        ).hex(),
                    ],
                    ["server", b"FAIL".hex()],
                ],
            },
            "server needs a key, client has none": {
                "server_key": True,
                "client_key": False,
                "outcome": "AuthenticationError in the client, which then closes",
                "messages": [["server", (hello(1) + server_challenge).hex()]],
            },
            "client has a key, server none": {
                "server_key": False,
                "client_key": True,
                "outcome": "AuthenticationError on both sides",
                "messages": [
                    ["server", hello(0).hex()],
                    ["client", hello(1).hex()],
                    ["server", b"FAIL".hex()],
                ],
            },
            "server refuses the client's user (DENIED)": {
                "server_key": None,
                "client_key": None,
                "outcome": "AuthenticationError in the client",
                "messages": [["server", hello(0x80).hex()]],
            },
        },
    }


def names() -> dict[str, Any]:
    """The POSIX objects behind mq:// and fifo:// names."""
    return {
        "mq://jobs": {
            "queue": "/jobs (mq_open name; /dev/mqueue/jobs where mounted)",
            "state": "/dev/shm/ikmq.jobs.ikstate",
            "out_of_band_blocks": "/dev/shm/ikmq.jobs.<12 hex digits>.oob.<16 hex digits>",
        },
        "fifo:///run/app/q": {
            "fifo": "/run/app/q (mkfifo, opened O_RDWR | O_NONBLOCK, packet mode)",
            "state": "/run/app/q.ikstate",
            "out_of_band_blocks": "/dev/shm/ikfifo.q.<12 hex digits>.oob.<16 hex digits>",
        },
    }


def main() -> None:
    """Write the file."""
    vectors = {
        "about": "ipckit wire protocol test vectors; see docs/protocol.md. Bytes are hex strings.",
        "protocol_version": 1,
        "handshake_version": 1,
        "max_message_size_for_bad_headers": 1 << 20,
        "frames": frame_vectors(),
        "bad_headers": bad_headers(),
        "out_of_band": oob_vector(),
        "msgpack_numpy": numpy_vector(),
        "handshake": handshake_vectors(),
        "names": names(),
    }
    out = Path(__file__).resolve().parent.parent / "docs" / "protocol-vectors.json"
    out.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
