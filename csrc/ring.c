/* See ring.h: the ring arithmetic and the header checks, mirroring the Python reference. */
#include "ring.h"

#include <string.h>

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

void ik_encode_header(uint8_t out[IK_HEADER_SIZE], unsigned serializer_id, unsigned flags,
                      uint64_t length)
{
    out[0] = 'I';
    out[1] = 'K';
    out[2] = (uint8_t)IK_FRAME_VERSION;
    out[3] = (uint8_t)serializer_id;
    out[4] = (uint8_t)flags;
    out[5] = out[6] = out[7] = 0;
    put_le64(out + 8, length);
}

enum ik_status ik_decode_header(const uint8_t *data, size_t avail, uint64_t max_message_size,
                                ik_header *out)
{
    uint8_t h[IK_HEADER_SIZE];
    if (avail < IK_HEADER_SIZE)
        return IK_E_TRUNCATED;
    /* One copy: a peer writing the shared bytes meanwhile cannot make us check one
     * value and use another. */
    memcpy(h, data, IK_HEADER_SIZE);
    if (h[0] != 'I' || h[1] != 'K')
        return IK_E_MAGIC;
    if (h[2] != IK_FRAME_VERSION)
        return IK_E_VERSION;
    if (h[4] & ~IK_KNOWN_FLAGS)
        return IK_E_FLAGS;
    if (h[5] | h[6] | h[7])
        return IK_E_RESERVED;
    uint64_t length = ik_le64(h + 8);
    if (length > max_message_size)
        return IK_E_TOO_LARGE;
    if ((h[4] & IK_FLAG_EOS) && length)
        return IK_E_EOS_PAYLOAD;
    out->serializer_id = h[3];
    out->flags = h[4];
    out->length = length;
    return IK_OK;
}

static int indices_ok(uint64_t capacity, uint64_t head, uint64_t tail)
{
    return head <= tail && tail - head <= capacity && head % IK_ALIGN == 0 &&
           tail % IK_ALIGN == 0;
}

enum ik_status ik_read_record(const uint8_t *segment, uint64_t capacity, uint64_t head,
                              uint64_t tail, uint64_t max_message_size, ik_record *out)
{
    if (!indices_ok(capacity, head, tail) || head == tail)
        return IK_E_INDICES;
    uint64_t pos = head % capacity;
    uint64_t room = capacity - pos;
    const uint8_t *at = segment + IK_DATA_OFFSET + pos;
    /* A record header is 16 bytes and records are 16-aligned, so room >= 16 here. */
    uint8_t h[IK_HEADER_SIZE];
    memcpy(h, at, IK_HEADER_SIZE);
    if (h[0] == 'P' && h[1] == 'D') {
        uint64_t length = ik_le64(h + 8);
        if (length != room || room > tail - head)
            return IK_E_PAD;
        out->pad = 1;
        out->next_head = head + room;
        return IK_OK;
    }
    enum ik_status st = ik_decode_header(h, IK_HEADER_SIZE, max_message_size, &out->header);
    if (st != IK_OK)
        return st;
    uint64_t length = out->header.length;
    /* length <= max_message_size, which the caller bounds well below 2**63. */
    if (length > capacity)
        return IK_E_FIT;
    uint64_t record = ik_record_size(length);
    if (record > room || record > tail - head)
        return IK_E_FIT;
    out->pad = 0;
    out->start = IK_DATA_OFFSET + pos + IK_HEADER_SIZE;
    out->next_head = head + record;
    return IK_OK;
}

enum ik_status ik_write_one(uint8_t *segment, uint64_t capacity, uint64_t head, uint64_t tail,
                            unsigned serializer_id, unsigned flags, const void *payload,
                            uint64_t length, uint64_t *new_tail)
{
    if (!indices_ok(capacity, head, tail) || length > capacity / 2)
        return IK_E_INDICES;
    uint64_t record = ik_record_size(length);
    uint64_t used = tail - head;
    uint64_t pos = tail % capacity;
    uint64_t room = capacity - pos;
    if (record > room) {
        if (room + record > capacity - used)
            return IK_E_NO_ROOM;
        uint8_t *pad = segment + IK_DATA_OFFSET + pos;
        pad[0] = 'P';
        pad[1] = 'D';
        memset(pad + 2, 0, 6);
        put_le64(pad + 8, room);
        tail += room;
        pos = 0;
    } else if (record > capacity - used) {
        return IK_E_NO_ROOM;
    }
    uint8_t *at = segment + IK_DATA_OFFSET + pos;
    ik_encode_header(at, serializer_id, flags, length);
    if (length)
        memcpy(at + IK_HEADER_SIZE, payload, (size_t)length);
    *new_tail = tail + record;
    return IK_OK;
}
