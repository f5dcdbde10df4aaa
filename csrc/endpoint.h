/* The Channel-facing fast paths, written once for every native transport.
 *
 * A Channel binds its per-handle mutexes, serializer and size limit to its
 * transport's native object (a Ring for shm://, a Stream for pipes and sockets);
 * send_bytes/send/send_many/recv_frame/recv_many below then cost one call into C
 * plus the serializer. Each transport supplies two operations that never wait and
 * never run Python code: send payloads that fit now, and take plain frames that
 * are there now. Whatever they cannot do returns "not done" and the Channel runs
 * its pure-Python path, which waits, judges and raises.
 */
#ifndef IPCKIT_ENDPOINT_H
#define IPCKIT_ENDPOINT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

#define IK_RAW_ID 0u

typedef struct ik_endpoint ik_endpoint;

typedef struct {
    const void *data;
    uint64_t length;
} ik_payload;

typedef struct {
    int (*usable)(ik_endpoint *ep);
    /* Send the longest prefix of items (serializer `ser`, no flags) that goes out
     * whole now; the count. Never raises, never waits, runs no Python code. */
    Py_ssize_t (*send)(ik_endpoint *ep, unsigned ser, const ik_payload *items, Py_ssize_t n);
    /* Append up to max_items plain frames (bytes payloads) that are there now to
     * `out`; the count, or -1 with an exception set (MemoryError only). */
    Py_ssize_t (*take)(ik_endpoint *ep, PyObject *out, Py_ssize_t max_items);
    /* Optional: sleep, with the GIL released, until the descriptor may be ready for
     * `sending` or receiving, for at most `seconds`. 1: look again; 0: do not wait
     * here (the handle's state needs the pure path); -1: a signal handler raised. */
    int (*wait)(ik_endpoint *ep, int sending, double seconds);
} ik_endpoint_ops;

struct ik_endpoint {
    const ik_endpoint_ops *ops;
    uint64_t send_max; /* the largest payload ops->send can carry */
    /* Bound by a Channel (bind()): its mutexes, serializer and limit. */
    PyObject *send_mutex;
    PyObject *recv_mutex;
    PyObject *dumps;
    PyObject *loads;
    /* Optional C-only halves of the serializer (MsgpackSerializer.native_codec): a
     * packer whose failure means "ask dumps", and a kept unpacker of this endpoint's
     * own whose failure means "ask loads". */
    PyObject *fast_pack;
    PyObject *unpacker_factory;
    PyObject *u_feed, *u_unpack, *u_tell;
    unsigned long long fed; /* bytes fed to the unpacker: what tell() must say */
    unsigned ser_id;
    uint64_t max_message;
    unsigned long long counts[4]; /* messages sent, bytes sent, messages received, bytes */
    /* Set by send/take when they stopped only because the kernel would block (full,
     * empty): the one case in which waiting and trying again is right. */
    int blocked;
};

/* Every native transport object starts like this. */
typedef struct {
    PyObject_HEAD
    ik_endpoint ep;
} ik_object;

#define IK_EP(o) (&((ik_object *)(void *)(o))->ep)

/* The Python transport a Stream or Queue serves. Held weakly (it holds the native
 * object, and a cycle would keep its descriptors open until the garbage collector
 * ran); its __dict__ borrowed while it lives, read on every call so that the pure
 * path and the C one share one state; its _ready deque's append and popleft. */
typedef struct {
    PyObject *transport; /* a weak reference */
    PyObject *dict;
    PyObject *ready_append;
    PyObject *ready_popleft;
    int stopped;
} ik_served;

int ik_served_init(ik_served *sv, PyObject *transport);
/* A field of the transport (borrowed), or NULL when missing. */
PyObject *ik_served_field(ik_served *sv, PyObject *key);
/* The descriptor in field `key`, or -1 when it is closed (None) or odd. */
int ik_served_fd(ik_served *sv, PyObject *key);
/* The transport, a new reference, or NULL when it is gone or the object stopped. */
PyObject *ik_served_hold(ik_served *sv);
int ik_served_alive(const ik_served *sv);
int ik_served_traverse(ik_served *sv, visitproc visit, void *arg);
void ik_served_clear(ik_served *sv);
/* Intern `n` names into `slots`; -1 with an error set. */
int ik_intern(PyObject **const slots[], const char *const names[], size_t n);

extern PyTypeObject *ik_frame_type; /* ipckit._framing.Frame, set by set_frame_type() */

int ik_endpoint_module_init(void);
void ik_endpoint_setup(ik_endpoint *ep, const ik_endpoint_ops *ops);
int ik_endpoint_traverse(ik_endpoint *ep, visitproc visit, void *arg);
void ik_endpoint_clear(ik_endpoint *ep);

/* A Frame(ser, flags, payload); steals `payload`. */
PyObject *ik_make_frame(unsigned ser, unsigned flags, PyObject *payload);
/* An exact int in [0, limit]; 0 (no exception) otherwise. */
int ik_small_uint(PyObject *o, unsigned limit, unsigned *out);
/* Move the plain frames (no flags, bytes payload) at the front of a transport's
 * _ready deque to `out`, up to max_items; the count, or -1 with an error set. */
Py_ssize_t ik_take_ready(PyObject *ready, PyObject *popleft, PyObject *out, Py_ssize_t max_items);
/* poll(2) on `fd` (for writing or reading) and the handle's wake-up descriptor,
 * with the GIL released; the result as for ik_endpoint_ops.wait. Pending signal
 * handlers run first, so a Ctrl-C that came just before is not slept through. */
int ik_poll_wait(int fd, int sending, int wake_fd, double seconds);
/* ik_poll_wait on `fd` and the wake-up descriptor of a transport of ipckit/backends/_wake.Waits
 * (its _ensure_wake() makes one per process); the caller holds `transport` alive. */
int ik_served_poll(PyObject *transport, int fd, int sending, double seconds);
/* True when nobody holds the Channel mutex. */
int ik_mutex_free(PyObject *mutex);

PyObject *ik_ep_send_bytes(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ik_ep_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ik_ep_send_many(PyObject *self, PyObject *objs);
PyObject *ik_ep_recv_frame(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ik_ep_recv_many(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ik_ep_bind(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *ik_ep_counters(PyObject *self, PyObject *ignored);

extern const char ik_send_bytes_doc[], ik_send_doc[], ik_send_many_doc[], ik_recv_frame_doc[],
    ik_recv_many_doc[], ik_bind_doc[];

#define IK_ENDPOINT_METHODS                                                                    \
    {"send_bytes", (PyCFunction)(void (*)(void))ik_ep_send_bytes, METH_FASTCALL,               \
     ik_send_bytes_doc},                                                                       \
        {"send", (PyCFunction)(void (*)(void))ik_ep_send, METH_FASTCALL, ik_send_doc},         \
        {"send_many", (PyCFunction)ik_ep_send_many, METH_O, ik_send_many_doc},                 \
        {"recv_frame", (PyCFunction)(void (*)(void))ik_ep_recv_frame, METH_FASTCALL,           \
         ik_recv_frame_doc},                                                                   \
        {"recv_many", (PyCFunction)(void (*)(void))ik_ep_recv_many, METH_FASTCALL,             \
         ik_recv_many_doc},                                                                    \
        {"bind", (PyCFunction)(void (*)(void))ik_ep_bind, METH_FASTCALL, ik_bind_doc},         \
    {                                                                                          \
        "counters", (PyCFunction)ik_ep_counters, METH_NOARGS,                                  \
            "counters() -> (messages sent, bytes sent, messages received, bytes received)"     \
    }

#endif
