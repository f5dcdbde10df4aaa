/* Fuzz target for the C ring's record parser, header decoder and writer (csrc/ring.c).
 *
 * libFuzzer entry point; built with clang -fsanitize=fuzzer,address,undefined it runs
 * under libFuzzer, and with -DIK_STANDALONE_DRIVER (gcc, no libFuzzer) a small driver
 * below feeds it random and mutated inputs for a fixed number of iterations.
 * scripts/fuzz.sh picks whichever the machine has. Any out-of-bounds access is caught
 * by AddressSanitizer; the invariants below abort on a wrong answer.
 *
 * Input: 16 bytes of parameters (capacity choice, head, used, limit), the rest is the
 * ring's contents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16)
        return 0;
    static const uint64_t capacities[4] = {4096, 4112, 8192, 65536};
    uint64_t capacity = capacities[data[0] & 3];
    uint64_t head = rd(data + 1, 5) * ((data[0] & 4) ? 16 : 1);
    uint64_t used = rd(data + 6, 3) % (capacity + 64);
    uint64_t limit = rd(data + 9, 4);
    size_t seg_size = IK_DATA_OFFSET + capacity;
    /* An exact-size heap block, so ASan sees a read one byte past the ring. */
    uint8_t *seg = malloc(seg_size);
    if (seg == NULL)
        return 0;
    memset(seg, 0, seg_size);
    size_t body = size - 16 < capacity ? size - 16 : (size_t)capacity;
    memcpy(seg + IK_DATA_OFFSET + (head % capacity) % (capacity - body + 1), data + 16, body);
    uint64_t tail = head + used;

    /* Parse the way the binding's take_frames does: every accepted record lies inside
     * the ring, inside the committed data, and moves the head forward. */
    uint64_t h = head;
    for (int steps = 0; h != tail && steps < 10000; steps++) {
        ik_record rec;
        if (ik_read_record(seg, capacity, h, tail, limit, &rec) != IK_OK)
            break;
        CHECK(rec.next_head > h && rec.next_head <= tail);
        CHECK(rec.next_head - h <= capacity - h % capacity);
        if (!rec.pad) {
            CHECK(rec.header.length <= limit);
            CHECK(rec.start >= IK_DATA_OFFSET + IK_HEADER_SIZE);
            CHECK(rec.start + rec.header.length <= seg_size);
            volatile uint8_t sink = 0;
            for (uint64_t i = 0; i < rec.header.length; i += 97)
                sink ^= seg[rec.start + i];
            (void)sink;
        }
        h = rec.next_head;
    }

    /* The stream decoder's header check over every offset of the input. */
    for (size_t off = 0; off + 1 < size; off += 7) {
        ik_header hd;
        if (ik_decode_header(data + off, size - off, limit, &hd) == IK_OK) {
            CHECK(hd.length <= limit);
            CHECK(!(hd.flags & ~IK_KNOWN_FLAGS));
            uint8_t again[IK_HEADER_SIZE];
            ik_encode_header(again, hd.serializer_id, hd.flags, hd.length);
            CHECK(memcmp(again, data + off, IK_HEADER_SIZE) == 0);
        }
    }

    /* Write what fits and read it straight back: the same header and bytes. */
    uint64_t wh = head - head % IK_ALIGN;
    uint64_t wt = wh + (used - used % IK_ALIGN) % (capacity + 1);
    uint64_t length = rd(data + 13, 3) % (capacity / 2 - IK_HEADER_SIZE + 1);
    if (length > size - 16)
        length = size - 16;
    uint64_t new_tail;
    enum ik_status st = ik_write_one(seg, capacity, wh, wt, data[15], 0, data + 16, length,
                                     &new_tail);
    if (st == IK_OK) {
        CHECK(new_tail > wt && new_tail - wh <= capacity && new_tail % IK_ALIGN == 0);
        uint64_t at = wt;
        ik_record rec;
        CHECK(ik_read_record(seg, capacity, at, new_tail, UINT64_MAX >> 2, &rec) == IK_OK);
        if (rec.pad) {
            at = rec.next_head;
            CHECK(ik_read_record(seg, capacity, at, new_tail, UINT64_MAX >> 2, &rec) == IK_OK);
        }
        CHECK(!rec.pad && rec.header.length == length && rec.next_head == new_tail);
        CHECK(rec.header.serializer_id == data[15]);
        CHECK(memcmp(seg + rec.start, data + 16, (size_t)length) == 0);
    }
    free(seg);
    return 0;
}

#ifdef IK_STANDALONE_DRIVER
/* Random inputs and mutations of well-formed ones; argv[1] iterations, argv[2] seed. */
static uint64_t state = 88172645463325252ull;
static uint64_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 100000;
    if (argc > 2)
        state ^= (uint64_t)atoll(argv[2]) * 0x9E3779B97F4A7C15ull;
    static uint8_t buf[16 + 9000];
    for (long it = 0; it < iterations; it++) {
        size_t size = 16 + next() % (sizeof buf - 16);
        for (size_t i = 0; i < size; i++)
            buf[i] = (uint8_t)next();
        if (it % 2) {
            /* Well-formed records with a few flipped bytes: the interesting cases. */
            size_t at = 16;
            while (at + 32 <= size) {
                uint64_t len = next() % 64;
                if (at + 16 + len > size)
                    break;
                ik_encode_header(buf + at, (unsigned)(next() & 0xff), (unsigned)(next() % 4 == 0),
                                 len);
                at += ik_record_size(len);
            }
            for (int flips = size > 16 ? (int)(next() % 4) : 0; flips > 0; flips--)
                buf[16 + next() % (size - 16)] ^= (uint8_t)(1u << (next() % 8));
            buf[0] &= 0x07;
            buf[9] = buf[10] = 0xff;
            buf[11] = buf[12] = 0;
        }
        LLVMFuzzerTestOneInput(buf, size);
    }
    printf("fuzz_ring: %ld inputs, no invariant failed, no sanitizer report\n", iterations);
    return 0;
}
#endif
