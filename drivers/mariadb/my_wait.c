/*
 * Translation between Connector/C's nonblocking protocol and the core's:
 * wait masks, wake-up reasons, and which errors mean the session is gone.
 */
#include <fcntl.h>
#include <string.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "my_internal.h"

void evdb__my_wait_from_mask(MYSQL *m, int mask, evdb__wait *w)
{
    /* The socket is read again after every step: Connector/C may have
     * opened a new one (connect tries addresses in turn). libev has no
     * "exceptional condition" event; MYSQL_WAIT_EXCEPT only shows up in
     * connect paths where readability is the same signal. */
    w->fd = (int)mysql_get_socket(m);
    w->events = 0;
    if (mask & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT))
        w->events |= EVDB__EV_READ;
    if (mask & MYSQL_WAIT_WRITE)
        w->events |= EVDB__EV_WRITE;
    w->timeout_ms = -1;
    if (mask & MYSQL_WAIT_TIMEOUT)
        w->timeout_ms = (int)mysql_get_timeout_value_ms(m);
}

int evdb__my_ready_from_events(unsigned revents, int asked)
{
    int ready = 0;
    if (revents & EVDB__EV_READ)
        ready |= MYSQL_WAIT_READ | (asked & MYSQL_WAIT_EXCEPT);
    if (revents & EVDB__EV_WRITE)
        ready |= MYSQL_WAIT_WRITE;
    if (revents & EVDB__EV_TIMEOUT)
        ready |= MYSQL_WAIT_TIMEOUT;
    return ready;
}

bool evdb__my_errno_is_lost(unsigned no, const char *sqlstate)
{
    switch (no) {
    /* The server ends the session after these. */
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_ABORTING_CONNECTION:
    case ER_NEW_ABORTING_CONNECTION:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_ERROR_ON_WRITE:
    case ER_NET_WRITE_INTERRUPTED:
    case ER_NET_PACKETS_OUT_OF_ORDER:
        return true;
    /* Client-side statement errors found before anything was sent: the
     * session is fine. */
    case CR_NO_PREPARE_STMT:
    case CR_PARAMS_NOT_BOUND:
    case CR_INVALID_PARAMETER_NO:
    case CR_INVALID_BUFFER_USE:
    case CR_UNSUPPORTED_PARAM_TYPE:
    case CR_NO_DATA:
    case CR_NO_STMT_METADATA:
    case CR_NOT_IMPLEMENTED:
    case CR_STMT_CLOSED:
    case CR_NEW_STMT_METADATA:
        return false;
    default:
        break;
    }
    /* Any other client error happened while talking to the server (lost
     * connection, malformed packet, commands out of sync, out of memory
     * half-way through a packet): the protocol state is unknown, and a
     * session in an unknown state must not serve another query. */
    if ((no >= CR_MIN_ERROR && no <= CR_MAX_ERROR) ||
        (no >= CR_EVENT_CREATE_FAILED && no <= CR_MARIADB_LAST_ERROR))
        return true;
    /* SQLSTATE class 08: connection exception. */
    return sqlstate && sqlstate[0] == '0' && sqlstate[1] == '8';
}

void evdb__my_set_nonblock(int fd)
{
    if (fd < 0)
        return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}
