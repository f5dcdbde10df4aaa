/* ipckit._core.Queue: the hot paths of the named queues, fifo:// and mq://.
 *
 * One Queue serves one QueueTransport (ipckit/backends/_queue.py) and, like
 * Stream, reads that transport's state from its __dict__ on every call, so both
 * paths share one state. A unit (a FIFO packet, a POSIX queue message) moves in
 * one system call, whole or not at all, so a send here packs frames into units
 * exactly as the reference does and writes each with one call, and a receive
 * reads one unit and hands out its frames when every one of them is plain and
 * checks out. A unit with anything else in it (end of stream, an out-of-band
 * reference, a bad header) goes to the reference's own _take_judged(), which
 * judges it and queues its frames; the frames this call had taken go ahead of
 * them in _ready, and an error waits until they are out (as in the reference's
 * batch receive).
 * Full, empty, shut down, closed: "not done", and the pure path waits or raises.
 */
#include "queue.h"

#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mqueue.h>
#include <string.h>
#include <unistd.h>

static PyObject *q_deferred, *q_fd, *q_shut, *q_eos, *q_interrupted, *q_flag,
    *q_ready, *q_readiness, *q_armed, *q_take;

typedef struct {
    PyObject_HEAD
    ik_endpoint ep; /* first: the Channel paths of endpoint.c */
    ik_served sv;          /* the QueueTransport: its flags, descriptor and _ready */
    uint8_t *unit;         /* one unit's worth of bytes */
    size_t unit_size;      /* the kernel's unit: PIPE_BUF, or the queue's mq_msgsize */
    uint64_t accept_max;   /* the transport's max_message_size */
    Py_ssize_t shut_byte;  /* where QueueState's mapping keeps the shut flag */
    unsigned priority;     /* mq:// sends at this priority */
    int mq;                /* mq_send/mq_receive, else write/read on a packet-mode FIFO */
} Queue;

#define QUEUE(ep) ((Queue *)(void *)((char *)(ep) - offsetof(Queue, ep)))

static PyObject *field(Queue *q, PyObject *key)
{
    return ik_served_field(&q->sv, key);
}

static PyObject *hold(Queue *q)
{
    return ik_served_hold(&q->sv);
}

static int queue_usable(ik_endpoint *ep)
{
    return ik_served_alive(&QUEUE(ep)->sv);
}

/* The kernel object's descriptor, or -1 when closed; and whether the handle may
 * still move messages: not shut down here, not interrupted, no end seen. */
static int live_fd(Queue *q)
{
    if (field(q, q_shut) != Py_False || field(q, q_interrupted) != Py_False ||
        field(q, q_eos) != Py_False)
        return -1;
    return ik_served_fd(&q->sv, q_fd);
}

/* The channel-wide shut flag in QueueState's mapping (1: shut, or unreadable). */
static int channel_shut(Queue *q)
{
    PyObject *flag = field(q, q_flag);
    Py_buffer b;
    if (flag == NULL || PyObject_GetBuffer(flag, &b, PyBUF_SIMPLE) != 0) {
        PyErr_Clear();
        return 1;
    }
    int shut = b.len <= q->shut_byte || ((const uint8_t *)b.buf)[q->shut_byte] != 0;
    PyBuffer_Release(&b);
    return shut;
}

static int put_unit(Queue *q, int fd, size_t size)
{
    if (q->mq)
        return mq_send((mqd_t)fd, (const char *)q->unit, size, q->priority) == 0;
    return write(fd, q->unit, size) == (ssize_t)size; /* a packet: whole or nothing */
}

/* As QueueTransport.send_frames for inline frames: packed into units in order,
 * each unit one system call. */
static Py_ssize_t queue_send(ik_endpoint *ep, unsigned ser, const ik_payload *items, Py_ssize_t n)
{
    Queue *q = QUEUE(ep);
    PyObject *t = hold(q);
    if (t == NULL)
        return 0;
    int fd = live_fd(q);
    Py_ssize_t sent = 0;
    if (fd >= 0 && !channel_shut(q)) {
        while (sent < n) {
            size_t size = 0;
            Py_ssize_t stop = sent;
            while (stop < n && size + IK_HEADER_SIZE + items[stop].length <= q->unit_size) {
                uint8_t *at = q->unit + size;
                ik_encode_header(at, ser, 0, items[stop].length);
                if (items[stop].length)
                    memcpy(at + IK_HEADER_SIZE, items[stop].data, (size_t)items[stop].length);
                size += IK_HEADER_SIZE + (size_t)items[stop].length;
                stop++;
            }
            if (stop == sent)
                break; /* over a unit: out of band, the pure path */
            if (!put_unit(q, fd, size)) {
                /* Full: wait (endpoint.c) or the pure path; an error: the pure path. */
                q->ep.blocked = sent == 0 && errno == EAGAIN;
                break;
            }
            sent = stop;
        }
    }
    Py_DECREF(t);
    return sent;
}

/* One unit, non-blocking: its size, or -1 when none (empty, error: the pure path). */
static ssize_t get_unit(Queue *q, int fd)
{
    if (q->mq) {
        unsigned prio;
        return mq_receive((mqd_t)fd, (char *)q->unit, q->unit_size, &prio);
    }
    return read(fd, q->unit, q->unit_size);
}

/* The number of frames in unit[0:size] when all are plain and check out, else 0. */
static Py_ssize_t plain_frames(Queue *q, size_t size)
{
    size_t off = 0;
    Py_ssize_t count = 0;
    uint64_t limit = q->accept_max > q->unit_size ? q->accept_max : q->unit_size;
    while (off < size) {
        ik_header h;
        if (ik_decode_header(q->unit + off, size - off, limit, &h) != IK_OK || h.flags ||
            h.length > q->accept_max || h.length > size - off - IK_HEADER_SIZE)
            return 0;
        off += IK_HEADER_SIZE + (size_t)h.length;
        count++;
    }
    return count;
}

static Py_ssize_t take_units(Queue *q, PyObject *t, int fd, PyObject *ready, PyObject *out,
                             Py_ssize_t max_items)
{
    Py_ssize_t count = ik_take_ready(ready, q->sv.ready_popleft, out, max_items);
    /* After a deferred error (see _take_judged) the pure path raises it first. */
    while (count >= 0 && count < max_items && PySequence_Size(ready) == 0 &&
           field(q, q_deferred) == Py_None) {
        ssize_t size = get_unit(q, fd);
        if (size <= 0) {
            q->ep.blocked = count == 0 && size < 0 && errno == EAGAIN;
            break;
        }
        if (plain_frames(q, (size_t)size) == 0) {
            /* The reference judges this unit. The frames taken so far go first. */
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(out); i++) {
                PyObject *r = PyObject_CallOneArg(q->sv.ready_append, PyList_GET_ITEM(out, i));
                if (r == NULL)
                    return -1;
                Py_DECREF(r);
            }
            if (PyList_SetSlice(out, 0, PyList_GET_SIZE(out), NULL) < 0)
                return -1;
            PyObject *unit = PyBytes_FromStringAndSize((const char *)q->unit, size);
            PyObject *r = unit ? PyObject_CallMethodOneArg(t, q_take, unit) : NULL;
            Py_XDECREF(unit);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
            return 0;
        }
        size_t off = 0;
        while (off < (size_t)size) {
            ik_header h;
            ik_decode_header(q->unit + off, (size_t)size - off, UINT64_MAX, &h);
            PyObject *payload = PyBytes_FromStringAndSize(
                (const char *)q->unit + off + IK_HEADER_SIZE, (Py_ssize_t)h.length);
            PyObject *frame = payload ? ik_make_frame(h.serializer_id, 0, payload) : NULL;
            /* Past max_items, the rest of the unit waits in _ready, as in _take. */
            PyObject *r = NULL;
            if (frame != NULL) {
                if (count < max_items)
                    r = PyList_Append(out, frame) == 0 ? Py_NewRef(Py_None) : NULL;
                else
                    r = PyObject_CallOneArg(q->sv.ready_append, frame);
            }
            Py_XDECREF(frame);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
            if (count < max_items)
                count++;
            off += IK_HEADER_SIZE + (size_t)h.length;
        }
    }
    return count;
}

static Py_ssize_t queue_take(ik_endpoint *ep, PyObject *out, Py_ssize_t max_items)
{
    Queue *q = QUEUE(ep);
    PyObject *t = hold(q);
    if (t == NULL)
        return 0;
    Py_ssize_t got = 0;
    int fd = live_fd(q);
    PyObject *ready = field(q, q_ready);
    PyObject *readiness = field(q, q_readiness);
    /* An armed readiness descriptor (fileno() in use) is kept by the pure path. */
    PyObject *armed = readiness ? PyObject_GetAttr(readiness, q_armed) : NULL;
    Py_XDECREF(armed);
    if (fd >= 0 && ready != NULL && armed == Py_False)
        got = take_units(q, t, fd, ready, out, max_items);
    if (got >= 0 && PyErr_Occurred())
        PyErr_Clear();
    Py_DECREF(t);
    return got;
}

/* A shutdown by a handle in another process sets the shared flag and queues a
 * doorbell; when the queue is full there is no doorbell, so waits are sliced as
 * in the reference (_queue.SLICE) and the flag is looked at between slices. */
#define QUEUE_SLICE 0.25

static int queue_wait(ik_endpoint *ep, int sending, double seconds)
{
    Queue *q = QUEUE(ep);
    PyObject *t = hold(q);
    if (t == NULL)
        return 0;
    int fd = live_fd(q);
    int r = 0;
    if (fd >= 0 && !channel_shut(q) && field(q, q_deferred) == Py_None)
        r = ik_served_poll(t, fd, sending, seconds < QUEUE_SLICE ? seconds : QUEUE_SLICE);
    Py_DECREF(t);
    return r;
}

static const ik_endpoint_ops QUEUE_OPS = {queue_usable, queue_send, queue_take, queue_wait};

static int Queue_init(Queue *q, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"transport", "unit",     "max_message_size", "shut_byte",
                             "mq",        "priority", NULL};
    PyObject *transport;
    unsigned long long unit, accept_max;
    Py_ssize_t shut_byte;
    int mq;
    unsigned int priority;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKnpI", kwlist, &transport, &unit,
                                     &accept_max, &shut_byte, &mq, &priority))
        return -1;
    if (unit <= IK_HEADER_SIZE || unit > (64u << 20) || shut_byte < 0) {
        PyErr_SetString(PyExc_ValueError, "impossible queue parameters");
        return -1;
    }
    uint8_t *buf = PyMem_Malloc((size_t)unit);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (ik_served_init(&q->sv, transport) < 0) {
        PyMem_Free(buf);
        return -1;
    }
    PyMem_Free(q->unit);
    q->unit = buf;
    q->unit_size = (size_t)unit;
    q->accept_max = accept_max;
    q->shut_byte = shut_byte;
    q->mq = mq;
    q->priority = priority;
    ik_endpoint_setup(&q->ep, &QUEUE_OPS);
    q->ep.send_max = unit - IK_HEADER_SIZE;
    return 0;
}

static PyObject *Queue_stop(Queue *q, PyObject *Py_UNUSED(ignored))
{
    q->sv.stopped = 1;
    Py_RETURN_NONE;
}

static int Queue_traverse(Queue *q, visitproc visit, void *arg)
{
    int r = ik_served_traverse(&q->sv, visit, arg);
    return r ? r : ik_endpoint_traverse(&q->ep, visit, arg);
}

static int Queue_clear(Queue *q)
{
    ik_served_clear(&q->sv);
    ik_endpoint_clear(&q->ep);
    return 0;
}

static void Queue_dealloc(Queue *q)
{
    PyObject_GC_UnTrack(q);
    Queue_clear(q);
    PyMem_Free(q->unit);
    Py_TYPE(q)->tp_free((PyObject *)q);
}

static PyMethodDef Queue_methods[] = {
    IK_ENDPOINT_METHODS,
    {"stop", (PyCFunction)Queue_stop, METH_NOARGS, "stop(): every later call returns 'not done'."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ik_QueueType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ipckit._core.Queue",
    .tp_basicsize = sizeof(Queue),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Queue(transport, unit, max_message_size, shut_byte, mq, priority): the "
              "never-waiting paths of one QueueTransport.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Queue_init,
    .tp_dealloc = (destructor)Queue_dealloc,
    .tp_traverse = (traverseproc)Queue_traverse,
    .tp_clear = (inquiry)Queue_clear,
    .tp_methods = Queue_methods,
};

int ik_queue_module_init(void)
{
    PyObject **const slots[] = {&q_deferred, &q_fd,         &q_shut,
                                &q_eos,         &q_flag,     &q_readiness,  &q_armed,
                                &q_take,        &q_ready,    &q_interrupted};
    const char *const names[] = {"_deferred", "_fd",         "_shut",
                                 "_eos",         "_flag",     "_readiness",  "armed",
                                 "_take_judged", "_ready",    "_interrupted"};
    return ik_intern(slots, names, sizeof(names) / sizeof(names[0]));
}
