/*
 * evdb-faultproxy: the fault proxy (faultproxy.h) as a command line tool.
 *
 *   evdb-faultproxy --target HOST:PORT [--listen PORT] [--control PATH]
 *                   [--port-file FILE]
 *   evdb-faultproxy ctl PATH COMMAND...
 *
 * The first form runs the proxy: it prints "listening 127.0.0.1 PORT" on
 * stdout, then reads one command per line from stdin (and from clients of
 * the unix socket PATH when --control is given) and answers each with one
 * line, "ok ..." or "error: ...". Without --control, end of input on stdin
 * stops the proxy; with it, the proxy runs until "quit", SIGINT or SIGTERM.
 * The second form sends one command to a running proxy's control socket,
 * prints the answer and exits 0 when it was "ok".
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "faultproxy.h"

#define LINE_MAX_LEN 512
#define REPLY_MAX 512
#define CTL_TIMEOUT_S 10

static const char usage_text[] =
    "usage: evdb-faultproxy --target HOST:PORT [--listen PORT] [--control PATH]\n"
    "                       [--port-file FILE]\n"
    "       evdb-faultproxy ctl PATH COMMAND...\n"
    "\n"
    "A loopback TCP proxy that misbehaves on command, for testing database\n"
    "clients. It listens on 127.0.0.1:PORT (default: a free port, printed as\n"
    "\"listening 127.0.0.1 PORT\") and forwards to HOST:PORT (IPv4).\n"
    "Commands, one per line on stdin or the control socket:\n"
    "  pass              forward normally\n"
    "  delay MS          hold every chunk MS milliseconds\n"
    "  stall             forward nothing (connections are still accepted)\n"
    "  drop BYTES [rst]  close (or reset) each connection after BYTES more\n"
    "                    bytes from the server\n"
    "  trickle [MS]      one byte at a time, MS ms apart\n"
    "  refuse            refuse new connections\n"
    "  reset | close     reset (RST) / close (FIN) every open connection now\n"
    "  stats | help | quit\n";

typedef struct client {
    ev_io w;
    int fd;
    char buf[LINE_MAX_LEN];
    size_t len;
    struct client *next;
} client;

static evdb_fp *proxy;
static struct ev_loop *loop;
static client *clients;
static int control_fd = -1;
static const char *control_path;

/* Handle one line; write the answer to fd. false on "quit". */
static bool handle_line(const char *line, int fd)
{
    char reply[REPLY_MAX];
    int rc = evdb_fp_command(proxy, line, reply, sizeof reply);
    size_t n = strlen(reply);
    reply[n++] = '\n';
    ssize_t w = write(fd, reply, n);
    (void)w;
    if (rc == 1) {
        ev_break(loop, EVBREAK_ALL);
        return false;
    }
    return true;
}

/* Split buf into lines and handle each; keeps a partial line. */
static bool feed(char *buf, size_t *len, int out_fd)
{
    for (;;) {
        char *nl = memchr(buf, '\n', *len);
        if (!nl) {
            if (*len == LINE_MAX_LEN - 1) {
                /* An absurdly long line: drop it. */
                ssize_t w = write(out_fd, "error: line too long\n", 21);
                (void)w;
                *len = 0;
            }
            return true;
        }
        *nl = '\0';
        bool go_on = handle_line(buf, out_fd);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, nl + 1, *len - used);
        *len -= used;
        if (!go_on)
            return false;
    }
}

static char stdin_buf[LINE_MAX_LEN];
static size_t stdin_len;

static void on_stdin(struct ev_loop *L, ev_io *w, int revents)
{
    (void)revents;
    ssize_t n = read(0, stdin_buf + stdin_len, sizeof stdin_buf - 1 - stdin_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        ev_io_stop(L, w);
        if (stdin_len) {
            stdin_buf[stdin_len] = '\0';
            handle_line(stdin_buf, 1);
            stdin_len = 0;
        }
        if (control_fd < 0)
            ev_break(L, EVBREAK_ALL);
        return;
    }
    stdin_len += (size_t)n;
    feed(stdin_buf, &stdin_len, 1);
}

static void client_free(client *c)
{
    ev_io_stop(loop, &c->w);
    close(c->fd);
    for (client **pp = &clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    free(c);
}

static void on_client(struct ev_loop *L, ev_io *w, int revents)
{
    (void)L;
    (void)revents;
    client *c = w->data;
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        client_free(c);
        return;
    }
    c->len += (size_t)n;
    feed(c->buf, &c->len, c->fd);
}

static void on_control(struct ev_loop *L, ev_io *w, int revents)
{
    (void)w;
    (void)revents;
    int fd = accept(control_fd, NULL, NULL);
    if (fd < 0)
        return;
    client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    ev_io_init(&c->w, on_client, fd, EV_READ);
    c->w.data = c;
    ev_io_start(L, &c->w);
    c->next = clients;
    clients = c;
}

static int open_control(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        fprintf(stderr, "evdb-faultproxy: control socket path too long\n");
        return -1;
    }
    strcpy(a.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0) {
        fprintf(stderr, "evdb-faultproxy: control socket %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void on_signal(struct ev_loop *L, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(L, EVBREAK_ALL);
}

/* evdb-faultproxy ctl PATH COMMAND... */
static int ctl_main(int argc, char **argv)
{
    if (argc < 4) {
        fputs(usage_text, stderr);
        return 2;
    }
    char line[LINE_MAX_LEN];
    size_t o = 0;
    for (int i = 3; i < argc; i++) {
        int n = snprintf(line + o, sizeof line - o, "%s%s", i > 3 ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof line - o - 1) {
            fprintf(stderr, "evdb-faultproxy: command too long\n");
            return 2;
        }
        o += (size_t)n;
    }
    line[o++] = '\n';
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(argv[2]) >= sizeof a.sun_path) {
        fprintf(stderr, "evdb-faultproxy: control socket path too long\n");
        return 2;
    }
    strcpy(a.sun_path, argv[2]);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "evdb-faultproxy: cannot reach %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    struct timeval tv = {CTL_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (write(fd, line, o) != (ssize_t)o) {
        fprintf(stderr, "evdb-faultproxy: write: %s\n", strerror(errno));
        return 1;
    }
    char reply[REPLY_MAX];
    size_t got = 0;
    while (got < sizeof reply - 1) {
        ssize_t n = read(fd, reply + got, sizeof reply - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (memchr(reply, '\n', got))
            break;
    }
    close(fd);
    reply[got] = '\0';
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

static int parse_hostport(const char *s, char *host, size_t hlen, int *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= hlen)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p <= 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return ctl_main(argc, argv);
    const char *target = NULL, *port_file = NULL;
    int listen_port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fputs(usage_text, stderr);
            return 2;
        }
        if (!strcmp(a, "--target")) {
            target = argv[++i];
        } else if (!strcmp(a, "--listen")) {
            char *end;
            const char *v = argv[++i];
            if (!strncmp(v, "127.0.0.1:", 10))
                v += 10;
            long p = strtol(v, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf(stderr, "evdb-faultproxy: bad --listen port\n");
                return 2;
            }
            listen_port = (int)p;
        } else if (!strcmp(a, "--control")) {
            control_path = argv[++i];
        } else if (!strcmp(a, "--port-file")) {
            port_file = argv[++i];
        } else {
            fputs(usage_text, stderr);
            return 2;
        }
    }
    char host[64];
    int tport;
    if (!target || parse_hostport(target, host, sizeof host, &tport) < 0) {
        fprintf(stderr, "evdb-faultproxy: --target HOST:PORT is required\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = ev_default_loop(EVFLAG_AUTO);
    char err[256];
    proxy = evdb_fp_new(loop, listen_port, host, tport, err, sizeof err);
    if (!proxy) {
        fprintf(stderr, "evdb-faultproxy: %s\n", err);
        return 1;
    }
    ev_io cw;
    if (control_path) {
        control_fd = open_control(control_path);
        if (control_fd < 0) {
            evdb_fp_free(proxy);
            return 1;
        }
        ev_io_init(&cw, on_control, control_fd, EV_READ);
        ev_io_start(loop, &cw);
    }
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (!f || fprintf(f, "%d\n", evdb_fp_port(proxy)) < 0 || fclose(f) != 0) {
            fprintf(stderr, "evdb-faultproxy: cannot write %s\n", port_file);
            evdb_fp_free(proxy);
            return 1;
        }
    }
    printf("listening 127.0.0.1 %d\n", evdb_fp_port(proxy));
    fflush(stdout);
    ev_io sw;
    ev_io_init(&sw, on_stdin, 0, EV_READ);
    ev_io_start(loop, &sw);
    ev_signal s1, s2;
    ev_signal_init(&s1, on_signal, SIGINT);
    ev_signal_init(&s2, on_signal, SIGTERM);
    ev_signal_start(loop, &s1);
    ev_signal_start(loop, &s2);
    ev_run(loop, 0);
    while (clients)
        client_free(clients);
    if (control_fd >= 0) {
        close(control_fd);
        unlink(control_path);
    }
    evdb_fp_free(proxy);
    return 0;
}
