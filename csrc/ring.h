/* The shared-memory ring and the frame header, in C with no Python in it.
 *
 * This mirrors ipckit/backends/_ring.py and ipckit/_framing.py, which are the
 * reference: same layout, same arithmetic, and every field read from shared
 * memory or a peer is checked before it is used. Where the Python reference
 * would raise, these functions return an error code and touch nothing; the
 * binding (core.c) then hands the case back to the Python code, which raises
 * the one documented error. So C never has an error path of its own to drift.
 *
 * Kept free of Python so the fuzz target (fuzz/fuzz_ring.c) links it alone.
 */
#ifndef IPCKIT_RING_H
#define IPCKIT_RING_H

#include <stddef.h>
#include <stdint.h>

/* Frame header (ipckit/_framing.py). */
#define IK_HEADER_SIZE 16u
#define IK_FRAME_VERSION 1u
#define IK_FLAG_OOB 0x01u
#define IK_FLAG_EOS 0x02u
#define IK_KNOWN_FLAGS (IK_FLAG_OOB | IK_FLAG_EOS)

/* Segment layout (ipckit/backends/_ring.py). */
#define IK_META_CAPACITY 16u
#define IK_META_MAX_MESSAGE 24u
#define IK_FLAGS 32u
#define IK_SHUT_FLAG 1u
#define IK_HEAD 64u
#define IK_MSGS_OUT 72u
#define IK_BYTES_OUT 80u
#define IK_RECV_WAITERS 88u
#define IK_DIRTY_RECV 92u
#define IK_RECOVERIES_RECV 96u
#define IK_BLOCKED_RECV 104u
#define IK_RECV_OWNER 112u
#define IK_RECV_GEN 116u
#define IK_ASYNC_RECV_WAITERS 120u
#define IK_TAIL 128u
#define IK_MSGS_IN 136u
#define IK_BYTES_IN 144u
#define IK_SEND_WAITERS 152u
#define IK_DIRTY_SEND 156u
#define IK_RECOVERIES_SEND 160u
#define IK_BLOCKED_SEND 168u
#define IK_HIGH_WATER 176u
#define IK_SEND_OWNER 184u
#define IK_SEND_GEN 188u
#define IK_ASYNC_SEND_WAITERS 192u
#define IK_DATA_OFFSET 256u
#define IK_ALIGN 16u
#define IK_MIN_CAPACITY 4096u

/* Outcomes of the decoders; IK_OK is 0, everything else means "not accepted". */
enum ik_status {
    IK_OK = 0,
    IK_E_TRUNCATED,    /* fewer than 16 header bytes */
    IK_E_MAGIC,        /* not "IK" */
    IK_E_VERSION,      /* a version this code does not speak */
    IK_E_FLAGS,        /* unknown flag bits */
    IK_E_RESERVED,     /* reserved bytes not zero */
    IK_E_TOO_LARGE,    /* length over the limit */
    IK_E_EOS_PAYLOAD,  /* end-of-stream frame with a payload */
    IK_E_INDICES,      /* head/tail impossible for the capacity */
    IK_E_PAD,          /* a pad record that does not end the ring */
    IK_E_FIT,          /* a record longer than the committed data */
    IK_E_NO_ROOM       /* a write that does not fit now (not corruption) */
};

typedef struct {
    unsigned serializer_id;
    unsigned flags;
    uint64_t length;
} ik_header;

typedef struct {
    int pad;           /* 1: a pad record, skip to next_head */
    ik_header header;  /* when pad == 0 */
    uint64_t start;    /* payload offset from the start of the segment */
    uint64_t next_head;
} ik_record;

static inline uint64_t ik_record_size(uint64_t length)
{
    return (IK_HEADER_SIZE + length + IK_ALIGN - 1) & ~(uint64_t)(IK_ALIGN - 1);
}

/* The 16 header bytes for a payload of `length` bytes. */
void ik_encode_header(uint8_t out[IK_HEADER_SIZE], unsigned serializer_id, unsigned flags,
                      uint64_t length);

/* Check the header in `data[0:avail]` as _framing.decode_header does. */
enum ik_status ik_decode_header(const uint8_t *data, size_t avail, uint64_t max_message_size,
                                ik_header *out);

/* Check the record at `head` (the checks of _ring.read_record; the 16 bytes read once). */
enum ik_status ik_read_record(const uint8_t *segment, uint64_t capacity, uint64_t head,
                              uint64_t tail, uint64_t max_message_size, ik_record *out);

/* Copy one record at `tail` (after a pad if needed), as _ring.write_one; the new
 * tail in *new_tail, IK_NO_ROOM when it does not fit, IK_E_INDICES when head/tail
 * are impossible. The caller checked that length <= capacity / 2 - 16. */
enum ik_status ik_write_one(uint8_t *segment, uint64_t capacity, uint64_t head, uint64_t tail,
                            unsigned serializer_id, unsigned flags, const void *payload,
                            uint64_t length, uint64_t *new_tail);

/* Little-endian 64-bit load/store of unaligned bytes (the frame header's length). */
static inline uint64_t ik_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
