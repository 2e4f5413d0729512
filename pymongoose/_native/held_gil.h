/* Calls from Python into this module keep the GIL (CPython only).
 *
 * cffi's wrapper around each C function releases the GIL before the call and takes
 * it back after, and saves and restores errno through its backend on both sides.
 * For pymongoose's calls that is most of their cost (pm_ws_send, pm_http_respond...:
 * short, never blocking) and buys nothing: no caller reads ffi.errno, and the loop's
 * own dispatch already runs with the GIL held (pm_mgr_poll, wait.c). So the wrappers,
 * emitted after this header, keep the GIL; the calls that may wait release it
 * themselves (PM_WITHOUT_GIL): pm_mgr_poll while it waits for I/O, and
 * pm_http_chunk_from_fd while it reads a file (up to 1 GiB, maybe from a slow disk).
 *
 * Nothing here may take a lock that a thread without the GIL holds while it waits
 * for the GIL: the shim's only locks are mbed TLS's, which no thread holds while it
 * runs Python. */
#if defined(Py_PYTHON_H) && !defined(PYPY_VERSION)
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void) 0)
#define _cffi_save_errno() ((void) 0)
#endif
