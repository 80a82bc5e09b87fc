/*
 * An independent Modbus peer for hazgate's interop tests, built on
 * libmodbus (Debian libmodbus-dev):
 *
 *   server tcp                 listen on 127.0.0.1, a free port; prints "port N"
 *   server rtu DEVICE BAUD PARITY
 *                              serve slaves 1 and 2 on a serial device
 *                              (one end of a socat pty pair)
 *
 * Every slave holds the same register map with values of its own (see
 * fill below; the Go tests read it through hazgate's drivers). The values
 * are encoded here, independently of hazgate's codec.
 *
 * A slave stops answering while a file named mute-ID exists in the working
 * directory: a dead slave on the line.
 *
 * Build: gcc server.c $(pkg-config --cflags --libs libmodbus) -o server
 */
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLAVES 2

/* put_float stores f in two registers in byte order o ("ABCD", "CDAB",
 * "BADC" or "DCBA", A the most significant byte). Written out by hand:
 * libmodbus 3.1.6's modbus_set_float_abcd and friends put other byte
 * orders on the wire than their names say on a little-endian host (seen
 * here: _abcd gave B A D C), so they cannot be the reference. */
static void put_float(float f, const char *o, uint16_t *dest)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint8_t b[4] = {u >> 24, u >> 16, u >> 8, u}; /* A B C D */
    uint8_t w[4];
    for (int i = 0; i < 4; i++)
        w[i] = b[o[i] - 'A'];
    dest[0] = (uint16_t)(w[0] << 8 | w[1]);
    dest[1] = (uint16_t)(w[2] << 8 | w[3]);
}

/* fill puts the test values into one slave's map; k is 1 or 2. */
static void fill(modbus_mapping_t *m, int k)
{
    uint16_t *h = m->tab_registers;
    put_float(18.625f * k, "ABCD", h + 0);  /* 0-1  float32 ABCD */
    put_float(-2.5f * k, "CDAB", h + 2);    /* 2-3  float32 CDAB */
    put_float(101.325f * k, "BADC", h + 4); /* 4-5  float32 BADC */
    put_float(0.001f * k, "DCBA", h + 6);   /* 6-7  float32 DCBA */
    h[8] = 4321 * k;                            /* 8    uint16 */
    h[9] = (uint16_t)(int16_t)(-1234 * k);      /* 9    int16 */
    int32_t i32 = -70000 * k;                   /* 10-11 int32 ABCD */
    h[10] = (uint16_t)((uint32_t)i32 >> 16);
    h[11] = (uint16_t)((uint32_t)i32 & 0xFFFF);
    uint32_t u32 = 3000000000u / k;             /* 12-13 uint32 CDAB */
    h[12] = (uint16_t)(u32 & 0xFFFF);
    h[13] = (uint16_t)(u32 >> 16);
    m->tab_input_registers[0] = 100 * k;        /* input 0 */
    m->tab_bits[0] = 1;                         /* coil 0 on */
    m->tab_bits[1] = k == 2;                    /* coil 1 on for slave 2 */
    m->tab_input_bits[0] = k == 1;              /* discrete 0 */
}

static int muted(int id)
{
    char name[32];
    snprintf(name, sizeof name, "mute-%d", id);
    return access(name, F_OK) == 0;
}

/* read_frame reads one RTU request by its length: it waits for the first
 * byte as long as it takes, then at most a second for the rest. */
static int read_frame(int fd, uint8_t *buf)
{
    int n = 0, want = 8;
    while (n < want) {
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        struct timeval tv = {1, 0};
        int r = select(fd + 1, &set, NULL, NULL, n == 0 ? NULL : &tv);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return n == 0 ? -1 : 0; /* a partial frame: dropped */
        ssize_t got = read(fd, buf + n, want - n);
        if (got <= 0)
            return -1;
        n += got;
        if (n >= 7 && (buf[1] == 15 || buf[1] == 16))
            want = 9 + buf[6];
        if (n >= 2 && buf[1] > 6 && buf[1] != 15 && buf[1] != 16)
            return 0; /* not a function we serve: resynchronise on the next frame */
    }
    return n;
}

static int serve_rtu(const char *dev, int baud, char parity)
{
    modbus_t *ctx = modbus_new_rtu(dev, baud, parity, 8, 1);
    if (ctx == NULL || modbus_connect(ctx) == -1) {
        fprintf(stderr, "rtu %s: %s\n", dev, modbus_strerror(errno));
        return 1;
    }
    modbus_mapping_t *maps[SLAVES + 1];
    for (int k = 1; k <= SLAVES; k++) {
        maps[k] = modbus_mapping_new(16, 16, 100, 100);
        fill(maps[k], k);
    }
    printf("ready\n");
    fflush(stdout);
    int fd = modbus_get_socket(ctx);
    uint8_t req[MODBUS_RTU_MAX_ADU_LENGTH];
    for (;;) {
        int n = read_frame(fd, req);
        if (n < 0)
            return 0; /* the line is gone */
        if (n == 0)
            continue;
        int id = req[0];
        if (id < 1 || id > SLAVES || muted(id))
            continue;
        modbus_set_slave(ctx, id);
        modbus_reply(ctx, req, n, maps[id]);
    }
}

static int serve_tcp(void)
{
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
    int ls = modbus_tcp_listen(ctx, 1);
    if (ls == -1) {
        fprintf(stderr, "listen: %s\n", modbus_strerror(errno));
        return 1;
    }
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    modbus_mapping_t *m = modbus_mapping_new(16, 16, 100, 100);
    fill(m, 1);
    for (;;) {
        if (modbus_tcp_accept(ctx, &ls) == -1)
            return 1;
        uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
        for (;;) {
            int n = modbus_receive(ctx, q);
            if (n > 0)
                modbus_reply(ctx, q, n, m);
            else if (n == -1)
                break; /* the client went away: accept the next one */
        }
        modbus_close(ctx);
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "tcp") == 0)
        return serve_tcp();
    if (argc >= 5 && strcmp(argv[1], "rtu") == 0)
        return serve_rtu(argv[2], atoi(argv[3]), argv[4][0]);
    fprintf(stderr, "usage: server tcp | server rtu DEVICE BAUD N|E|O\n");
    return 2;
}
