/* ipckit._core: the compiled hot paths of shm:// and of Channel.
 *
 * One Ring object per shm:// handle. It shares everything with the pure-Python
 * transport (ipckit/backends/shm.py) that owns it: the segment's header words and
 * record layout, the same named POSIX semaphores (sem_open on the names posix_ipc
 * opened), the handle's lock tokens and pid. So a native and a pure process, or
 * a native and a pure code path in one process, share one channel, and crash
 * recovery (owner pid, dirty flag) works across them.
 *
 * Only the paths that never wait are here. Each call takes a lock with
 * sem_trywait, copies, publishes, gives the lock back and rings a doorbell, all
 * while holding the GIL and without running any Python code, so no signal
 * handler (Ctrl-C) can run inside one: a call has happened whole or not at all.
 * Anything else -- a busy lock, a full ring, a shut-down channel, an out-of-band
 * message, a record that fails a check -- returns "not done" and the caller runs
 * the pure-Python path, which waits (releasing the GIL, waking for signals) and
 * raises the one documented error. C therefore has no error messages to drift
 * from the reference, and a hostile segment can only make it step aside.
 */
#include "endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"
#include "ring.h"
#include "stream.h"

typedef struct {
    PyObject_HEAD
    ik_endpoint ep; /* first: the Channel paths of endpoint.c */
    Py_buffer view;
    int have_view;
    uint8_t *base;
    uint64_t capacity;
    uint64_t segment_max; /* the creator's limit: a record over it is corruption */
    uint64_t accept_max;  /* this handle's own max_message_size */
    uint64_t inline_max;  /* larger payloads go out of band (Python) */
    sem_t *sems[4];       /* send lock, receive lock, items bell, space bell */
    uint32_t pid;
    uint32_t send_token;
    uint32_t recv_token;
    int stopped;
    int saw_oob;
    int may_wait;       /* block in C (no spin= configured: the pure path spins) */
    int busy;           /* threads in a GIL-free stretch, using the semaphores and segment */
    uint64_t seen_head; /* the head when a send last found no room */
    int loop_bells[2];  /* FIFOs for event-loop waiters (data, room), owned by Python; -1: none */
} Ring;

enum { SEND_LOCK, RECV_LOCK, ITEMS, SPACE };

/* Header words: aligned, so each load and store is one machine access; acquire and
 * release order them against the record bytes, as the reference's memoryview item
 * stores are ordered on the x86 machines it runs on. */
static inline uint64_t ld64(const Ring *r, size_t off)
{
    return __atomic_load_n((const uint64_t *)(void *)(r->base + off), __ATOMIC_ACQUIRE);
}

static inline void st64(Ring *r, size_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(void *)(r->base + off), v, __ATOMIC_RELEASE);
}

static inline uint32_t ld32(const Ring *r, size_t off)
{
    return __atomic_load_n((const uint32_t *)(void *)(r->base + off), __ATOMIC_ACQUIRE);
}

static inline void st32(Ring *r, size_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(void *)(r->base + off), v, __ATOMIC_RELEASE);
}

/* -- the two locks: RobustLock's protocol (ipckit/_sync.py) -------------------------- */

typedef struct {
    int sem;
    size_t owner, gen, dirty, recoveries;
} lock_words;

static const lock_words SEND_WORDS = {SEND_LOCK, IK_SEND_OWNER, IK_SEND_GEN, IK_DIRTY_SEND,
                                      IK_RECOVERIES_SEND};
static const lock_words RECV_WORDS = {RECV_LOCK, IK_RECV_OWNER, IK_RECV_GEN, IK_DIRTY_RECV,
                                      IK_RECOVERIES_RECV};

static inline uint32_t token_of(const Ring *r, const lock_words *k)
{
    return k->sem == SEND_LOCK ? r->send_token : r->recv_token;
}

/* Take the lock if it is free now, record the owner, count a dead holder. */
static int take(Ring *r, const lock_words *k)
{
    if (sem_trywait(r->sems[k->sem]) != 0)
        return 0; /* EAGAIN (busy) or EINTR: the caller's pure path waits properly */
    st32(r, k->owner, r->pid);
    st32(r, k->gen, token_of(r, k));
    if (ld32(r, k->dirty)) /* the previous holder died inside; nothing it wrote is visible */
        st64(r, k->recoveries, ld64(r, k->recoveries) + 1);
    st32(r, k->dirty, 1);
    return 1;
}

static void give(Ring *r, const lock_words *k)
{
    if (ld32(r, k->owner) == r->pid && ld32(r, k->gen) == token_of(r, k)) {
        st32(r, k->dirty, 0);
        st32(r, k->owner, 0);
        sem_post(r->sems[k->sem]);
    }
}

/* Doorbell.ring_if_below: one ring if fewer are pending than sleepers counted; and
 * one byte into the side's FIFO while event loops are parked on it (_loopbell.py). */
static void wake(Ring *r, int bell)
{
    /* The store that published must be visible before the waiter count is read, or a
     * sleeper that registered meanwhile could miss both (it re-checks in 50 ms anyway). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t waiting = ld32(r, bell == ITEMS ? IK_RECV_WAITERS : IK_SEND_WAITERS);
    if (waiting) {
        int pending = 0;
        if (sem_getvalue(r->sems[bell], &pending) == 0 &&
            (pending < 0 || (uint32_t)pending < waiting))
            sem_post(r->sems[bell]);
    }
    int fd = r->loop_bells[bell == ITEMS ? 0 : 1];
    if (fd >= 0 && ld32(r, bell == ITEMS ? IK_ASYNC_RECV_WAITERS : IK_ASYNC_SEND_WAITERS)) {
        const char byte = 0;
        ssize_t n = write(fd, &byte, 1); /* non-blocking; a full FIFO is readable already */
        (void)n;
    }
}

static int usable(const Ring *r)
{
    return r->have_view && !r->stopped;
}

/* -- sending ------------------------------------------------------------------------- */

typedef struct {
    uint64_t head, tail, start_tail;
    uint64_t count, nbytes;
} send_state;

static int send_begin(Ring *r, send_state *s)
{
    if (ld32(r, IK_FLAGS) & IK_SHUT_FLAG || !take(r, &SEND_WORDS))
        return 0;
    /* Checked again under the lock shutdown() takes: no commit after the end. */
    if (ld32(r, IK_FLAGS) & IK_SHUT_FLAG) {
        give(r, &SEND_WORDS);
        return 0;
    }
    s->head = ld64(r, IK_HEAD);
    s->tail = s->start_tail = ld64(r, IK_TAIL);
    s->count = s->nbytes = 0;
    return 1;
}

static int send_one(Ring *r, send_state *s, unsigned ser, unsigned flags, const void *data,
                    uint64_t length)
{
    uint64_t tail;
    if (length > r->inline_max)
        return 0;
    if (ik_write_one(r->base, r->capacity, s->head, s->tail, ser, flags, data, length, &tail) !=
        IK_OK)
        return 0;
    s->tail = tail;
    s->count++;
    s->nbytes += length;
    return 1;
}

static void send_end(Ring *r, send_state *s)
{
    if (s->count) {
        st64(r, IK_TAIL, s->tail); /* publish: every record before it is complete */
        st64(r, IK_MSGS_IN, ld64(r, IK_MSGS_IN) + s->count);
        st64(r, IK_BYTES_IN, ld64(r, IK_BYTES_IN) + s->nbytes);
        uint64_t used = s->tail - s->head;
        if (used > ld64(r, IK_HIGH_WATER))
            st64(r, IK_HIGH_WATER, used);
    }
    give(r, &SEND_WORDS);
    if (s->count)
        wake(r, ITEMS);
}

PyDoc_STRVAR(try_send_doc,
             "try_send(frames) -> int\n\n"
             "Commit the longest prefix of OutFrames that fits now, inline, under one lock hold;\n"
             "0 when the lock is busy, the ring full or the channel shut down.");

static PyObject *Ring_try_send(Ring *r, PyObject *frames)
{
    if (!usable(r) || !(PyList_CheckExact(frames) || PyTuple_CheckExact(frames)))
        return PyLong_FromLong(0);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(frames);
    PyObject **items = PySequence_Fast_ITEMS(frames);
    send_state s;
    if (n == 0 || !send_begin(r, &s))
        return PyLong_FromLong(0);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = items[i];
        unsigned ser, flags;
        if (!PyTuple_Check(f) || PyTuple_GET_SIZE(f) != 4 ||
            !ik_small_uint(PyTuple_GET_ITEM(f, 0), 255, &ser) ||
            !ik_small_uint(PyTuple_GET_ITEM(f, 1), 0, &flags))
            break;
        Py_buffer b;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(f, 2), &b, PyBUF_SIMPLE) != 0) {
            PyErr_Clear();
            break;
        }
        PyObject *nbytes = PyTuple_GET_ITEM(f, 3);
        int ok = PyLong_CheckExact(nbytes) && PyLong_AsSsize_t(nbytes) == b.len &&
                 send_one(r, &s, ser, flags, b.buf, (uint64_t)b.len);
        PyBuffer_Release(&b);
        if (PyErr_Occurred())
            PyErr_Clear();
        if (!ok)
            break;
    }
    send_end(r, &s);
    return PyLong_FromUnsignedLongLong(s.count);
}

/* -- receiving ----------------------------------------------------------------------- */

/* Take up to max_items records into `out` (a list) under one hold of the receive
 * lock; -1 with an exception set only for MemoryError. Stops, leaving the record
 * for the pure path, at anything the reference must judge: a failed check, a
 * record over this handle's limit, an end-of-stream frame, and (inline_only) an
 * out-of-band reference. */
static Py_ssize_t take_frames(Ring *r, PyObject *out, Py_ssize_t max_items, int inline_only)
{
    if (ld64(r, IK_HEAD) == ld64(r, IK_TAIL)) {
        r->ep.blocked = 1; /* empty: endpoint.c may wait for the doorbell */
        return 0;
    }
    if (!take(r, &RECV_WORDS))
        return 0;
    uint64_t head = ld64(r, IK_HEAD);
    uint64_t tail = ld64(r, IK_TAIL);
    uint64_t first = head;
    Py_ssize_t count = 0;
    uint64_t nbytes = 0;
    unsigned saw = 0;
    int failed = 0;
    while (head != tail && count < max_items) {
        ik_record rec;
        if (ik_read_record(r->base, r->capacity, head, tail, r->segment_max, &rec) != IK_OK)
            break;
        if (rec.pad) {
            head = rec.next_head;
            continue;
        }
        unsigned flags = rec.header.flags;
        uint64_t length = rec.header.length;
        if ((flags & ~IK_FLAG_OOB) || (inline_only && flags) ||
            (!(flags & IK_FLAG_OOB) && length > r->accept_max))
            break;
        PyObject *payload = PyBytes_FromStringAndSize((const char *)r->base + rec.start,
                                                      (Py_ssize_t)length);
        PyObject *frame = payload ? ik_make_frame(rec.header.serializer_id, flags, payload) : NULL;
        if (frame == NULL || PyList_Append(out, frame) != 0) {
            Py_XDECREF(frame);
            failed = 1;
            break;
        }
        Py_DECREF(frame);
        head = rec.next_head;
        count++;
        nbytes += length;
        saw |= flags;
    }
    if (head != first) {
        st64(r, IK_HEAD, head); /* publish: the copies are done */
        st64(r, IK_MSGS_OUT, ld64(r, IK_MSGS_OUT) + (uint64_t)count);
        st64(r, IK_BYTES_OUT, ld64(r, IK_BYTES_OUT) + nbytes);
    }
    give(r, &RECV_WORDS);
    if (count)
        wake(r, SPACE);
    r->saw_oob = (saw & IK_FLAG_OOB) != 0;
    return failed ? -1 : count;
}

/* -- the Channel paths (endpoint.c) ------------------------------------------------- */

static int ring_usable(ik_endpoint *ep)
{
    return usable((Ring *)(void *)((char *)ep - offsetof(Ring, ep)));
}

static Py_ssize_t ring_send(ik_endpoint *ep, unsigned ser, const ik_payload *items, Py_ssize_t n)
{
    Ring *r = (Ring *)(void *)((char *)ep - offsetof(Ring, ep));
    send_state s;
    if (n == 0 || !send_begin(r, &s))
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!send_one(r, &s, ser, 0, items[i].data, items[i].length))
            break;
    if (s.count == 0) {
        r->ep.blocked = 1; /* no room: endpoint.c may wait for the doorbell */
        r->seen_head = s.head;
    }
    send_end(r, &s);
    return (Py_ssize_t)s.count;
}

/* -- waiting, as ShmTransport's send and receive loops do ---------------------------- */

#define WAIT_SLICE 0.05 /* _sync.WAIT_SLICE: a missed doorbell costs at most this */

static void abs_after(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    long long ns = ts->tv_nsec + (long long)(seconds * 1e9);
    ts->tv_sec += (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Take a lock for bookkeeping only, waiting up to a second with the GIL released. */
static int take_briefly(Ring *r, const lock_words *k)
{
    if (take(r, k))
        return 1;
    struct timespec until;
    abs_after(&until, 1.0);
    int rc;
    r->busy++;
    Py_BEGIN_ALLOW_THREADS
    do
        rc = sem_timedwait(r->sems[k->sem], &until);
    while (rc != 0 && errno == EINTR);
    Py_END_ALLOW_THREADS
    r->busy--;
    if (rc != 0)
        return 0;
    /* Taken by sem_timedwait: record the owner as take() does. */
    st32(r, k->owner, r->pid);
    st32(r, k->gen, token_of(r, k));
    if (ld32(r, k->dirty))
        st64(r, k->recoveries, ld64(r, k->recoveries) + 1);
    st32(r, k->dirty, 1);
    return 1;
}

/* How long a waiter watches the ring before it sleeps. A peer on another CPU then
 * usually publishes within it and nobody pays for a doorbell; yielding now and then
 * lets a peer on the same CPU run meanwhile. Measured on the 2-CPU development
 * machine (ipckit bench, 64-byte send_bytes): without it, 1.4M msgs/s across CPUs
 * (every message a doorbell); with 10 us, see docs/benchmarks.md. */
#define SPIN_SECONDS 10e-6

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int changed(Ring *r, int sending)
{
    return sending ? ld64(r, IK_HEAD) != r->seen_head : ld64(r, IK_HEAD) != ld64(r, IK_TAIL);
}

static int spin_for_change(Ring *r, int sending)
{
    int seen = 0;
    /* Watch one word, the one the other side writes: the tail for a receiver (the ring
     * was empty), the head for a sender; reading both would pull two cache lines from
     * the other CPU on every turn. */
    size_t word = sending ? IK_HEAD : IK_TAIL;
    uint64_t was = sending ? r->seen_head : ld64(r, IK_HEAD);
    r->busy++;
    Py_BEGIN_ALLOW_THREADS
    double until = now() + SPIN_SECONDS;
    for (unsigned turn = 1; !(seen = ld64(r, word) != was); turn++) {
        cpu_relax();
        if (turn % 64 == 0) {
            if (now() >= until)
                break;
            sched_yield();
        }
    }
    Py_END_ALLOW_THREADS
    r->busy--;
    return seen;
}

/* Count ourselves a waiter under the lock (as the reference's step() does), sleep on
 * the doorbell with the GIL released, and uncount. A waiter killed while counted
 * leaves a count that only costs a spare doorbell later, as in the reference. */
static int ring_wait(ik_endpoint *ep, int sending, double seconds)
{
    Ring *r = (Ring *)(void *)((char *)ep - offsetof(Ring, ep));
    if (!usable(r) || !r->may_wait)
        return 0;
    const lock_words *k = sending ? &SEND_WORDS : &RECV_WORDS;
    size_t waiters_at = sending ? IK_SEND_WAITERS : IK_RECV_WAITERS;
    size_t blocked_at = sending ? IK_BLOCKED_SEND : IK_BLOCKED_RECV;
    if (PyErr_CheckSignals() < 0)
        return -1;
    if (spin_for_change(r, sending))
        return usable(r);
    if (!take(r, k))
        return 0; /* busy (or its holder died): the pure path waits and takes over */
    int again = changed(r, sending);
    if (ld32(r, IK_FLAGS) & IK_SHUT_FLAG || again) {
        give(r, k);
        return again && !(ld32(r, IK_FLAGS) & IK_SHUT_FLAG); /* shut: the pure path says so */
    }
    st32(r, waiters_at, ld32(r, waiters_at) + 1);
    give(r, k);
    struct timespec until;
    abs_after(&until, seconds < WAIT_SLICE ? seconds : WAIT_SLICE);
    double started = now();
    int rc, err;
    r->busy++;
    Py_BEGIN_ALLOW_THREADS
    rc = sem_timedwait(r->sems[sending ? SPACE : ITEMS], &until);
    err = errno;
    Py_END_ALLOW_THREADS
    r->busy--;
    double slept = now() - started;
    if (usable(r) && take_briefly(r, k)) {
        uint32_t waiting = ld32(r, waiters_at);
        st32(r, waiters_at, waiting ? waiting - 1 : 0);
        st64(r, blocked_at, ld64(r, blocked_at) + (uint64_t)(slept * 1e9));
        give(r, k);
    }
    if (rc != 0 && err == EINTR && PyErr_CheckSignals() < 0)
        return -1;
    return usable(r);
}

static Py_ssize_t ring_take(ik_endpoint *ep, PyObject *out, Py_ssize_t max_items)
{
    return take_frames((Ring *)(void *)((char *)ep - offsetof(Ring, ep)), out, max_items, 1);
}

static const ik_endpoint_ops RING_OPS = {ring_usable, ring_send, ring_take, ring_wait};

PyDoc_STRVAR(try_recv_doc,
             "try_recv(max_items) -> list[Frame] | None\n\n"
             "Take 1..max_items records now (out-of-band references still marked: see\n"
             "saw_oob); None when the lock is busy, the ring empty or the next record is\n"
             "for the pure path to judge.");

static PyObject *Ring_try_recv(Ring *r, PyObject *arg)
{
    Py_ssize_t max_items = PyLong_AsSsize_t(arg);
    if (max_items == -1 && PyErr_Occurred())
        return NULL;
    if (!usable(r) || max_items < 1)
        Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t got = take_frames(r, out, max_items, 0);
    if (got <= 0) {
        Py_DECREF(out);
        if (got < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    return out;
}

/* -- lifecycle ----------------------------------------------------------------------- */

static void close_sems(Ring *r)
{
    for (int i = 0; i < 4; i++) {
        if (r->sems[i] != NULL && r->sems[i] != SEM_FAILED)
            sem_close(r->sems[i]);
        r->sems[i] = NULL;
    }
}

static void release_all(Ring *r)
{
    r->stopped = 1;
    r->loop_bells[0] = r->loop_bells[1] = -1; /* Python closes them after this returns */
    if (r->busy) {
        /* Another thread sleeps in ring_wait with the GIL released, on these semaphores
         * and this segment (close() from another thread): wake it and let it leave
         * before they are closed and unmapped. A spare doorbell only makes a waiter
         * look again. Still inside after a second: keep them (a leak, not a crash). */
        for (int bell = ITEMS; bell <= SPACE; bell++)
            if (r->sems[bell] != NULL)
                sem_post(r->sems[bell]);
        struct timespec pause = {0, 250000};
        for (int i = 0; r->busy && i < 4000; i++) {
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&pause, NULL);
            Py_END_ALLOW_THREADS
        }
        if (r->busy)
            return;
    }
    if (r->have_view) {
        r->have_view = 0;
        r->base = NULL;
        PyBuffer_Release(&r->view);
    }
    close_sems(r);
}

static int Ring_traverse(Ring *r, visitproc visit, void *arg)
{
    return ik_endpoint_traverse(&r->ep, visit, arg);
}

static int Ring_clear(Ring *r)
{
    ik_endpoint_clear(&r->ep);
    return 0;
}

static void Ring_dealloc(Ring *r)
{
    PyObject_GC_UnTrack(r);
    release_all(r);
    Ring_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int Ring_init(Ring *r, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"segment",  "capacity", "segment_max", "accept_max",
                             "send_sem", "recv_sem", "items_sem",   "space_sem",
                             "pid",      "send_token", "recv_token", NULL};
    PyObject *segment;
    unsigned long long capacity, segment_max, accept_max;
    const char *names[4];
    unsigned long pid, send_token, recv_token;
    if (ik_frame_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call set_frame_type() first");
        return -1;
    }
    if (r->have_view || r->sems[0] != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Ring is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OKKKsssskkk", kwlist, &segment, &capacity,
                                     &segment_max, &accept_max, &names[0], &names[1], &names[2],
                                     &names[3], &pid, &send_token, &recv_token))
        return -1;
    if (capacity % IK_ALIGN || capacity < IK_MIN_CAPACITY || segment_max > (1ull << 62) ||
        pid == 0 || pid > UINT32_MAX || send_token > UINT32_MAX || recv_token > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "impossible ring parameters");
        return -1;
    }
    if (PyObject_GetBuffer(segment, &r->view, PyBUF_WRITABLE) != 0)
        return -1;
    r->have_view = 1;
    if ((uint64_t)r->view.len < IK_DATA_OFFSET + capacity ||
        ((uintptr_t)r->view.buf % 8) != 0) {
        release_all(r);
        PyErr_SetString(PyExc_ValueError, "the segment is smaller than its ring");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        r->sems[i] = sem_open(names[i], 0);
        if (r->sems[i] == SEM_FAILED) {
            r->sems[i] = NULL;
            PyErr_SetFromErrnoWithFilename(PyExc_OSError, names[i]);
            release_all(r);
            return -1;
        }
    }
    r->base = r->view.buf;
    r->capacity = capacity;
    r->segment_max = segment_max;
    r->accept_max = accept_max;
    r->inline_max = capacity / 2 - IK_HEADER_SIZE;
    r->pid = (uint32_t)pid;
    r->send_token = (uint32_t)send_token;
    r->recv_token = (uint32_t)recv_token;
    r->stopped = 0;
    r->loop_bells[0] = r->loop_bells[1] = -1;
    ik_endpoint_setup(&r->ep, &RING_OPS);
    r->ep.send_max = r->inline_max;
    return 0;
}

static PyObject *Ring_rebind(Ring *r, PyObject *arg)
{
    unsigned long pid = PyLong_AsUnsignedLong(arg);
    if (pid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (pid == 0 || pid > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "not a pid");
        return NULL;
    }
    r->pid = (uint32_t)pid;
    Py_RETURN_NONE;
}

static PyObject *Ring_set_waits(Ring *r, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0)
        return NULL;
    r->may_wait = on;
    Py_RETURN_NONE;
}

static PyObject *Ring_set_bells(Ring *r, PyObject *args)
{
    int data_fd, room_fd;
    if (!PyArg_ParseTuple(args, "ii:set_bells", &data_fd, &room_fd))
        return NULL;
    if (data_fd < 0 || room_fd < 0) {
        PyErr_SetString(PyExc_ValueError, "not a descriptor");
        return NULL;
    }
    r->loop_bells[0] = data_fd;
    r->loop_bells[1] = room_fd;
    Py_RETURN_NONE;
}

static PyObject *Ring_stop(Ring *r, PyObject *Py_UNUSED(ignored))
{
    r->stopped = 1;
    Py_RETURN_NONE;
}

static PyObject *Ring_release(Ring *r, PyObject *Py_UNUSED(ignored))
{
    release_all(r);
    Py_RETURN_NONE;
}

static PyObject *Ring_get_saw_oob(Ring *r, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(r->saw_oob);
}

static PyMethodDef Ring_methods[] = {
    {"try_send", (PyCFunction)Ring_try_send, METH_O, try_send_doc},
    {"try_recv", (PyCFunction)Ring_try_recv, METH_O, try_recv_doc},
    IK_ENDPOINT_METHODS,
    {"rebind", (PyCFunction)Ring_rebind, METH_O, "rebind(pid): after fork, the child's pid."},
    {"set_waits", (PyCFunction)Ring_set_waits, METH_O,
     "set_waits(flag): block in C while full or empty (False with spin=: Python spins)."},
    {"set_bells", (PyCFunction)Ring_set_bells, METH_VARARGS,
     "set_bells(data_fd, room_fd): the FIFOs to ring while event loops are parked."},
    {"stop", (PyCFunction)Ring_stop, METH_NOARGS, "stop(): every later call returns 'not done'."},
    {"release", (PyCFunction)Ring_release, METH_NOARGS,
     "release(): stop, drop the segment's buffer and close the semaphores."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Ring_getset[] = {
    {"saw_oob", (getter)Ring_get_saw_oob, NULL,
     "True when the last try_recv took an out-of-band reference.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ipckit._core.Ring",
    .tp_basicsize = sizeof(Ring),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The never-waiting paths of one shm:// handle (see ipckit/backends/shm.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ring_init,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_traverse = (traverseproc)Ring_traverse,
    .tp_clear = (inquiry)Ring_clear,
    .tp_methods = Ring_methods,
    .tp_getset = Ring_getset,
};

/* -- the pure functions, for the tests that compare them with the reference ---------- */

static int writable_segment(PyObject *o, Py_buffer *b, unsigned long long capacity)
{
    if (PyObject_GetBuffer(o, b, PyBUF_WRITABLE) != 0)
        return 0;
    if (capacity % IK_ALIGN || capacity < IK_ALIGN * 2 ||
        (uint64_t)b->len < IK_DATA_OFFSET + capacity) {
        PyBuffer_Release(b);
        PyErr_SetString(PyExc_ValueError, "the buffer is smaller than its ring");
        return 0;
    }
    return 1;
}

static PyObject *core_write_one(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *seg;
    unsigned long long head, tail, capacity;
    unsigned ser, flags;
    Py_buffer payload, b;
    if (!PyArg_ParseTuple(args, "OKKKIIy*", &seg, &head, &tail, &capacity, &ser, &flags,
                          &payload))
        return NULL;
    if (!writable_segment(seg, &b, capacity)) {
        PyBuffer_Release(&payload);
        return NULL;
    }
    uint64_t new_tail = 0;
    enum ik_status st = ser > 255 || flags > 255
                            ? IK_E_FLAGS
                            : ik_write_one(b.buf, capacity, head, tail, ser, flags, payload.buf,
                                           (uint64_t)payload.len, &new_tail);
    PyBuffer_Release(&b);
    PyBuffer_Release(&payload);
    if (st != IK_OK)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLongLong(new_tail);
}

static PyObject *core_read_record(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *seg;
    unsigned long long head, tail, capacity, max;
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "OKKKK", &seg, &head, &tail, &capacity, &max))
        return NULL;
    if (!writable_segment(seg, &b, capacity))
        return NULL;
    ik_record rec;
    enum ik_status st = ik_read_record(b.buf, capacity, head, tail, max, &rec);
    PyBuffer_Release(&b);
    if (st != IK_OK)
        return PyLong_FromLong((long)st);
    if (rec.pad)
        return Py_BuildValue("(iiKiK)", 0, 0, 0ull, -1, (unsigned long long)rec.next_head);
    return Py_BuildValue("(IIKKK)", rec.header.serializer_id, rec.header.flags,
                         (unsigned long long)rec.start, (unsigned long long)rec.header.length,
                         (unsigned long long)rec.next_head);
}

static PyObject *core_decode_header(PyObject *Py_UNUSED(m), PyObject *args)
{
    Py_buffer b;
    Py_ssize_t offset;
    unsigned long long max;
    if (!PyArg_ParseTuple(args, "y*nK", &b, &offset, &max))
        return NULL;
    ik_header h;
    enum ik_status st = offset < 0 || offset > b.len
                            ? IK_E_TRUNCATED
                            : ik_decode_header((const uint8_t *)b.buf + offset,
                                               (size_t)(b.len - offset), max, &h);
    PyBuffer_Release(&b);
    if (st != IK_OK)
        return PyLong_FromLong((long)st);
    return Py_BuildValue("(IIK)", h.serializer_id, h.flags, (unsigned long long)h.length);
}

static PyObject *core_encode_header(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned ser, flags;
    unsigned long long length;
    if (!PyArg_ParseTuple(args, "IIK", &ser, &flags, &length))
        return NULL;
    if (ser > 255 || flags > 255) {
        PyErr_SetString(PyExc_ValueError, "serializer id and flags are one byte each");
        return NULL;
    }
    uint8_t out[IK_HEADER_SIZE];
    ik_encode_header(out, ser, flags, length);
    return PyBytes_FromStringAndSize((const char *)out, IK_HEADER_SIZE);
}

static PyObject *core_set_frame_type(PyObject *Py_UNUSED(m), PyObject *t)
{
    if (!PyType_Check(t) || !PyType_IsSubtype((PyTypeObject *)t, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Frame must be a tuple subclass");
        return NULL;
    }
    Py_INCREF(t);
    Py_XSETREF(ik_frame_type, (PyTypeObject *)t);
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"write_one", core_write_one, METH_VARARGS,
     "write_one(segment, head, tail, capacity, ser, flags, payload) -> new tail or -1 "
     "(ring.write_one)."},
    {"read_record", core_read_record, METH_VARARGS,
     "read_record(segment, head, tail, capacity, max) -> (ser, flags, start, length, next) "
     "or a status code > 0 (ring.read_record)."},
    {"decode_header", core_decode_header, METH_VARARGS,
     "decode_header(data, offset, max) -> (ser, flags, length) or a status code > 0."},
    {"encode_header", core_encode_header, METH_VARARGS,
     "encode_header(ser, flags, length) -> the 16 header bytes."},
    {"set_frame_type", core_set_frame_type, METH_O, "set_frame_type(Frame)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ipckit._core",
    .m_doc = "ipckit's compiled hot paths; ipckit/_accel.py decides whether they are used.",
    .m_size = -1,
    .m_methods = core_methods,
};

static int add_type(PyObject *m, const char *name, PyTypeObject *t)
{
    if (PyType_Ready(t) < 0)
        return -1;
    Py_INCREF(t);
    if (PyModule_AddObject(m, name, (PyObject *)t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__core(void)
{
    if (ik_endpoint_module_init() < 0 || ik_stream_module_init() < 0 ||
        ik_queue_module_init() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (m == NULL)
        return NULL;
    if (add_type(m, "Ring", &RingType) < 0 || add_type(m, "Decoder", &ik_DecoderType) < 0 ||
        add_type(m, "Stream", &ik_StreamType) < 0 || add_type(m, "Queue", &ik_QueueType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
