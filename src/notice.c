/*
 * The notice queue of a connection (see notice.h). One node per notice,
 * allocated only while a hook is set; at most NOTICE_QUEUE_MAX wait for
 * delivery, so a statement that raises notices in a loop cannot make the
 * queue grow without bound before the loop gets to deliver them.
 */
#include <string.h>

#include "notice.h"

#define NOTICE_QUEUE_MAX 256

typedef struct nnode {
    struct nnode *next;
    evdb_error e;
} nnode;

struct evdb__noticeq {
    evdb__loop *loop;
    evdb_conn *conn;
    evdb_notice_fn fn;
    void *arg;
    nnode *head, *tail;
    size_t n;
    evdb__deferred d;
    bool delivering; /* inside the hook */
    bool dead;       /* freed from inside the hook: free after it */
};

static void drop_all(evdb__noticeq *q)
{
    while (q->head) {
        nnode *x = q->head;
        q->head = x->next;
        evdb__free(x);
    }
    q->tail = NULL;
    q->n = 0;
}

static void destroy(evdb__noticeq *q)
{
    drop_all(q);
    evdb__loop_undefer(q->loop, &q->d);
    evdb__loop_unref(q->loop);
    evdb__free(q);
}

static void deliver(evdb__deferred *d)
{
    evdb__noticeq *q = EVDB__CONTAINER_OF(d, evdb__noticeq, d);
    q->delivering = true;
    /* Only what is queued now: notices raised by queries the hook submits
     * arrive in later steps and get their own pass. */
    size_t batch = q->n;
    while (batch-- && q->head && q->fn && !q->dead) {
        nnode *x = q->head;
        q->head = x->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
        q->fn(q->conn, &x->e, q->arg);
        evdb__free(x);
    }
    q->delivering = false;
    if (q->dead)
        destroy(q);
    else if (q->head && q->fn)
        evdb__loop_defer(q->loop, &q->d);
}

evdb__noticeq *evdb__noticeq_new(evdb__loop *l, evdb_conn *c)
{
    evdb__noticeq *q = evdb__calloc(1, sizeof *q);
    if (!q)
        return NULL;
    evdb__loop_ref(l);
    q->loop = l;
    q->conn = c;
    q->d.fn = deliver;
    return q;
}

void evdb__noticeq_set(evdb__noticeq *q, evdb_notice_fn fn, void *arg)
{
    q->fn = fn;
    q->arg = arg;
    if (!fn) {
        drop_all(q);
        evdb__loop_undefer(q->loop, &q->d);
    }
}

evdb_error *evdb__noticeq_push(evdb__noticeq *q)
{
    if (!q || !q->fn || q->dead || q->n >= NOTICE_QUEUE_MAX)
        return NULL;
    nnode *x = evdb__malloc(sizeof *x);
    if (!x)
        return NULL;
    x->next = NULL;
    evdb__error_set(&x->e, 0, 0, NULL, "notice");
    if (q->tail)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
    q->n++;
    evdb__loop_defer(q->loop, &q->d);
    return &x->e;
}

void evdb__noticeq_free(evdb__noticeq *q)
{
    if (!q)
        return;
    if (q->delivering) {
        q->dead = true;
        q->fn = NULL;
        return;
    }
    destroy(q);
}
