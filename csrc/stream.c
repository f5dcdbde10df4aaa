/* ipckit._core.Decoder and Stream: the hot paths of pipes, FIFOs and sockets.
 *
 * Decoder is the C twin of ipckit._framing.FrameDecoder (the reference): the
 * same methods, the same buffer policy (big payloads into their own bytearray),
 * and on a bad header the reference's own decode_header raises, so the errors are
 * the reference's word for word.
 *
 * Stream serves one StreamTransport (ipckit/backends/_stream.py) and reads that
 * transport's state from its __dict__ on every call, so there is one copy of it:
 * the pure path and this one see and change the same flags. Its send writes only
 * what the kernel takes whole (pipe(7): a write of at most PIPE_BUF bytes to a
 * pipe is all-or-nothing; a Unix stream socket on Linux takes a write this small
 * as one buffer), so a frame is never torn here; its receive reads once and, like
 * the reference, decodes every complete frame of the chunk into the transport's
 * `_ready` deque. Both hold the GIL and run no Python code (a failed header check
 * asks the reference to judge it, see judge()), so no signal handler can run
 * inside one. Anything else -- a busy handle, a full pipe, nothing to read, the
 * end of the stream, a big frame, a descriptor in use by the waiting machinery --
 * returns "not done" and the pure path runs.
 */
#include "stream.h"

#include "ring.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The reference's constants (ipckit/_framing.py). */
#define DIRECT_THRESHOLD (64 * 1024)
#define CHUNK (256 * 1024)
/* Frames per write: each at least a header, the write at most `whole` bytes. */
#define MAX_GROUP ((int)(PIPE_BUF / IK_HEADER_SIZE))

static PyObject *s_interrupted, *s_wfd, *s_rfd, *s_wtorn, *s_writing, *s_shut,
    *s_eof, *s_broken, *s_rlog, *s_ready, *s_flag, *s_armed;

/* -- Decoder -------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *buf; /* bytearray */
    Py_ssize_t start, end;
    unsigned long long max;
    PyObject *big; /* a big payload's own bytearray while it fills, or NULL */
    Py_ssize_t big_fill;
    unsigned big_ser, big_flags;
    PyObject *done; /* a finished big frame not yet taken, or NULL */
} Decoder;

static uint8_t *dec_base(Decoder *d)
{
    return (uint8_t *)PyByteArray_AS_STRING(d->buf);
}

/* Let the reference raise its ProtocolError for the header at `start`: -1, error set. */
static int judge(Decoder *d)
{
    PyObject *framing = PyImport_ImportModule("ipckit._framing");
    if (framing == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(framing, "decode_header", "OnK", d->buf, d->start, d->max);
    Py_DECREF(framing);
    if (r != NULL) { /* the two checks disagree: a bug, reported as one */
        Py_DECREF(r);
        PyErr_SetString(PyExc_SystemError, "ipckit._core.Decoder and decode_header disagree");
    }
    return -1;
}

static void park(Decoder *d)
{
    d->done = ik_make_frame(d->big_ser, d->big_flags, d->big); /* steals big */
    d->big = NULL;
}

/* A big payload whose header is in: give it its own buffer (_maybe_start_big). */
static int start_big(Decoder *d, const ik_header *h)
{
    Py_ssize_t have = d->end - d->start - IK_HEADER_SIZE;
    PyObject *big = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)h->length);
    if (big == NULL)
        return -1;
    memcpy(PyByteArray_AS_STRING(big), dec_base(d) + d->start + IK_HEADER_SIZE, (size_t)have);
    d->big = big;
    d->big_fill = have;
    d->big_ser = h->serializer_id;
    d->big_flags = h->flags;
    d->start = d->end = 0;
    return 0;
}

/* The next complete frame: 1 (*out, a new reference), 0 (more bytes needed), -1
 * (error set), or -2 (a bad header, only when !judged: nothing changed). */
static int dec_next(Decoder *d, PyObject **out, int judged)
{
    if (d->done != NULL) {
        *out = d->done;
        d->done = NULL;
        return 1;
    }
    if (d->big != NULL) {
        if (d->big_fill < PyByteArray_GET_SIZE(d->big))
            return 0;
        park(d);
        if (d->done == NULL)
            return -1;
        *out = d->done;
        d->done = NULL;
        return 1;
    }
    Py_ssize_t avail = d->end - d->start;
    if (avail < IK_HEADER_SIZE) {
        if (!avail)
            d->start = d->end = 0;
        return 0;
    }
    ik_header h;
    if (ik_decode_header(dec_base(d) + d->start, (size_t)avail, d->max, &h) != IK_OK)
        return judged ? judge(d) : -2;
    if ((uint64_t)avail >= IK_HEADER_SIZE + h.length) {
        PyObject *payload = PyBytes_FromStringAndSize(
            (const char *)dec_base(d) + d->start + IK_HEADER_SIZE, (Py_ssize_t)h.length);
        if (payload == NULL)
            return -1;
        PyObject *frame = ik_make_frame(h.serializer_id, h.flags, payload);
        if (frame == NULL)
            return -1;
        d->start += IK_HEADER_SIZE + (Py_ssize_t)h.length;
        *out = frame;
        return 1;
    }
    if (h.length >= DIRECT_THRESHOLD && start_big(d, &h) < 0)
        return -1;
    return 0;
}

/* Where the next bytes go (FrameDecoder.buffer without the view); -1 with an
 * error set when the buffer must grow and cannot (BufferError while exported). */
static int dec_room(Decoder *d, uint8_t **at, Py_ssize_t *room)
{
    if (d->big != NULL) {
        Py_ssize_t size = PyByteArray_GET_SIZE(d->big);
        if (d->big_fill < size) {
            *at = (uint8_t *)PyByteArray_AS_STRING(d->big) + d->big_fill;
            *room = size - d->big_fill;
            return 0;
        }
        park(d);
        if (d->done == NULL)
            return -1;
    }
    Py_ssize_t size = PyByteArray_GET_SIZE(d->buf);
    if (d->end == size) {
        if (d->start) {
            Py_ssize_t keep = d->end - d->start;
            memmove(dec_base(d), dec_base(d) + d->start, (size_t)keep);
            d->start = 0;
            d->end = keep;
        } else if (PyByteArray_Resize(d->buf, size + CHUNK) < 0) {
            return -1;
        }
    }
    *at = dec_base(d) + d->end;
    *room = PyByteArray_GET_SIZE(d->buf) - d->end;
    return 0;
}

static int dec_commit(Decoder *d, Py_ssize_t count)
{
    Py_ssize_t room = d->big != NULL ? PyByteArray_GET_SIZE(d->big) - d->big_fill
                                     : PyByteArray_GET_SIZE(d->buf) - d->end;
    if (count < 0 || count > room) {
        PyErr_Format(PyExc_ValueError, "commit of %zd bytes into a buffer of %zd", count, room);
        return -1;
    }
    if (d->big != NULL)
        d->big_fill += count;
    else
        d->end += count;
    return 0;
}

static int Decoder_init(Decoder *d, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_message_size", NULL};
    unsigned long long max;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "K", kwlist, &max))
        return -1;
    if (ik_frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call set_frame_type() first");
        return -1;
    }
    PyObject *buf = PyByteArray_FromStringAndSize(NULL, CHUNK);
    if (buf == NULL)
        return -1;
    Py_XSETREF(d->buf, buf);
    Py_CLEAR(d->big);
    Py_CLEAR(d->done);
    d->start = d->end = d->big_fill = 0;
    d->max = max;
    return 0;
}

static PyObject *Decoder_buffer(Decoder *d, PyObject *Py_UNUSED(ignored))
{
    uint8_t *at;
    Py_ssize_t room;
    if (dec_room(d, &at, &room) < 0)
        return NULL;
    PyObject *owner = d->big != NULL ? d->big : d->buf;
    Py_ssize_t from = d->big != NULL ? d->big_fill : d->end;
    PyObject *view = PyMemoryView_FromObject(owner);
    if (view == NULL)
        return NULL;
    PyObject *lo = PyLong_FromSsize_t(from);
    PyObject *slice = lo ? PySlice_New(lo, NULL, NULL) : NULL;
    Py_XDECREF(lo);
    PyObject *part = slice ? PyObject_GetItem(view, slice) : NULL;
    Py_XDECREF(slice);
    Py_DECREF(view);
    return part;
}

static PyObject *Decoder_commit(Decoder *d, PyObject *arg)
{
    Py_ssize_t count = PyLong_AsSsize_t(arg);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (dec_commit(d, count) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Decoder_commit_from(Decoder *d, PyObject *counts)
{
    if (!PyList_Check(counts)) {
        PyErr_SetString(PyExc_TypeError, "commit_from() takes a list of byte counts");
        return NULL;
    }
    /* Taking a count out and recording it happen in this one call, with the GIL. */
    while (PyList_GET_SIZE(counts)) {
        Py_ssize_t count = PyLong_AsSsize_t(PyList_GET_ITEM(counts, 0));
        if ((count == -1 && PyErr_Occurred()) || dec_commit(d, count) < 0)
            return NULL;
        if (PyList_SetSlice(counts, 0, 1, NULL) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Decoder_feed(Decoder *d, PyObject *data)
{
    Py_buffer b;
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) != 0)
        return NULL;
    const uint8_t *p = b.buf;
    Py_ssize_t left = b.len;
    int failed = 0;
    while (left && !failed) {
        uint8_t *at;
        Py_ssize_t room;
        if (dec_room(d, &at, &room) < 0) {
            failed = 1;
            break;
        }
        Py_ssize_t n = room < left ? room : left;
        memcpy(at, p, (size_t)n);
        dec_commit(d, n);
        p += n;
        left -= n;
        Py_ssize_t avail = d->end - d->start;
        if (d->big == NULL && d->done == NULL && avail >= IK_HEADER_SIZE) {
            /* Let a big payload claim its own buffer as soon as its header is in. */
            ik_header h;
            if (ik_decode_header(dec_base(d) + d->start, (size_t)avail, d->max, &h) != IK_OK)
                failed = judge(d) < 0;
            else if (h.length >= DIRECT_THRESHOLD && (uint64_t)avail < IK_HEADER_SIZE + h.length)
                failed = start_big(d, &h) < 0;
        }
    }
    PyBuffer_Release(&b);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Decoder_next_frame(Decoder *d, PyObject *Py_UNUSED(ignored))
{
    PyObject *frame;
    int r = dec_next(d, &frame, 1);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    return frame;
}

static PyObject *Decoder_get_pending(Decoder *d, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(d->big != NULL || d->end > d->start || d->done != NULL);
}

static PyObject *Decoder_get_max(Decoder *d, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(d->max);
}

static int Decoder_traverse(Decoder *d, visitproc visit, void *arg)
{
    Py_VISIT(d->big);
    Py_VISIT(d->done);
    return 0;
}

static int Decoder_clear(Decoder *d)
{
    Py_CLEAR(d->big);
    Py_CLEAR(d->done);
    return 0;
}

static void Decoder_dealloc(Decoder *d)
{
    PyObject_GC_UnTrack(d);
    Decoder_clear(d);
    Py_CLEAR(d->buf);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static PyMethodDef Decoder_methods[] = {
    {"buffer", (PyCFunction)Decoder_buffer, METH_NOARGS,
     "buffer() -> memoryview: where to receive the next bytes (never empty)."},
    {"commit", (PyCFunction)Decoder_commit, METH_O,
     "commit(count): that many bytes were written into the last buffer()."},
    {"commit_from", (PyCFunction)Decoder_commit_from, METH_O,
     "commit_from(counts): record and remove each byte count a reader appended."},
    {"feed", (PyCFunction)Decoder_feed, METH_O, "feed(data): copy data into the decoder."},
    {"next_frame", (PyCFunction)Decoder_next_frame, METH_NOARGS,
     "next_frame() -> Frame | None: the next complete frame, if there is one."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"pending", (getter)Decoder_get_pending, NULL,
     "True while part of a frame has been received but not all of it.", NULL},
    {"_max", (getter)Decoder_get_max, NULL, "max_message_size.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ik_DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ipckit._core.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Decoder(max_message_size): ipckit._framing.FrameDecoder in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_traverse = (traverseproc)Decoder_traverse,
    .tp_clear = (inquiry)Decoder_clear,
    .tp_methods = Decoder_methods,
    .tp_getset = Decoder_getset,
};

/* -- Stream --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ik_endpoint ep; /* first: the Channel paths of endpoint.c */
    ik_served sv; /* the StreamTransport: its flags, descriptors and _ready */
    Decoder *decoder;
    uint64_t whole; /* the largest write the kernel takes whole (0: no fast send) */
    int socket;     /* sendmsg(MSG_NOSIGNAL) instead of writev */
} Stream;

#define STREAM(ep) ((Stream *)(void *)((char *)(ep) - offsetof(Stream, ep)))

static PyObject *field(Stream *s, PyObject *key)
{
    return ik_served_field(&s->sv, key);
}

static int is_false(Stream *s, PyObject *key)
{
    return field(s, key) == Py_False;
}

static int fd_field(Stream *s, PyObject *key)
{
    return ik_served_fd(&s->sv, key);
}

static PyObject *hold(Stream *s)
{
    return ik_served_hold(&s->sv);
}

static int stream_usable(ik_endpoint *ep)
{
    return ik_served_alive(&STREAM(ep)->sv);
}

static Py_ssize_t write_group(Stream *s, int fd, struct iovec *iov, int count)
{
    if (!s->socket)
        return writev(fd, iov, count);
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)count;
    return sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* As StreamTransport.send_frames, for writes the kernel takes whole or not at all. */
static Py_ssize_t send_held(Stream *s, unsigned ser, const ik_payload *items, Py_ssize_t n);

static Py_ssize_t stream_send(ik_endpoint *ep, unsigned ser, const ik_payload *items, Py_ssize_t n)
{
    Stream *s = STREAM(ep);
    PyObject *t = s->whole ? hold(s) : NULL;
    if (t == NULL)
        return 0;
    Py_ssize_t sent = send_held(s, ser, items, n);
    Py_DECREF(t);
    return sent;
}

static Py_ssize_t send_held(Stream *s, unsigned ser, const ik_payload *items, Py_ssize_t n)
{
    int fd = fd_field(s, s_wfd);
    /* The checks of send_frames: nothing torn, no other sender's claim, not shut down,
     * the peer not gone. The claim itself is not taken: this call cannot be entered
     * twice and nothing in it can be interrupted. */
    if (fd < 0 || !is_false(s, s_wtorn) || !is_false(s, s_writing) || !is_false(s, s_shut) ||
        !is_false(s, s_eof))
        return 0;
    uint8_t headers[MAX_GROUP][IK_HEADER_SIZE];
    struct iovec iov[2 * MAX_GROUP];
    Py_ssize_t sent = 0;
    while (sent < n) {
        int frames = 0, parts = 0;
        uint64_t size = 0;
        while (sent + frames < n && frames < MAX_GROUP) {
            const ik_payload *p = &items[sent + frames];
            uint64_t step = IK_HEADER_SIZE + p->length;
            if (size + step > s->whole)
                break;
            ik_encode_header(headers[frames], ser, 0, p->length);
            iov[parts++] = (struct iovec){headers[frames], IK_HEADER_SIZE};
            if (p->length)
                iov[parts++] = (struct iovec){(void *)p->data, (size_t)p->length};
            size += step;
            frames++;
        }
        if (frames == 0)
            break; /* one frame bigger than a whole write: the pure path */
        Py_ssize_t wrote = write_group(s, fd, iov, parts);
        if (wrote == (Py_ssize_t)size) {
            sent += frames;
            continue;
        }
        if (wrote > 0) {
            /* The kernel tore a write it should take whole. Mark it as the reference
             * marks an interrupted write: the next send ends the stream and says why. */
            uint64_t whole_frames = 0;
            for (int i = 0; i < frames; i++) {
                uint64_t end = whole_frames + IK_HEADER_SIZE + items[sent + i].length;
                if (end > (uint64_t)wrote)
                    break;
                whole_frames = end;
                sent++;
            }
            if (PyDict_SetItem(s->sv.dict, s_wtorn, Py_True) < 0)
                PyErr_Clear();
        }
        if (wrote < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            s->ep.blocked = sent == 0;
        break; /* full: wait (endpoint.c) or the pure path; EPIPE, ...: the pure path */
    }
    return sent;
}

/* A bad header: frame boundaries past it are unknowable, so the stream is over. The
 * reference words the error, which becomes the transport's _broken (as in
 * StreamTransport._decode). 0 when recorded; -1 with the error set when judging
 * raised something else (a signal handler's KeyboardInterrupt: nothing changed). */
static int take_judgement(Stream *s)
{
    judge(s->decoder);
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    PyObject *errors = PyImport_ImportModule("ipckit.errors");
    PyObject *protocol = errors ? PyObject_GetAttrString(errors, "ProtocolError") : NULL;
    Py_XDECREF(errors);
    int ours = protocol != NULL && exc != NULL && PyErr_GivenExceptionMatches(exc, protocol);
    Py_XDECREF(protocol);
    if (!ours) {
        if (PyErr_Occurred()) { /* the import itself failed: report that one */
            Py_XDECREF(type);
            Py_XDECREF(exc);
            Py_XDECREF(tb);
            return -1;
        }
        PyErr_Restore(type, exc, tb);
        return -1;
    }
    if (tb != NULL)
        PyException_SetTraceback(exc, tb);
    int failed = PyDict_SetItem(s->sv.dict, s_broken, exc);
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
    return failed;
}

/* Every complete frame in the decoder onto _ready, as StreamTransport._read_some
 * does after a read: 0, or -1 with an error set. */
static int decode_ready(Stream *s)
{
    for (;;) {
        PyObject *frame;
        int r = dec_next(s->decoder, &frame, 0);
        if (r == 0)
            return 0;
        if (r == -1)
            return -1;
        if (r == -2)
            return take_judgement(s);
        unsigned long flags = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(frame, 1));
        if (flags & IK_FLAG_EOS) {
            Py_DECREF(frame);
            return PyDict_SetItem(s->sv.dict, s_eof, Py_True);
        }
        PyObject *r2 = PyObject_CallOneArg(s->sv.ready_append, frame);
        Py_DECREF(frame);
        if (r2 == NULL)
            return -1;
        Py_DECREF(r2);
    }
}

/* One non-blocking read into the decoder: 1 when bytes came, 0 when not (nothing
 * ready, the end, an error: the pure path reads again and decides), -1 on error. */
static int read_some(Stream *s, int fd)
{
    uint8_t *at;
    Py_ssize_t room;
    if (s->decoder->big != NULL || s->decoder->done != NULL)
        return 0; /* a big payload: the pure path fills it */
    if (dec_room(s->decoder, &at, &room) < 0) {
        PyErr_Clear();
        return 0;
    }
    ssize_t n = read(fd, at, (size_t)room);
    if (n <= 0) {
        /* Nothing yet: the caller may wait. The end or an error: the pure path reads
         * again and decides. */
        s->ep.blocked = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        return 0;
    }
    dec_commit(s->decoder, (Py_ssize_t)n);
    return 1;
}

static Py_ssize_t take_held(Stream *s, PyObject *out, Py_ssize_t max_items);

static Py_ssize_t stream_take(ik_endpoint *ep, PyObject *out, Py_ssize_t max_items)
{
    Stream *s = STREAM(ep);
    PyObject *t = hold(s);
    if (t == NULL)
        return 0;
    Py_ssize_t got = take_held(s, out, max_items);
    Py_DECREF(t);
    return got;
}

static Py_ssize_t take_held(Stream *s, PyObject *out, Py_ssize_t max_items)
{
    int fd = fd_field(s, s_rfd);
    PyObject *ready = field(s, s_ready);
    PyObject *rlog = field(s, s_rlog);
    PyObject *flag = field(s, s_flag);
    if (fd < 0 || ready == NULL || field(s, s_broken) != Py_None || !is_false(s, s_eof) ||
        rlog == NULL || !PyList_CheckExact(rlog) || PyList_GET_SIZE(rlog) || flag == NULL)
        return 0;
    /* An armed readiness flag (fileno() in use) is kept by the pure path. */
    PyObject *armed = PyObject_GetAttr(flag, s_armed);
    Py_XDECREF(armed);
    if (armed != Py_False) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t count = ik_take_ready(ready, s->sv.ready_popleft, out, max_items);
    if (count == 0 && PySequence_Size(ready) == 0 && read_some(s, fd)) {
        if (decode_ready(s) < 0)
            return -1;
        count = ik_take_ready(ready, s->sv.ready_popleft, out, max_items);
    }
    if (count >= 0 && PyErr_Occurred())
        PyErr_Clear();
    return count;
}

/* Wait for the descriptor as StreamTransport._wait does, unless the handle's state
 * is one only the pure path handles (shut down, ended, broken, torn, interrupted). */
static int stream_wait(ik_endpoint *ep, int sending, double seconds)
{
    Stream *s = STREAM(ep);
    PyObject *t = hold(s);
    if (t == NULL)
        return 0;
    int fd = fd_field(s, sending ? s_wfd : s_rfd);
    int quiet = fd >= 0 && is_false(s, s_shut) && is_false(s, s_eof) &&
                is_false(s, s_interrupted) &&
                (sending ? is_false(s, s_wtorn) && is_false(s, s_writing)
                         : field(s, s_broken) == Py_None);
    int r = quiet ? ik_served_poll(t, fd, sending, seconds) : 0;
    Py_DECREF(t);
    return r;
}

static const ik_endpoint_ops STREAM_OPS = {stream_usable, stream_send, stream_take, stream_wait};

static int Stream_init(Stream *s, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport", "decoder", "whole_writes", "socket", NULL};
    PyObject *transport, *decoder;
    unsigned long long whole;
    int sock;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!Kp", kwlist, &transport, &ik_DecoderType,
                                     &decoder, &whole, &sock))
        return -1;
    if (ik_served_init(&s->sv, transport) < 0)
        return -1;
    Py_XSETREF(s->decoder, (Decoder *)Py_NewRef(decoder));
    /* A whole write never exceeds PIPE_BUF, so the header array above always suffices. */
    s->whole = whole > PIPE_BUF ? PIPE_BUF : whole;
    s->socket = sock;
    ik_endpoint_setup(&s->ep, &STREAM_OPS);
    s->ep.send_max = s->whole > IK_HEADER_SIZE ? s->whole - IK_HEADER_SIZE : 0;
    return 0;
}

static PyObject *Stream_stop(Stream *s, PyObject *Py_UNUSED(ignored))
{
    s->sv.stopped = 1;
    Py_RETURN_NONE;
}

static int Stream_traverse(Stream *s, visitproc visit, void *arg)
{
    Py_VISIT(s->decoder);
    int r = ik_served_traverse(&s->sv, visit, arg);
    return r ? r : ik_endpoint_traverse(&s->ep, visit, arg);
}

static int Stream_clear(Stream *s)
{
    Py_CLEAR(s->decoder);
    ik_served_clear(&s->sv);
    ik_endpoint_clear(&s->ep);
    return 0;
}

static void Stream_dealloc(Stream *s)
{
    PyObject_GC_UnTrack(s);
    Stream_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Stream_methods[] = {
    IK_ENDPOINT_METHODS,
    {"stop", (PyCFunction)Stream_stop, METH_NOARGS, "stop(): every later call returns 'not done'."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ik_StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ipckit._core.Stream",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Stream(transport, decoder, whole_writes, socket): the never-waiting paths of one "
              "StreamTransport.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stream_init,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_traverse = (traverseproc)Stream_traverse,
    .tp_clear = (inquiry)Stream_clear,
    .tp_methods = Stream_methods,
};

int ik_stream_module_init(void)
{
    PyObject **const slots[] = {&s_interrupted, &s_wfd,   &s_rfd,
                                &s_wtorn,       &s_writing,     &s_shut,  &s_eof,
                                &s_broken,      &s_rlog,        &s_ready, &s_flag,
                                &s_armed};
    const char *const names[] = {"_interrupted", "_wfd",   "_rfd",
                                 "_wtorn",       "_writing",     "_shut",  "_eof",
                                 "_broken",      "_rlog",        "_ready", "_flag",
                                 "armed"};
    return ik_intern(slots, names, sizeof(names) / sizeof(names[0]));
}
