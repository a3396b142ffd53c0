/*
 * The fault proxy (faultproxy.h): one accepted client socket and one
 * upstream socket per connection, and two pipes between them (up: client
 * to server, down: server to client). Each pipe holds the chunks read from
 * its source and not yet written to its destination, with the time each
 * chunk may leave (delay mode). A pipe's pump decides, from the mode, what
 * to read and write now and which watcher or timer to arm; every change of
 * mode re-runs every pump.
 */
#include "faultproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes read per read() call, and held per pipe before reading stops. */
#define CHUNK_MAX 16384
#define PIPE_CAP (256 * 1024)
#define LISTEN_BACKLOG 128
/* Longest delay or trickle interval accepted (a minute). */
#define ARG_MS_MAX 60000.0

typedef struct chunk chunk;
struct chunk {
    chunk *next;
    double due; /* ev_now() when it may be written */
    size_t len, off;
    char data[];
};

typedef struct fpconn fpconn;

typedef struct pipe_ {
    fpconn *c;
    bool down;      /* server -> client */
    int *src, *dst; /* the connection's fds */
    ev_io *src_r, *dst_w;
    chunk *head, *tail;
    size_t buffered;
    bool eof;         /* the source said EOF (or failed) */
    ev_timer timer;   /* delay / trickle pacing */
    double next_tick; /* trickle: when the next byte may go */
} pipe_;

struct fpconn {
    evdb_fp *p;
    fpconn *prev, *next;
    int cfd, sfd;
    bool connecting; /* upstream connect in progress */
    ev_io cr, cw, sr, sw;
    pipe_ up, down;
    int64_t drop_left; /* DROP modes: bytes from the server still allowed */
};

struct evdb_fp {
    struct ev_loop *loop;
    int lfd;
    int port;
    struct sockaddr_in target;
    ev_io accept_w;
    fpconn *conns;
    evdb_fp_mode mode;
    double arg;
    evdb_fp_stats st;
};

static bool pump(pipe_ *pp);

/* ------------------------------------------------------------ helpers */

static void set_err(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Close with an RST instead of a FIN. */
static void close_rst(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static bool drop_mode(evdb_fp_mode m)
{
    return m == EVDB_FP_DROP || m == EVDB_FP_DROP_RST;
}

/* ------------------------------------------------------------ connections */

static void free_chunks(pipe_ *pp)
{
    chunk *ch = pp->head;
    while (ch) {
        chunk *next = ch->next;
        free(ch);
        ch = next;
    }
    pp->head = pp->tail = NULL;
    pp->buffered = 0;
}

static void conn_close(fpconn *c, bool rst)
{
    evdb_fp *p = c->p;
    struct ev_loop *L = p->loop;
    ev_io_stop(L, &c->cr);
    ev_io_stop(L, &c->cw);
    ev_io_stop(L, &c->sr);
    ev_io_stop(L, &c->sw);
    ev_timer_stop(L, &c->up.timer);
    ev_timer_stop(L, &c->down.timer);
    if (rst) {
        close_rst(c->cfd);
        if (c->sfd >= 0)
            close_rst(c->sfd);
    } else {
        close(c->cfd);
        if (c->sfd >= 0)
            close(c->sfd);
    }
    free_chunks(&c->up);
    free_chunks(&c->down);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->st.open--;
    free(c);
}

/* Read what the source has into the pipe (bounded). false when the
 * connection was closed. */
static bool pipe_read(pipe_ *pp)
{
    fpconn *c = pp->c;
    evdb_fp *p = c->p;
    while (!pp->eof && pp->buffered < PIPE_CAP) {
        chunk *ch = malloc(sizeof *ch + CHUNK_MAX);
        if (!ch)
            break;
        ssize_t n = recv(*pp->src, ch->data, CHUNK_MAX, 0);
        if (n <= 0) {
            free(ch);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                /* Reset by the peer: reset the other side too. */
                p->st.resets++;
                conn_close(c, true);
                return false;
            }
            pp->eof = true;
            break;
        }
        ch->next = NULL;
        ch->len = (size_t)n;
        ch->off = 0;
        ch->due = ev_now(p->loop) + (p->mode == EVDB_FP_DELAY ? p->arg / 1000.0 : 0);
        if (pp->tail)
            pp->tail->next = ch;
        else
            pp->head = ch;
        pp->tail = ch;
        pp->buffered += (size_t)n;
        if ((size_t)n < CHUNK_MAX)
            break;
    }
    return true;
}

/* Write what may leave now. false when the connection was closed. */
static bool pipe_write(pipe_ *pp)
{
    fpconn *c = pp->c;
    evdb_fp *p = c->p;
    struct ev_loop *L = p->loop;
    ev_timer_stop(L, &pp->timer);
    bool want_write = false;
    while (pp->head) {
        chunk *ch = pp->head;
        double now = ev_now(L);
        if (p->mode == EVDB_FP_DELAY && ch->due > now) {
            ev_timer_set(&pp->timer, ch->due - now, 0.);
            ev_timer_start(L, &pp->timer);
            break;
        }
        size_t n = ch->len - ch->off;
        if (p->mode == EVDB_FP_TRICKLE) {
            if (pp->next_tick > now) {
                ev_timer_set(&pp->timer, pp->next_tick - now, 0.);
                ev_timer_start(L, &pp->timer);
                break;
            }
            n = 1;
        }
        if (pp->down && drop_mode(p->mode) && (int64_t)n > c->drop_left)
            n = (size_t)c->drop_left;
        if (n > 0) {
            ssize_t w = send(*pp->dst, ch->data + ch->off, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    want_write = true;
                    break;
                }
                if (errno == EINTR)
                    continue;
                p->st.resets++;
                conn_close(c, true);
                return false;
            }
            ch->off += (size_t)w;
            pp->buffered -= (size_t)w;
            if (pp->down)
                p->st.bytes_down += (uint64_t)w;
            else
                p->st.bytes_up += (uint64_t)w;
            if (pp->down && drop_mode(p->mode))
                c->drop_left -= w;
            if (ch->off == ch->len) {
                pp->head = ch->next;
                if (!pp->head)
                    pp->tail = NULL;
                free(ch);
            }
        }
        if (pp->down && drop_mode(p->mode) && c->drop_left <= 0) {
            bool rst = p->mode == EVDB_FP_DROP_RST;
            p->st.dropped++;
            if (rst)
                p->st.resets++;
            conn_close(c, rst);
            return false;
        }
        if (p->mode == EVDB_FP_TRICKLE) {
            /* One byte per tick: the next one waits for the timer (a zero
             * interval fires on the next loop iteration). */
            pp->next_tick = now + p->arg / 1000.0;
            if (pp->head) {
                ev_timer_set(&pp->timer, p->arg / 1000.0, 0.);
                ev_timer_start(L, &pp->timer);
            }
            break;
        }
    }
    ev_io_stop(L, pp->dst_w);
    if (want_write)
        ev_io_start(L, pp->dst_w);
    return true;
}

/* The state of one pipe after anything happened. false when the
 * connection was closed (and freed). */
static bool pump(pipe_ *pp)
{
    fpconn *c = pp->c;
    evdb_fp *p = c->p;
    struct ev_loop *L = p->loop;
    if (c->connecting)
        return true; /* the connect's completion pumps */
    if (pp->down && drop_mode(p->mode) && c->drop_left <= 0) {
        bool rst = p->mode == EVDB_FP_DROP_RST;
        p->st.dropped++;
        if (rst)
            p->st.resets++;
        conn_close(c, rst);
        return false;
    }
    if (p->mode == EVDB_FP_STALL) {
        ev_io_stop(L, pp->src_r);
        ev_io_stop(L, pp->dst_w);
        ev_timer_stop(L, &pp->timer);
        return true;
    }
    if (!pipe_write(pp))
        return false;
    if (pp->eof && !pp->head) {
        /* The source is done and everything it sent was delivered: the
         * connection ends (both directions: these protocols never
         * half-close). */
        conn_close(c, false);
        return false;
    }
    ev_io_stop(L, pp->src_r);
    if (!pp->eof && pp->buffered < PIPE_CAP)
        ev_io_start(L, pp->src_r);
    return true;
}

/* Pump both pipes; false when the connection went away. */
static bool pump_both(fpconn *c)
{
    return pump(&c->up) && pump(&c->down);
}

static fpconn *conn_of_io(ev_io *w)
{
    return w->data;
}

static void on_src_readable(struct ev_loop *L, ev_io *w, int revents)
{
    (void)L;
    (void)revents;
    fpconn *c = conn_of_io(w);
    pipe_ *pp = w == &c->cr ? &c->up : &c->down;
    if (c->p->mode == EVDB_FP_STALL) {
        ev_io_stop(c->p->loop, w);
        return;
    }
    if (!pipe_read(pp))
        return;
    pump(pp);
}

static void on_dst_writable(struct ev_loop *L, ev_io *w, int revents)
{
    (void)L;
    (void)revents;
    fpconn *c = conn_of_io(w);
    if (w == &c->sw && c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &len);
        ev_io_stop(c->p->loop, w);
        if (err) {
            c->p->st.upstream_failures++;
            c->p->st.resets++;
            conn_close(c, true);
            return;
        }
        c->connecting = false;
        pump_both(c);
        return;
    }
    pipe_ *pp = w == &c->cw ? &c->down : &c->up;
    pump(pp);
}

static void on_pipe_timer(struct ev_loop *L, ev_timer *t, int revents)
{
    (void)L;
    (void)revents;
    pump(t->data);
}

static void pipe_init(pipe_ *pp, fpconn *c, bool down)
{
    memset(pp, 0, sizeof *pp);
    pp->c = c;
    pp->down = down;
    pp->src = down ? &c->sfd : &c->cfd;
    pp->dst = down ? &c->cfd : &c->sfd;
    pp->src_r = down ? &c->sr : &c->cr;
    pp->dst_w = down ? &c->cw : &c->sw;
    ev_timer_init(&pp->timer, on_pipe_timer, 0., 0.);
    pp->timer.data = pp;
}

static void on_accept(struct ev_loop *L, ev_io *w, int revents)
{
    (void)revents;
    evdb_fp *p = w->data;
    for (;;) {
        int cfd = accept(p->lfd, NULL, NULL);
        if (cfd < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or out of descriptors: try again later */
        }
        if (set_nonblock(cfd) < 0) {
            close(cfd);
            continue;
        }
        set_nodelay(cfd);
        p->st.accepted++;
        fpconn *c = calloc(1, sizeof *c);
        int sfd = c ? socket(AF_INET, SOCK_STREAM, 0) : -1;
        if (!c || sfd < 0 || set_nonblock(sfd) < 0) {
            free(c);
            if (sfd >= 0)
                close(sfd);
            close_rst(cfd);
            p->st.upstream_failures++;
            continue;
        }
        set_nodelay(sfd);
        c->p = p;
        c->cfd = cfd;
        c->sfd = sfd;
        c->drop_left = drop_mode(p->mode) ? (int64_t)p->arg : INT64_MAX;
        ev_io_init(&c->cr, on_src_readable, cfd, EV_READ);
        ev_io_init(&c->sr, on_src_readable, sfd, EV_READ);
        ev_io_init(&c->cw, on_dst_writable, cfd, EV_WRITE);
        ev_io_init(&c->sw, on_dst_writable, sfd, EV_WRITE);
        c->cr.data = c->sr.data = c->cw.data = c->sw.data = c;
        pipe_init(&c->up, c, false);
        pipe_init(&c->down, c, true);
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->st.open++;
        int rc = connect(sfd, (const struct sockaddr *)&p->target, sizeof p->target);
        if (rc < 0 && errno != EINPROGRESS) {
            p->st.upstream_failures++;
            p->st.resets++;
            conn_close(c, true);
            continue;
        }
        if (rc < 0) {
            c->connecting = true;
            ev_io_start(L, &c->sw);
            continue;
        }
        pump_both(c);
    }
}

/* ------------------------------------------------------------ listener */

static int listen_on(evdb_fp *p, int port, char *errbuf, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        set_err(errbuf, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
        set_nonblock(fd) < 0) {
        set_err(errbuf, errlen, "listen on 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    p->lfd = fd;
    p->port = ntohs(a.sin_port);
    ev_io_init(&p->accept_w, on_accept, fd, EV_READ);
    p->accept_w.data = p;
    ev_io_start(p->loop, &p->accept_w);
    return 0;
}

static void unlisten(evdb_fp *p)
{
    if (p->lfd < 0)
        return;
    ev_io_stop(p->loop, &p->accept_w);
    close(p->lfd);
    p->lfd = -1;
}

/* ------------------------------------------------------------ public API */

evdb_fp *evdb_fp_new(struct ev_loop *loop, int listen_port, const char *target_host,
                     int target_port, char *errbuf, size_t errlen)
{
    if (!loop || !target_host || target_port <= 0 || target_port > 65535 || listen_port < 0 ||
        listen_port > 65535) {
        set_err(errbuf, errlen, "bad arguments");
        return NULL;
    }
    evdb_fp *p = calloc(1, sizeof *p);
    if (!p) {
        set_err(errbuf, errlen, "out of memory");
        return NULL;
    }
    p->loop = loop;
    p->lfd = -1;
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((uint16_t)target_port);
    const char *host = strcasecmp(target_host, "localhost") == 0 ? "127.0.0.1" : target_host;
    if (inet_pton(AF_INET, host, &p->target.sin_addr) != 1) {
        set_err(errbuf, errlen, "target host must be an IPv4 address: %s", target_host);
        free(p);
        return NULL;
    }
    if (listen_on(p, listen_port, errbuf, errlen) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

int evdb_fp_port(const evdb_fp *p)
{
    return p ? p->port : -1;
}

int evdb_fp_set(evdb_fp *p, evdb_fp_mode mode, double arg)
{
    if (!p || mode < EVDB_FP_PASS || mode > EVDB_FP_REFUSE || !(arg >= 0) || isinf(arg))
        return -1;
    if ((mode == EVDB_FP_DELAY || mode == EVDB_FP_TRICKLE) && arg > ARG_MS_MAX)
        return -1;
    if (mode == EVDB_FP_REFUSE) {
        unlisten(p);
    } else if (p->lfd < 0 && listen_on(p, p->port, NULL, 0) < 0) {
        return -1;
    }
    evdb_fp_mode was = p->mode;
    p->mode = mode;
    p->arg = arg;
    for (fpconn *c = p->conns; c; c = c->next) {
        if (drop_mode(mode))
            c->drop_left = (int64_t)arg;
        else
            c->drop_left = INT64_MAX;
        c->up.next_tick = c->down.next_tick = 0;
        /* Chunks held back by a delay go when the new mode says so. */
        if (was == EVDB_FP_DELAY)
            for (pipe_ *pp = &c->up; pp; pp = pp == &c->up ? &c->down : NULL)
                for (chunk *ch = pp->head; ch; ch = ch->next)
                    ch->due = 0;
    }
    /* Pump every pipe; a pump may close its connection (drop 0). */
    fpconn *c = p->conns;
    while (c) {
        fpconn *next = c->next;
        pump_both(c);
        c = next;
    }
    return 0;
}

static unsigned close_all(evdb_fp *p, bool rst)
{
    unsigned n = 0;
    while (p->conns) {
        if (rst)
            p->st.resets++;
        else
            p->st.dropped++;
        conn_close(p->conns, rst);
        n++;
    }
    return n;
}

unsigned evdb_fp_reset_all(evdb_fp *p)
{
    return p ? close_all(p, true) : 0;
}

unsigned evdb_fp_close_all(evdb_fp *p)
{
    return p ? close_all(p, false) : 0;
}

void evdb_fp_stats_get(const evdb_fp *p, evdb_fp_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    *out = p->st;
    out->mode = p->mode;
    out->arg = p->arg;
}

const char *evdb_fp_mode_name(evdb_fp_mode mode)
{
    static const char *const names[] = {"pass",     "delay",   "stall", "drop",
                                        "drop-rst", "trickle", "refuse"};
    if (mode < EVDB_FP_PASS || mode > EVDB_FP_REFUSE)
        return "?";
    return names[mode];
}

static const char help_text[] =
    "ok commands: pass | delay MS | stall | drop BYTES [rst] | trickle [MS] | refuse | "
    "reset | close | stats | help | quit";

/* A non-negative number argument. */
static bool number_arg(const char *s, double *out)
{
    if (!s)
        return false;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 0) || isinf(v))
        return false;
    *out = v;
    return true;
}

int evdb_fp_command(evdb_fp *p, const char *line, char *reply, size_t len)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", line ? line : "");
    char *save = NULL;
    char *cmd = strtok_r(buf, " \t\r\n", &save);
    char *a1 = cmd ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    char *a2 = a1 ? strtok_r(NULL, " \t\r\n", &save) : NULL;
    double v = 0;
    int rc = -1;
    if (!cmd) {
        set_err(reply, len, "error: empty command (try help)");
        return -1;
    }
    if (!strcmp(cmd, "pass") || !strcmp(cmd, "clear")) {
        rc = evdb_fp_set(p, EVDB_FP_PASS, 0);
    } else if (!strcmp(cmd, "delay")) {
        if (!number_arg(a1, &v)) {
            set_err(reply, len, "error: delay needs milliseconds");
            return -1;
        }
        rc = evdb_fp_set(p, EVDB_FP_DELAY, v);
    } else if (!strcmp(cmd, "stall")) {
        rc = evdb_fp_set(p, EVDB_FP_STALL, 0);
    } else if (!strcmp(cmd, "drop")) {
        if (!number_arg(a1, &v) || (a2 && strcmp(a2, "rst"))) {
            set_err(reply, len, "error: drop needs a byte count (and optionally rst)");
            return -1;
        }
        rc = evdb_fp_set(p, a2 ? EVDB_FP_DROP_RST : EVDB_FP_DROP, floor(v));
    } else if (!strcmp(cmd, "trickle")) {
        if (a1 && !number_arg(a1, &v)) {
            set_err(reply, len, "error: trickle takes milliseconds between bytes");
            return -1;
        }
        rc = evdb_fp_set(p, EVDB_FP_TRICKLE, v);
    } else if (!strcmp(cmd, "refuse")) {
        rc = evdb_fp_set(p, EVDB_FP_REFUSE, 0);
    } else if (!strcmp(cmd, "reset")) {
        set_err(reply, len, "ok reset %u", evdb_fp_reset_all(p));
        return 0;
    } else if (!strcmp(cmd, "close")) {
        set_err(reply, len, "ok closed %u", evdb_fp_close_all(p));
        return 0;
    } else if (!strcmp(cmd, "stats")) {
        evdb_fp_stats s;
        evdb_fp_stats_get(p, &s);
        set_err(reply, len,
                "ok mode=%s arg=%g port=%d accepted=%llu open=%llu bytes_up=%llu "
                "bytes_down=%llu dropped=%llu resets=%llu upstream_failures=%llu",
                evdb_fp_mode_name(s.mode), s.arg, evdb_fp_port(p), (unsigned long long)s.accepted,
                (unsigned long long)s.open, (unsigned long long)s.bytes_up,
                (unsigned long long)s.bytes_down, (unsigned long long)s.dropped,
                (unsigned long long)s.resets, (unsigned long long)s.upstream_failures);
        return 0;
    } else if (!strcmp(cmd, "help")) {
        set_err(reply, len, "%s", help_text);
        return 0;
    } else if (!strcmp(cmd, "quit") || !strcmp(cmd, "exit")) {
        set_err(reply, len, "ok bye");
        return 1;
    } else {
        set_err(reply, len, "error: unknown command '%.40s' (try help)", cmd);
        return -1;
    }
    if (rc)
        set_err(reply, len, "error: could not switch to %s", cmd);
    else
        set_err(reply, len, "ok %s", evdb_fp_mode_name(p->mode));
    return rc;
}

void evdb_fp_free(evdb_fp *p)
{
    if (!p)
        return;
    while (p->conns)
        conn_close(p->conns, false);
    unlisten(p);
    free(p);
}
