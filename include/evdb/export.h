/*
 * EVDB_EXTERN marks every public symbol. The library is built with hidden
 * visibility, so nothing else leaks out of the shared object.
 */
#ifndef EVDB_EXPORT_H
#define EVDB_EXPORT_H

#if defined(EVDB_STATIC)
#define EVDB_EXTERN
#elif defined(__GNUC__) || defined(__clang__)
#define EVDB_EXTERN __attribute__((visibility("default")))
#else
#define EVDB_EXTERN
#endif

#endif
