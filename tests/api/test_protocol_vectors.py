"""docs/protocol-vectors.json against the implementation, so the protocol document cannot drift.

Frames are encoded and decoded by both header codecs (Python and C); the
out-of-band reference is made by ipckit's own block writer; the numpy payload by
the msgpack serializer; the handshake transcripts are replayed byte by byte
against ipckit's server and ipckit's client, each facing a scripted peer that
sends exactly the vector's bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ipckit
from ipckit import _accel, _oob
from ipckit._deadline import Deadline
from ipckit._framing import FrameDecoder, decode_header, encode_frame
from ipckit.backends import _handshake
from ipckit.serializers._msgpack import MsgpackSerializer

VECTORS = json.loads((Path(__file__).parents[2] / "docs" / "protocol-vectors.json").read_text())
BOUND = 10.0


def _b(text: str) -> bytes:
    return bytes.fromhex(text)


@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["name"])
def test_frames_encode_and_decode_as_the_vectors_say(case: dict[str, Any]) -> None:
    payload, wire = _b(case["payload"]), _b(case["frame"])
    assert encode_frame(case["serializer_id"], case["flags"], payload) == wire
    assert decode_header(wire, 0, 1 << 20) == (case["serializer_id"], case["flags"], len(payload))
    if _accel.built():
        from ipckit import _core

        assert _core.encode_header(case["serializer_id"], case["flags"], len(payload)) == wire[:16]
        assert _core.decode_header(wire, 0, 1 << 20) == decode_header(wire, 0, 1 << 20)
    decoder = FrameDecoder(1 << 20)
    decoder.feed(wire)
    frame = decoder.next_frame()
    assert frame is not None
    assert (frame.serializer_id, frame.flags, bytes(frame.payload)) == (
        case["serializer_id"],
        case["flags"],
        payload,
    )


@pytest.mark.parametrize("case", VECTORS["bad_headers"], ids=lambda c: c["name"])
def test_bad_headers_are_refused_as_the_vectors_say(case: dict[str, Any]) -> None:
    with pytest.raises(ipckit.ProtocolError, match=case["error"]):
        decode_header(_b(case["header"]), 0, VECTORS["max_message_size_for_bad_headers"])


def test_an_out_of_band_reference_is_the_documented_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    vec = VECTORS["out_of_band"]
    monkeypatch.setattr(_oob.secrets, "token_hex", lambda n: vec["block"].rpartition(".")[2])
    payload = b"\xab" * vec["total"]
    ref = _oob.put_block(vec["prefix"], [payload])
    try:
        assert ref == _b(vec["reference"])
        assert _b(vec["frame"])[16:] == ref
        assert decode_header(_b(vec["frame"]), 0, 1 << 20) == (0, 1, len(ref))
        with open(vec["block_path"], "rb") as block:
            content = block.read()
        assert hashlib.sha256(content).hexdigest() == vec["payload_sha256"]
        assert os.stat(vec["block_path"]).st_mode & 0o777 == 0o600
        assert _oob.resolve(ref, 1 << 20, "test") == payload  # maps, copies, unlinks
        assert not os.path.exists(vec["block_path"])
    finally:
        if os.path.exists(vec["block_path"]):
            os.unlink(vec["block_path"])


def test_a_numpy_payload_is_the_documented_layout() -> None:
    vec = VECTORS["msgpack_numpy"]
    ser = MsgpackSerializer()
    obj = {
        a["key"]: np.frombuffer(_b(a["data"]), dtype=a["dtype"]).reshape(a["shape"])
        for a in vec["arrays"]
    }
    assert bytes(ser.dumps(obj)) == _b(vec["payload"])
    back = ser.loads(bytearray(_b(vec["payload"])))
    assert back.keys() == obj.keys()
    for key, arr in obj.items():
        assert back[key].dtype == arr.dtype and back[key].tolist() == arr.tolist()
    assert encode_frame(1, 0, _b(vec["payload"])) == _b(vec["frame"])


HS = VECTORS["handshake"]
TRANSCRIPTS = HS["transcripts"]


def _key(which: object) -> bytes | None:
    if which is True:
        return _b(HS["authkey"])
    if which == "wrong":
        return b"wrong"
    return None


def _fixed_challenges(monkeypatch: pytest.MonkeyPatch, *values: bytes) -> None:
    queue = list(values)
    monkeypatch.setattr(_handshake.secrets, "token_bytes", lambda n: queue.pop(0))


def _run(side: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            side()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, errors


def _replay(peer: socket.socket, messages: list[list[str]], peer_is: str, name: str) -> None:
    """Play ``peer_is``'s side of a transcript; check every byte the other side sends."""
    peer.settimeout(BOUND)
    for who, data in messages:
        expected = _b(data)
        if who == peer_is:
            peer.sendall(expected)
            continue
        got = b""
        while len(got) < len(expected):
            chunk = peer.recv(len(expected) - len(got))
            assert chunk, f"{name}: ipckit stopped early after {got.hex()}"
            got += chunk
        assert got == expected, name


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_ipckit_server_says_what_the_transcript_says(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = TRANSCRIPTS[name]
    _fixed_challenges(monkeypatch, _b(HS["server_challenge"]))
    ours, peer = socket.socketpair()
    with ours, peer:
        if case["server_key"] is None:  # the listener's uid check refuses the peer
            thread, errors = _run(lambda: _handshake.deny(ours, Deadline(BOUND)))
        else:
            thread, errors = _run(
                lambda: _handshake.server_handshake(ours, _key(case["server_key"]), Deadline(BOUND))
            )
        _replay(peer, case["messages"], "client", name)
        connected = case["outcome"] == "connected" or case["server_key"] is None
        if not connected:
            peer.shutdown(socket.SHUT_RDWR)  # the client gives up, as the transcript says
        thread.join(BOUND)
        assert (not errors) == connected, (name, errors)
        if not connected:
            # Refused for a key reason, or (when the client left first) the client gone.
            gone = (
                ipckit.ChannelClosed if case["client_key"] is False else ipckit.AuthenticationError
            )
            assert isinstance(errors[0], gone), (name, errors)


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_ipckit_client_says_what_the_transcript_says(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = TRANSCRIPTS[name]
    _fixed_challenges(monkeypatch, _b(HS["client_challenge"]))
    ours, peer = socket.socketpair()
    with ours, peer:
        client_key = _key(case["client_key"]) if case["client_key"] is not None else None
        thread, errors = _run(
            lambda: _handshake.client_handshake(ours, client_key, Deadline(BOUND), "vectors")
        )
        _replay(peer, case["messages"], "server", name)
        thread.join(BOUND)
        assert (not errors) == (case["outcome"] == "connected"), (name, errors)
        if errors:
            assert isinstance(errors[0], ipckit.AuthenticationError), errors


def test_the_proofs_are_hmac_sha256_with_the_two_labels() -> None:
    key = _b(HS["authkey"])
    assert _handshake._mac(key, b"ipckit client proof", _b(HS["server_challenge"])) == _b(
        HS["client_proof"]
    )
    assert _handshake._mac(key, b"ipckit server proof", _b(HS["client_challenge"])) == _b(
        HS["server_proof"]
    )


def test_the_vectors_file_is_what_the_generator_writes() -> None:
    # scripts/protocol_vectors.py computes the bytes from the protocol alone (struct and
    # hmac, none of ipckit's encoders); the committed file must be exactly its output.
    import importlib.util

    root = Path(__file__).parents[2]
    spec = importlib.util.spec_from_file_location(
        "protocol_vectors", root / "scripts" / "protocol_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.frame_vectors() == VECTORS["frames"]
    assert gen.bad_headers() == VECTORS["bad_headers"]
    assert gen.oob_vector() == VECTORS["out_of_band"]
    assert gen.numpy_vector() == VECTORS["msgpack_numpy"]
    assert gen.handshake_vectors() == VECTORS["handshake"]
    assert gen.names() == VECTORS["names"]
