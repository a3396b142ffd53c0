/*
 * evdb: asynchronous PostgreSQL and MariaDB/MySQL client for C on libev.
 *
 * Include this one header. It forward-declares struct ev_loop, so a program
 * needs <ev.h> only where it creates or runs the loop itself.
 */
#ifndef EVDB_H
#define EVDB_H

#include "evdb/version.h"
#include "evdb/export.h"
#include "evdb/error.h"
#include "evdb/alloc.h"
#include "evdb/value.h"
#include "evdb/result.h"
#include "evdb/future.h"
#include "evdb/conn.h"
#include "evdb/pool.h"
#include "evdb/txn.h"
#include "evdb/task.h"
#include "evdb/listen.h"
#include "evdb/stream.h"
#include "evdb/copy.h"
#include "evdb/many.h"
#include "evdb/cluster.h"
#include "evdb/hooks.h"

#endif
