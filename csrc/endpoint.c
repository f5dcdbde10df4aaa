/* The Channel-facing fast paths, once for every native transport (see endpoint.h). */
#include "endpoint.h"

PyTypeObject *ik_frame_type;
static PyObject *str_owner; /* "owner": the holder field of ipckit._critical.Mutex */

int ik_endpoint_module_init(void)
{
    str_owner = PyUnicode_InternFromString("owner");
    return str_owner == NULL ? -1 : 0;
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

/* One payload (a flat buffer) with serializer `ser`; 1 when it went out. */
static int send_buffer(ik_endpoint *ep, unsigned ser, PyObject *data)
{
    Py_buffer b;
    if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) != 0) {
        PyErr_Clear(); /* not a flat buffer: the pure path copies it or says why not */
        return 0;
    }
    ik_payload p = {b.buf, (uint64_t)b.len};
    int sent = p.length <= ep->max_message && p.length <= ep->send_max &&
               ep->ops->send(ep, ser, &p, 1) == 1;
    if (sent) {
        ep->counts[0]++;
        ep->counts[1] += (unsigned long long)b.len;
    }
    PyBuffer_Release(&b);
    return sent;
}

const char ik_send_bytes_doc[] = "send_bytes(data) -> bool\n\n"
                                 "Channel.send_bytes without waiting; False means: take the pure "
                                 "path.";

PyObject *ik_ep_send_bytes(PyObject *self, PyObject *data)
{
    ik_endpoint *ep = IK_EP(self);
    if (!can_send(ep))
        Py_RETURN_FALSE;
    return PyBool_FromLong(send_buffer(ep, IK_RAW_ID, data));
}

const char ik_send_doc[] =
    "send(obj) -> True | payload | False\n\n"
    "Channel.send without waiting: True when sent; the encoded payload when it was\n"
    "encoded but must take the pure path; False when nothing was done. The\n"
    "serializer's own exception propagates (nothing is sent).";

PyObject *ik_ep_send(PyObject *self, PyObject *obj)
{
    ik_endpoint *ep = IK_EP(self);
    if (ep->dumps == NULL || !can_send(ep))
        Py_RETURN_FALSE;
    PyObject *payload = encode(ep, obj);
    if (payload == NULL)
        return NULL;
    /* dumps may have run Python code that closed or re-used this handle. */
    if (!can_send(ep) || !send_buffer(ep, ep->ser_id, payload))
        return payload;
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
    "recv_frame() -> Frame | None\n\n"
    "One plain message for Channel.recv_bytes without waiting; None means: take the\n"
    "pure path.";

PyObject *ik_ep_recv_frame(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    ik_endpoint *ep = IK_EP(self);
    if (!can_recv(ep))
        Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t got = ep->ops->take(ep, out, 1);
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
    "recv_many(max_items) -> list | (objects, frames) | None\n\n"
    "Channel.recv_many without waiting: up to max_items plain messages, decoded.\n"
    "A list when all were decoded; (decoded, rest) when the frames in rest need the\n"
    "pure path's decoder (another serializer, or loads raised: it runs again there\n"
    "and raises properly); None when nothing was taken.";

PyObject *ik_ep_recv_many(PyObject *self, PyObject *arg)
{
    ik_endpoint *ep = IK_EP(self);
    Py_ssize_t max_items = PyLong_AsSsize_t(arg);
    if (max_items == -1 && PyErr_Occurred())
        return NULL;
    if (max_items < 1 || !can_recv(ep))
        Py_RETURN_NONE;
    PyObject *frames = PyList_New(0);
    if (frames == NULL)
        return NULL;
    Py_ssize_t got = ep->ops->take(ep, frames, max_items);
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
