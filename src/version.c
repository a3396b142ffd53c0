/*
 * The library's version at run time: what the shared object was built
 * as, which may differ from the headers a program was compiled with.
 */
#include "evdb/version.h"

unsigned evdb_version(void)
{
    return EVDB_VERSION_HEX;
}

const char *evdb_version_string(void)
{
    return EVDB_VERSION_STRING;
}
