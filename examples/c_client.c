/* An ipckit client in C, written from docs/protocol.md: the unix:// handshake (with
 * an authkey: HMAC-SHA256 both ways), then msgpack requests and replies in frames.
 *
 *   cc -std=c11 -O2 -Wall -Wextra -o c_client c_client.c
 *   ./c_client SOCKET AUTHKEY_HEX COUNT
 *
 * SOCKET is a path, or @NAME for an abstract socket. For each i in 0..COUNT-1 it
 * sends {"op": "add", "args": [i, 2*i]} and expects the integer 3*i back; then it
 * sends the end-of-stream frame and closes. Exit status 0 means every reply was
 * right. No library beyond libc: SHA-256 and the bits of msgpack it needs are here.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* -- SHA-256 (FIPS 180-4) and HMAC (RFC 2104) ---------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;
    uint64_t bytes;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha256_block(sha256 *s, const uint8_t *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
    e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static void sha256_init(sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->used = 0;
    s->bytes = 0;
}

static void sha256_update(sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->bytes += n;
    while (n) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, take);
        s->used += take, p += take, n -= take;
        if (s->used == 64) {
            sha256_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha256_final(sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->bytes * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(s, &pad, 1);
    while (s->used != 56)
        sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

/* HMAC-SHA256(key, label + challenge): the proof of docs/protocol.md. */
static void proof(const uint8_t *key, size_t key_len, const char *label, const uint8_t chal[32],
                  uint8_t out[32])
{
    uint8_t k[64] = {0}, pad[64], inner[32];
    sha256 s;
    if (key_len > 64) {
        sha256_init(&s);
        sha256_update(&s, key, key_len);
        sha256_final(&s, k);
    } else {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, label, strlen(label));
    sha256_update(&s, chal, 32);
    sha256_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, 64);
    sha256_update(&s, inner, 32);
    sha256_final(&s, out);
}

static int same(const uint8_t *a, const uint8_t *b, size_t n) /* constant time */
{
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* -- I/O ----------------------------------------------------------------------------- */

static void die(const char *what)
{
    fprintf(stderr, "c_client: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static void put(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w, n -= (size_t)w;
    }
}

static void get(int fd, void *data, size_t n)
{
    uint8_t *p = data;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            errno = 0;
            die("the server closed the connection");
        }
        if (r < 0)
            die("read");
        p += r, n -= (size_t)r;
    }
}

/* -- the handshake ------------------------------------------------------------------- */

#define AUTH 0x01
#define DENIED 0x80

static void handshake(int fd, const uint8_t *key, size_t key_len)
{
    uint8_t hello[6], challenge[32], mine[32], mac[32], reply[4];
    get(fd, hello, 6);
    errno = 0;
    if (memcmp(hello, "IKSH", 4) != 0 || hello[4] != 1)
        die("the server does not speak handshake version 1");
    if (hello[5] & DENIED)
        die("the server refused this user");
    if (!(hello[5] & AUTH) || key_len == 0)
        die("this client expects a server with the same authkey");
    get(fd, challenge, 32);
    int rnd = open("/dev/urandom", O_RDONLY);
    if (rnd < 0 || read(rnd, mine, 32) != 32)
        die("/dev/urandom");
    close(rnd);
    uint8_t answer[70] = {'I', 'K', 'S', 'H', 1, AUTH};
    proof(key, key_len, "ipckit client proof", challenge, answer + 6);
    memcpy(answer + 38, mine, 32);
    put(fd, answer, sizeof(answer));
    get(fd, reply, 4);
    errno = 0;
    if (memcmp(reply, "OKAY", 4) != 0)
        die("the server rejected the authkey");
    get(fd, mac, 32);
    uint8_t expected[32];
    proof(key, key_len, "ipckit server proof", mine, expected);
    if (!same(mac, expected, 32)) {
        put(fd, "FAIL", 4);
        die("the server could not prove it has the same authkey");
    }
    put(fd, "OKAY", 4);
}

/* -- frames and the bits of msgpack this client needs ------------------------------- */

static size_t header(uint8_t out[16], unsigned ser, unsigned flags, uint64_t length)
{
    out[0] = 'I', out[1] = 'K', out[2] = 1, out[3] = (uint8_t)ser, out[4] = (uint8_t)flags;
    out[5] = out[6] = out[7] = 0;
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(length >> (8 * i));
    return 16;
}

static size_t pack_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        p[0] = (uint8_t)v;
        return 1;
    }
    p[0] = 0xcf; /* uint 64, big-endian */
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(v >> (56 - 8 * i));
    return 9;
}

static size_t pack_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s); /* fixstr: fewer than 32 bytes here */
    p[0] = (uint8_t)(0xa0 | n);
    memcpy(p + 1, s, n);
    return 1 + n;
}

/* A msgpack unsigned integer (positive fixint or uint 8/16/32/64); 0 if it is not one. */
static int unpack_uint(const uint8_t *p, size_t n, uint64_t *v)
{
    if (n == 1 && p[0] < 0x80) {
        *v = p[0];
        return 1;
    }
    size_t width = n && p[0] == 0xcc ? 1 : n && p[0] == 0xcd ? 2 : n && p[0] == 0xce ? 4
                 : n && p[0] == 0xcf ? 8 : 0;
    if (!width || n != 1 + width)
        return 0;
    *v = 0;
    for (size_t i = 0; i < width; i++)
        *v = *v << 8 | p[1 + i];
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET AUTHKEY_HEX COUNT\n", argv[0]);
        return 2;
    }
    uint8_t key[256];
    size_t key_len = strlen(argv[2]) / 2;
    if (key_len > sizeof(key))
        return 2;
    for (size_t i = 0; i < key_len; i++)
        sscanf(argv[2] + 2 * i, "%2hhx", &key[i]);
    long count = strtol(argv[3], NULL, 10);

    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    socklen_t addr_len;
    const char *path = argv[1];
    if (path[0] == '@') { /* abstract: a leading NUL, no file */
        strncpy(addr.sun_path + 1, path + 1, sizeof(addr.sun_path) - 2);
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path + 1));
    } else {
        strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
        addr_len = sizeof(addr);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, addr_len) != 0)
        die("connect");
    handshake(fd, key, key_len);

    for (long i = 0; i < count; i++) {
        uint8_t msg[64], *p = msg + 16;
        *p++ = 0x82; /* a map of 2 */
        p += pack_str(p, "op");
        p += pack_str(p, "add");
        p += pack_str(p, "args");
        *p++ = 0x92; /* an array of 2 */
        p += pack_uint(p, (uint64_t)i);
        p += pack_uint(p, (uint64_t)(2 * i));
        size_t length = (size_t)(p - msg) - 16;
        header(msg, 1, 0, length); /* serializer id 1: msgpack */
        put(fd, msg, 16 + length);

        uint8_t head[16], payload[16];
        get(fd, head, 16);
        uint64_t reply_len = 0;
        for (int b = 0; b < 8; b++)
            reply_len |= (uint64_t)head[8 + b] << (8 * b);
        errno = 0;
        if (memcmp(head, "IK\x01\x01\x00\x00\x00\x00", 8) != 0 || reply_len > sizeof(payload))
            die("the reply is not a small msgpack frame");
        get(fd, payload, (size_t)reply_len);
        uint64_t result;
        if (!unpack_uint(payload, (size_t)reply_len, &result) || result != (uint64_t)(3 * i)) {
            fprintf(stderr, "c_client: request %ld: wrong reply\n", i);
            return 1;
        }
    }
    uint8_t eos[16];
    header(eos, 0, 0x02, 0); /* end of stream: the server's iteration ends */
    put(fd, eos, 16);
    close(fd);
    printf("c_client: %ld requests answered correctly\n", count);
    return 0;
}
