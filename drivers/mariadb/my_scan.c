/*
 * What a statement is, from its first words: the driver decides a few
 * things before sending SQL (a read may get the max_statement_time
 * backstop, a pooled query may not open a transaction, a batch may not
 * hold a statement that commits implicitly), and none of them needs more
 * than the leading keywords after blanks and comments. This is not a
 * parser: it only has to be right for the statements it names, and the
 * driver checks the server's status afterwards where a miss would matter.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "my_internal.h"

/* A comment that starts at p ("/ *", "-- " or "#"), not an executable
 * one: the end of it, else NULL. */
static const char *comment_end(const char *p, const char *end)
{
    if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
        /* MariaDB's executable comments (slash-star-bang,
         * slash-star-M-bang) are statement text. */
        if ((end - p >= 3 && p[2] == '!') || (end - p >= 4 && p[2] == 'M' && p[3] == '!'))
            return NULL;
        const char *close = p + 2;
        while (end - close >= 2 && !(close[0] == '*' && close[1] == '/'))
            close++;
        return end - close >= 2 ? close + 2 : end;
    }
    if ((end - p >= 3 && p[0] == '-' && p[1] == '-' && isspace((unsigned char)p[2])) ||
        (p < end && *p == '#')) {
        while (p < end && *p != '\n')
            p++;
        return p;
    }
    return NULL;
}

const char *evdb__my_skip_blank(const char *p, const char *end)
{
    for (;;) {
        while (p < end && (isspace((unsigned char)*p) || *p == '('))
            p++;
        const char *c = comment_end(p, end);
        if (!c)
            return p;
        p = c;
    }
}

bool evdb__my_keyword(const char *p, const char *end, const char *keyword, const char **after)
{
    p = evdb__my_skip_blank(p, end);
    size_t n = strlen(keyword);
    if ((size_t)(end - p) < n || strncasecmp(p, keyword, n) != 0)
        return false;
    if ((size_t)(end - p) > n && (isalnum((unsigned char)p[n]) || p[n] == '_'))
        return false;
    if (after)
        *after = p + n;
    return true;
}

/* The end of the statement that starts at p: its ';' or end, quoted
 * strings, quoted names and comments skipped. */
static const char *statement_end(const char *p, const char *end)
{
    while (p < end) {
        if (*p == '\'' || *p == '"' || *p == '`') {
            char q = *p++;
            while (p < end && *p != q) {
                if (*p == '\\' && q != '`' && end - p >= 2)
                    p++;
                p++;
            }
            if (p < end)
                p++;
            continue;
        }
        const char *c = comment_end(p, end);
        if (c) {
            p = c;
            continue;
        }
        if (*p == ';')
            return p;
        p++;
    }
    return end;
}

bool evdb__my_single_statement(const char *sql, size_t len)
{
    const char *end = sql + len;
    const char *p = statement_end(sql, end);
    while (p < end) {
        p = evdb__my_skip_blank(p + 1, end); /* past the ';' */
        if (p < end && *p != ';')
            return false;
    }
    return true;
}

const char *evdb__my_find_word(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    for (const char *at = p; (size_t)(end - at) >= n; at++) {
        if (strncasecmp(at, word, n) != 0)
            continue;
        if (at > p && (isalnum((unsigned char)at[-1]) || at[-1] == '_'))
            continue;
        if ((size_t)(end - at) > n && (isalnum((unsigned char)at[n]) || at[n] == '_'))
            continue;
        return at;
    }
    return NULL;
}
