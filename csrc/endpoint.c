/* The Channel-facing fast paths, once for every native transport (see endpoint.h). */
#include "endpoint.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <time.h>

PyTypeObject *ik_frame_type;
static PyObject *str_owner;   /* "owner": the holder field of ipckit._critical.Mutex */
static PyObject *str_end;     /* "_end": when an ipckit._deadline.Deadline expires */
static PyObject *str_ready;   /* "_ready": a transport's deque of decoded frames */
static PyObject *str_append;  /* its methods */
static PyObject *str_popleft;
static PyObject *str_ensure_wake; /* "_ensure_wake": Waits' wake-up descriptor */

int ik_intern(PyObject **const slots[], const char *const names[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *slots[i] = PyUnicode_InternFromString(names[i]);
        if (*slots[i] == NULL)
            return -1;
    }
    return 0;
}

int ik_endpoint_module_init(void)
{
    PyObject **const slots[] = {&str_owner,   &str_end,     &str_ready,
                                &str_append,  &str_popleft, &str_ensure_wake};
    const char *const names[] = {"owner", "_end", "_ready", "append", "popleft", "_ensure_wake"};
    return ik_intern(slots, names, sizeof(names) / sizeof(names[0]));
}

/* -- the transport a Stream or Queue serves ----------------------------------------- */

int ik_served_init(ik_served *sv, PyObject *transport)
{
    PyObject *dict = PyObject_GetAttrString(transport, "__dict__");
    if (dict == NULL)
        return -1;
    Py_DECREF(dict); /* the transport keeps it */
    PyObject *ready = PyDict_CheckExact(dict) ? PyDict_GetItemWithError(dict, str_ready) : NULL;
    PyObject *append = ready ? PyObject_GetAttr(ready, str_append) : NULL;
    PyObject *popleft = ready ? PyObject_GetAttr(ready, str_popleft) : NULL;
    PyObject *ref = append && popleft ? PyWeakref_NewRef(transport, NULL) : NULL;
    if (ref == NULL) {
        Py_XDECREF(append);
        Py_XDECREF(popleft);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError,
                            "the transport must keep its state, _ready included, in a plain "
                            "__dict__");
        return -1;
    }
    Py_XSETREF(sv->transport, ref);
    Py_XSETREF(sv->ready_append, append);
    Py_XSETREF(sv->ready_popleft, popleft);
    sv->dict = dict;
    sv->stopped = 0;
    return 0;
}

PyObject *ik_served_field(ik_served *sv, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(sv->dict, key);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

int ik_served_fd(ik_served *sv, PyObject *key)
{
    PyObject *v = ik_served_field(sv, key);
    if (v == NULL || !PyLong_CheckExact(v))
        return -1;
    long fd = PyLong_AsLong(v);
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Clear();
        return -1;
    }
    return (int)fd;
}

PyObject *ik_served_hold(ik_served *sv)
{
    if (!ik_served_alive(sv))
        return NULL;
    return Py_NewRef(PyWeakref_GET_OBJECT(sv->transport));
}

int ik_served_alive(const ik_served *sv)
{
    return !sv->stopped && sv->transport != NULL &&
           PyWeakref_GET_OBJECT(sv->transport) != Py_None;
}

int ik_served_traverse(ik_served *sv, visitproc visit, void *arg)
{
    Py_VISIT(sv->transport);
    Py_VISIT(sv->ready_append);
    Py_VISIT(sv->ready_popleft);
    return 0;
}

void ik_served_clear(ik_served *sv)
{
    Py_CLEAR(sv->transport);
    sv->dict = NULL;
    Py_CLEAR(sv->ready_append);
    Py_CLEAR(sv->ready_popleft);
    sv->stopped = 1;
}

/* -- waiting ------------------------------------------------------------------------- */

/* A Deadline read once: `forever`, or `end` on time.monotonic()'s clock (0: never wait). */
typedef struct {
    int forever;
    double end;
} deadline;

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 when `obj` is a Deadline (or None: no waiting at all); 0 otherwise (no waiting). */
static int read_deadline(PyObject *obj, deadline *d)
{
    d->forever = 0;
    d->end = 0.0;
    if (obj == NULL || obj == Py_None)
        return 1;
    PyObject *end = PyObject_GetAttr(obj, str_end);
    if (end == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (end == Py_None)
        d->forever = 1;
    else if (PyFloat_CheckExact(end))
        d->end = PyFloat_AS_DOUBLE(end);
    Py_DECREF(end);
    return 1;
}

/* Seconds to sleep now (capped at `longest`); 0 once the deadline has passed. */
static double time_left(const deadline *d, double longest)
{
    if (d->forever)
        return longest;
    if (d->end == 0.0)
        return 0.0;
    double left = d->end - monotonic();
    return left <= 0 ? 0.0 : left < longest ? left : longest;
}

/* The longest sleep before the state is looked at again, whatever the deadline. */
#define WAIT_SLICE 1.0

int ik_poll_wait(int fd, int sending, int wake_fd, double seconds)
{
    if (PyErr_CheckSignals() < 0)
        return -1;
    struct pollfd p[2] = {{fd, (short)(sending ? POLLOUT : POLLIN), 0}, {wake_fd, POLLIN, 0}};
    int ms = (int)ceil(seconds * 1000.0);
    int r, err;
    Py_BEGIN_ALLOW_THREADS
    r = poll(p, wake_fd >= 0 ? 2 : 1, ms);
    err = errno;
    Py_END_ALLOW_THREADS
    if (r < 0) {
        if (err != EINTR)
            return 0; /* the pure path's own poll reports it */
        return PyErr_CheckSignals() < 0 ? -1 : 1;
    }
    if (wake_fd >= 0 && p[1].revents)
        return 0; /* interrupt() or shutdown(): the pure path says what happened */
    return 1;
}

int ik_served_poll(PyObject *transport, int fd, int sending, double seconds)
{
    PyObject *w = PyObject_CallMethodNoArgs(transport, str_ensure_wake);
    if (w == NULL)
        return -1; /* a signal handler raised in it: nothing was taken */
    long wake = PyLong_CheckExact(w) ? PyLong_AsLong(w) : -1;
    Py_DECREF(w);
    if (wake < 0 || wake > INT_MAX) {
        PyErr_Clear();
        return 0;
    }
    return ik_poll_wait(fd, sending, (int)wake, seconds);
}

/* take, waiting while the kernel would block, until `dl` passes. */
static Py_ssize_t take_until(ik_endpoint *ep, PyObject *out, Py_ssize_t max_items, PyObject *dl)
{
    deadline d;
    int can_wait = read_deadline(dl, &d) && ep->ops->wait != NULL;
    for (;;) {
        ep->blocked = 0;
        Py_ssize_t got = ep->ops->take(ep, out, max_items);
        if (got != 0 || !ep->blocked || !can_wait)
            return got;
        double left = time_left(&d, WAIT_SLICE);
        if (left <= 0)
            return 0;
        int r = ep->ops->wait(ep, 0, left);
        if (r <= 0)
            return r;
        if (!ep->ops->usable(ep) || !ik_mutex_free(ep->recv_mutex))
            return 0; /* closed, or another call took over meanwhile: the pure path */
    }
}

/* ops->send of all n, waiting while the kernel would block before the first. */
static Py_ssize_t send_until(ik_endpoint *ep, unsigned ser, const ik_payload *items, Py_ssize_t n,
                             PyObject *dl)
{
    deadline d;
    int can_wait = read_deadline(dl, &d) && ep->ops->wait != NULL;
    for (;;) {
        ep->blocked = 0;
        Py_ssize_t sent = ep->ops->send(ep, ser, items, n);
        if (sent != 0 || !ep->blocked || !can_wait)
            return sent;
        double left = time_left(&d, WAIT_SLICE);
        if (left <= 0)
            return 0;
        int r = ep->ops->wait(ep, 1, left);
        if (r <= 0)
            return r;
        if (!ep->ops->usable(ep) || !ik_mutex_free(ep->send_mutex))
            return 0;
    }
}

void ik_endpoint_setup(ik_endpoint *ep, const ik_endpoint_ops *ops)
{
    ep->ops = ops;
}

int ik_endpoint_traverse(ik_endpoint *ep, visitproc visit, void *arg)
{
    Py_VISIT(ep->send_mutex);
    Py_VISIT(ep->recv_mutex);
    Py_VISIT(ep->dumps);
    Py_VISIT(ep->loads);
    Py_VISIT(ep->fast_pack);
    Py_VISIT(ep->unpacker_factory);
    Py_VISIT(ep->u_feed);
    Py_VISIT(ep->u_unpack);
    Py_VISIT(ep->u_tell);
    return 0;
}

void ik_endpoint_clear(ik_endpoint *ep)
{
    Py_CLEAR(ep->send_mutex);
    Py_CLEAR(ep->recv_mutex);
    Py_CLEAR(ep->dumps);
    Py_CLEAR(ep->loads);
    Py_CLEAR(ep->fast_pack);
    Py_CLEAR(ep->unpacker_factory);
    Py_CLEAR(ep->u_feed);
    Py_CLEAR(ep->u_unpack);
    Py_CLEAR(ep->u_tell);
}

/* -- the serializer's C halves ---------------------------------------------------------- */

/* Encode: the fast packer, or (when it declines) dumps, whose error propagates. */
static PyObject *encode(ik_endpoint *ep, PyObject *obj)
{
    if (ep->fast_pack != NULL) {
        PyObject *p = PyObject_CallOneArg(ep->fast_pack, obj);
        if (p != NULL)
            return p;
        PyErr_Clear(); /* not plain builtins: the general encoder decides */
    }
    return PyObject_CallOneArg(ep->dumps, obj);
}

/* A fresh unpacker (a failed one may hold part of a document); without one, loads. */
static void unpacker_reset(ik_endpoint *ep)
{
    Py_CLEAR(ep->u_feed);
    Py_CLEAR(ep->u_unpack);
    Py_CLEAR(ep->u_tell);
    ep->fed = 0;
    if (ep->unpacker_factory == NULL)
        return;
    PyObject *u = PyObject_CallNoArgs(ep->unpacker_factory);
    if (u != NULL) {
        ep->u_feed = PyObject_GetAttrString(u, "feed");
        ep->u_unpack = PyObject_GetAttrString(u, "unpack");
        ep->u_tell = PyObject_GetAttrString(u, "tell");
        Py_DECREF(u);
    }
    if (ep->u_feed == NULL || ep->u_unpack == NULL || ep->u_tell == NULL) {
        Py_CLEAR(ep->u_feed);
        Py_CLEAR(ep->u_unpack);
        Py_CLEAR(ep->u_tell);
    }
    PyErr_Clear();
}

/* Payloads up to this size go through the kept unpacker, which copies them once
 * into its own buffer; bigger ones are decoded in place by loads. */
#define FAST_DECODE_MAX (64 * 1024)

/* Decode: the kept unpacker, or (when it declines) loads; NULL with the error of
 * loads set, which the pure decoder then raises properly. */
static PyObject *decode(ik_endpoint *ep, PyObject *payload)
{
    Py_ssize_t len = PyBytes_GET_SIZE(payload);
    /* 0xC1 (never valid msgpack) starts the numpy layout: loads' own, at once. */
    if (ep->u_unpack != NULL && len && len <= FAST_DECODE_MAX &&
        (uint8_t)PyBytes_AS_STRING(payload)[0] != 0xC1) {
        PyObject *r = PyObject_CallOneArg(ep->u_feed, payload);
        PyObject *obj = NULL;
        if (r != NULL) {
            Py_DECREF(r);
            ep->fed += (unsigned long long)len;
            obj = PyObject_CallNoArgs(ep->u_unpack);
        }
        if (obj != NULL) {
            PyObject *pos = PyObject_CallNoArgs(ep->u_tell);
            unsigned long long at = pos != NULL ? PyLong_AsUnsignedLongLong(pos) : 0;
            Py_XDECREF(pos);
            if (pos != NULL && at == ep->fed)
                return obj; /* exactly one document, all of the payload */
            Py_DECREF(obj);
        }
        unpacker_reset(ep); /* declined or trailing bytes: loads judges */
    }
    return PyObject_CallOneArg(ep->loads, payload);
}

PyObject *ik_make_frame(unsigned ser, unsigned flags, PyObject *payload)
{
    PyObject *f = ik_frame_type->tp_alloc(ik_frame_type, 3);
    if (f == NULL) {
        Py_DECREF(payload);
        return NULL;
    }
    PyTuple_SET_ITEM(f, 0, PyLong_FromUnsignedLong(ser));
    PyTuple_SET_ITEM(f, 1, PyLong_FromUnsignedLong(flags));
    PyTuple_SET_ITEM(f, 2, payload);
    if (PyTuple_GET_ITEM(f, 0) == NULL || PyTuple_GET_ITEM(f, 1) == NULL) {
        Py_DECREF(f);
        return NULL;
    }
    return f;
}

int ik_small_uint(PyObject *o, unsigned limit, unsigned *out)
{
    if (!PyLong_CheckExact(o))
        return 0;
    long v = PyLong_AsLong(o);
    if (v < 0 || (unsigned long)v > limit) {
        PyErr_Clear();
        return 0;
    }
    *out = (unsigned)v;
    return 1;
}

/* A holder is a call of the pure path in progress, or a signal handler re-entering:
 * both belong to Python. */
int ik_mutex_free(PyObject *mutex)
{
    if (mutex == NULL)
        return 0;
    PyObject *owner = PyObject_GetAttr(mutex, str_owner);
    if (owner == NULL) {
        PyErr_Clear();
        return 0;
    }
    int overflow = 0;
    /* Thread ids are unsigned: one over LONG_MAX is "overflow", which is "not free". */
    int is_free = PyLong_CheckExact(owner) && PyLong_AsLongAndOverflow(owner, &overflow) == 0 &&
                  !overflow;
    Py_DECREF(owner);
    return is_free;
}

static int can_send(ik_endpoint *ep)
{
    return ep->ops->usable(ep) && ik_mutex_free(ep->send_mutex);
}

/* One payload (a flat buffer) with serializer `ser`, waiting as `dl` allows; 1 when
 * it went out, 0 when not, -1 when a signal handler raised while waiting. */
static int send_buffer(ik_endpoint *ep, unsigned ser, PyObject *data, PyObject *dl)
{
    Py_buffer b;
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) != 0) {
        PyErr_Clear(); /* not a flat buffer: the pure path copies it or says why not */
        return 0;
    }
    ik_payload p = {b.buf, (uint64_t)b.len};
    int sent = p.length <= ep->max_message && p.length <= ep->send_max
                   ? (int)send_until(ep, ser, &p, 1, dl)
                   : 0;
    if (sent == 1) {
        ep->counts[0]++;
        ep->counts[1] += (unsigned long long)b.len;
    }
    PyBuffer_Release(&b);
    return sent;
}

const char ik_send_bytes_doc[] =
    "send_bytes(data, deadline=None) -> bool\n\n"
    "Channel.send_bytes, waiting (GIL released) while the kernel is full and the\n"
    "Deadline allows, where the transport can wait; False means: take the pure path.";

/* The call's (arg, deadline) from METH_FASTCALL arguments; 0 with TypeError set. */
static int one_and_deadline(const char *name, PyObject *const *args, Py_ssize_t nargs,
                            PyObject **arg, PyObject **dl)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "%s(x, deadline=None)", name);
        return 0;
    }
    *arg = args[0];
    *dl = nargs == 2 ? args[1] : NULL;
    return 1;
}

PyObject *ik_ep_send_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ik_endpoint *ep = IK_EP(self);
    PyObject *data, *dl;
    if (!one_and_deadline("send_bytes", args, nargs, &data, &dl))
        return NULL;
    if (!can_send(ep))
        Py_RETURN_FALSE;
    int sent = send_buffer(ep, IK_RAW_ID, data, dl);
    if (sent < 0)
        return NULL;
    return PyBool_FromLong(sent);
}

const char ik_send_doc[] =
    "send(obj, deadline=None) -> True | payload | False\n\n"
    "Channel.send, waiting as send_bytes does: True when sent; the encoded payload when it was\n"
    "encoded but must take the pure path; False when nothing was done. The\n"
    "serializer's own exception propagates (nothing is sent).";

PyObject *ik_ep_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ik_endpoint *ep = IK_EP(self);
    PyObject *obj, *dl;
    if (!one_and_deadline("send", args, nargs, &obj, &dl))
        return NULL;
    if (ep->dumps == NULL || !can_send(ep))
        Py_RETURN_FALSE;
    PyObject *payload = encode(ep, obj);
    if (payload == NULL)
        return NULL;
    /* dumps may have run Python code that closed or re-used this handle. */
    if (!can_send(ep))
        return payload;
    int sent = send_buffer(ep, ep->ser_id, payload, dl);
    if (sent <= 0) {
        if (sent == 0)
            return payload;
        Py_DECREF(payload); /* interrupted while waiting: nothing was sent */
        return NULL;
    }
    Py_DECREF(payload);
    Py_RETURN_TRUE;
}

const char ik_send_many_doc[] =
    "send_many(objs: list | tuple) -> (sent, payloads) | None\n\n"
    "Channel.send_many without waiting: every object is encoded first (the\n"
    "serializer's exception propagates, nothing sent), then the prefix that fits\n"
    "now goes out. None: nothing was done. A payload over max_message_size or too\n"
    "big for the fast path sends nothing (sent == 0).";

PyObject *ik_ep_send_many(PyObject *self, PyObject *objs)
{
    ik_endpoint *ep = IK_EP(self);
    if (ep->dumps == NULL || !can_send(ep) ||
        !(PyList_CheckExact(objs) || PyTuple_CheckExact(objs)))
        Py_RETURN_NONE;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(objs);
    PyObject *payloads = PyList_New(n);
    if (payloads == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Indexed afresh each time: dumps may run Python code that changes the list. */
        if (i >= PySequence_Fast_GET_SIZE(objs)) {
            Py_DECREF(payloads);
            Py_RETURN_NONE;
        }
        PyObject *p = encode(ep, PySequence_Fast_GET_ITEM(objs, i));
        if (p == NULL) {
            Py_DECREF(payloads);
            return NULL;
        }
        PyList_SET_ITEM(payloads, i, p);
    }
    Py_ssize_t sent = 0;
    unsigned long long nbytes = 0;
    ik_payload *items = n ? PyMem_Malloc((size_t)n * sizeof(ik_payload)) : NULL;
    int fits = items != NULL && can_send(ep);
    /* Sizes first: one message over a limit sends nothing (the pure path says why). */
    for (Py_ssize_t i = 0; fits && i < n; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        Py_ssize_t len = PyBytes_CheckExact(p) ? PyBytes_GET_SIZE(p) : -1;
        fits = len >= 0 && (uint64_t)len <= ep->max_message && (uint64_t)len <= ep->send_max;
        if (fits)
            items[i] = (ik_payload){PyBytes_AS_STRING(p), (uint64_t)len};
    }
    if (fits) {
        sent = ep->ops->send(ep, ep->ser_id, items, n);
        for (Py_ssize_t i = 0; i < sent; i++)
            nbytes += items[i].length;
    }
    PyMem_Free(items);
    ep->counts[0] += (unsigned long long)sent;
    ep->counts[1] += nbytes;
    return Py_BuildValue("(nN)", sent, payloads);
}

static int can_recv(ik_endpoint *ep)
{
    return ep->ops->usable(ep) && ik_mutex_free(ep->recv_mutex);
}

static void count_received(ik_endpoint *ep, PyObject *frames, Py_ssize_t got)
{
    unsigned long long nbytes = 0;
    for (Py_ssize_t i = 0; i < got; i++)
        nbytes += (unsigned long long)PyBytes_GET_SIZE(
            PyTuple_GET_ITEM(PyList_GET_ITEM(frames, i), 2));
    ep->counts[2] += (unsigned long long)got;
    ep->counts[3] += nbytes;
}

const char ik_recv_frame_doc[] =
    "recv_frame(deadline=None) -> Frame | None\n\n"
    "One plain message for Channel.recv_bytes, waiting (GIL released) while there is\n"
    "none and the Deadline allows, where the transport can wait; None means: take the\n"
    "pure path (with the same Deadline).";

PyObject *ik_ep_recv_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ik_endpoint *ep = IK_EP(self);
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "recv_frame(deadline=None)");
        return NULL;
    }
    if (!can_recv(ep))
        Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t got = take_until(ep, out, 1, nargs ? args[0] : NULL);
    if (got <= 0) {
        Py_DECREF(out);
        if (got < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    count_received(ep, out, got);
    PyObject *frame = Py_NewRef(PyList_GET_ITEM(out, 0));
    Py_DECREF(out);
    return frame;
}

const char ik_recv_many_doc[] =
    "recv_many(max_items, deadline=None) -> list | (objects, frames) | None\n\n"
    "Channel.recv_many, waiting as recv_frame does: up to max_items plain messages, decoded.\n"
    "A list when all were decoded; (decoded, rest) when the frames in rest need the\n"
    "pure path's decoder (another serializer, or loads raised: it runs again there\n"
    "and raises properly); None when nothing was taken.";

PyObject *ik_ep_recv_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ik_endpoint *ep = IK_EP(self);
    PyObject *arg, *dl;
    if (!one_and_deadline("recv_many", args, nargs, &arg, &dl))
        return NULL;
    Py_ssize_t max_items = PyLong_AsSsize_t(arg);
    if (max_items == -1 && PyErr_Occurred())
        return NULL;
    if (max_items < 1 || !can_recv(ep))
        Py_RETURN_NONE;
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    Py_ssize_t got = take_until(ep, frames, max_items, dl);
    if (got <= 0) {
        Py_DECREF(frames);
        if (got < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    count_received(ep, frames, got);
    PyObject *objs = PyList_New(got);
    if (objs == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    Py_ssize_t done = 0;
    for (; done < got; done++) {
        PyObject *frame = PyList_GET_ITEM(frames, done);
        unsigned long ser = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(frame, 0));
        PyObject *payload = PyTuple_GET_ITEM(frame, 2);
        PyObject *obj;
        if (ser == IK_RAW_ID) {
            obj = Py_NewRef(payload); /* what the pure decoder makes of raw bytes */
        } else if (ser == ep->ser_id && ep->loads != NULL) {
            obj = decode(ep, payload);
            if (obj == NULL) {
                PyErr_Clear(); /* the pure decoder runs it again and raises properly */
                break;
            }
        } else {
            break;
        }
        PyList_SET_ITEM(objs, done, obj);
    }
    if (done == got) {
        Py_DECREF(frames);
        return objs;
    }
    PyObject *decoded = PyList_GetSlice(objs, 0, done);
    PyObject *rest = PyList_GetSlice(frames, done, got);
    /* Slots past `done` were never filled: shrink before freeing. */
    Py_SET_SIZE(objs, done);
    Py_DECREF(objs);
    Py_DECREF(frames);
    if (decoded == NULL || rest == NULL) {
        Py_XDECREF(decoded);
        Py_XDECREF(rest);
        return NULL;
    }
    return Py_BuildValue("(NN)", decoded, rest);
}

const char ik_bind_doc[] =
    "bind(send_mutex, recv_mutex, dumps, loads, serializer_id, max_message_size,\n"
    "     fast_pack=None, unpacker_factory=None)\n\n"
    "Serve a Channel's fast paths: its per-handle mutexes (only used while free),\n"
    "its serializer (and that serializer's C-only halves, if it has them) and its\n"
    "size limit.";

PyObject *ik_ep_bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    ik_endpoint *ep = IK_EP(self);
    unsigned ser;
    if ((nargs != 6 && nargs != 8) || !ik_small_uint(args[4], 255, &ser) ||
        !PyLong_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "bind(send_mutex, recv_mutex, dumps, loads, "
                                         "serializer_id, max_message_size[, fast_pack, "
                                         "unpacker_factory])");
        return NULL;
    }
    unsigned long long max = PyLong_AsUnsignedLongLong(args[5]);
    if (max == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    Py_XSETREF(ep->send_mutex, Py_NewRef(args[0]));
    Py_XSETREF(ep->recv_mutex, Py_NewRef(args[1]));
    Py_XSETREF(ep->dumps, Py_NewRef(args[2]));
    Py_XSETREF(ep->loads, Py_NewRef(args[3]));
    PyObject *pack = nargs == 8 && args[6] != Py_None ? args[6] : NULL;
    PyObject *factory = nargs == 8 && args[7] != Py_None ? args[7] : NULL;
    Py_XSETREF(ep->fast_pack, Py_XNewRef(pack));
    Py_XSETREF(ep->unpacker_factory, Py_XNewRef(factory));
    unpacker_reset(ep);
    ep->ser_id = ser;
    ep->max_message = max;
    Py_RETURN_NONE;
}

PyObject *ik_ep_counters(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    ik_endpoint *ep = IK_EP(self);
    return Py_BuildValue("(KKKK)", ep->counts[0], ep->counts[1], ep->counts[2], ep->counts[3]);
}

/* The plain frame at the front of _ready, if there is one (a new reference). */
static PyObject *front_plain(PyObject *ready)
{
    if (PySequence_Size(ready) <= 0) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *f = PySequence_GetItem(ready, 0);
    if (f == NULL) {
        PyErr_Clear();
        return NULL;
    }
    int overflow = 0;
    if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 3 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(f, 1)) ||
        PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(f, 1), &overflow) != 0 || overflow ||
        !PyBytes_CheckExact(PyTuple_GET_ITEM(f, 2))) {
        PyErr_Clear();
        Py_DECREF(f);
        return NULL;
    }
    return f;
}

Py_ssize_t ik_take_ready(PyObject *ready, PyObject *popleft, PyObject *out, Py_ssize_t max_items)
{
    Py_ssize_t count = 0;
    while (count < max_items) {
        PyObject *f = front_plain(ready);
        if (f == NULL)
            break;
        PyObject *gone = PyObject_CallNoArgs(popleft);
        Py_XDECREF(gone);
        if (gone == NULL || PyList_Append(out, f) < 0) {
            Py_DECREF(f);
            return -1;
        }
        Py_DECREF(f);
        count++;
    }
    return count;
}
