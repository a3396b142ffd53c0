/*
 * Server notices on their way to the user's hook (evdb_conn_set_notice_hook).
 * Drivers hand notices over during a step (libpq calls its notice receiver
 * from inside PQconsumeInput / PQgetResult); the queue keeps copies and
 * delivers them from the loop afterwards, so the hook never runs inside a
 * driver step.
 */
#ifndef EVDB_NOTICE_H
#define EVDB_NOTICE_H

#include "internal.h"

typedef struct evdb__noticeq evdb__noticeq;

/* A queue for connection c on loop l (the hook gets c). NULL: no memory. */
evdb__noticeq *evdb__noticeq_new(evdb__loop *l, evdb_conn *c);
/* Set or replace the hook; fn NULL drops what is queued and every later
 * notice. */
void evdb__noticeq_set(evdb__noticeq *q, evdb_notice_fn fn, void *arg);
/* An error object to fill with the next notice, queued for delivery; NULL
 * when no hook is set, the queue is full or memory ran out (the notice is
 * dropped). */
evdb_error *evdb__noticeq_push(evdb__noticeq *q);
/* Free the queue and drop what it holds. Safe from inside the hook (the
 * connection is being closed there): the delivery loop frees it after the
 * hook returns. NULL is fine. */
void evdb__noticeq_free(evdb__noticeq *q);

#endif
