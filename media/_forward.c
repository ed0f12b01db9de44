/* The built-in relay's fast path: an established stream's packets, socket to socket.
 *
 * media/relay.py decides everything about a packet; once a stream is established
 * (the source latched or validated by ICE, the keys known, the peer's destination
 * known) the decision is the same for every packet that follows, and RelayPort.sync
 * writes it into the port's Forwarder: the one source accepted, the SRTP session that
 * unprotects, the Forwarders the RTP and RTCP go out of, and the statistics to count
 * into. Forwarder.drain, the socket's reader, then reads every waiting datagram with
 * recvmmsg and forwards those that match without creating a Python object: checked,
 * unprotected, counted, protected and sent, the work RelayPort.receive does. Every
 * other datagram (STUN, DTLS, another source, anything the fast path is not armed
 * for) goes to RelayPort.receive as before, as bytes and a (host, port) tuple.
 *
 * SRTP is libsrtp, the one pylibsrtp links in: media/srtp.py hands over the
 * addresses of its functions and sessions after checking their C signature, and the
 * Python objects that own the sessions are held here while their addresses are.
 *
 * Everything runs on the event loop's thread, with the GIL, so no lock guards the
 * configuration: it changes only between two calls of drain, or inside one of its
 * calls into Python, after which each packet reads it afresh.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* -- libsrtp, as pylibsrtp exports it --------------------------------------------- */

/* srtp_protect, srtp_unprotect, srtp_protect_rtcp, srtp_unprotect_rtcp (libsrtp 2):
 * (srtp_t ctx, void *packet, int *length), processing in place. */
typedef int (*srtp_function)(void *session, void *packet, int *length);

static srtp_function srtp_protect_rtp, srtp_unprotect_rtp, srtp_protect_rtcp,
    srtp_unprotect_rtcp;

/* The most libsrtp may append: an authentication tag and an MKI (SRTP_MAX_TRAILER_LEN),
 * and for RTCP the SRTCP index as well. */
#define SRTP_TRAILER (16 + 128 + 4)

/* -- RTP receive statistics (RFC 3550 §6.4.1, A.1, A.8) ----------------------------- */

/* The same statistics as media.rtp.ReceiveStats, which documents them; this twin exists
 * so the fast path can count a packet without calling into Python, and the relay uses
 * it for every stream when this module is built, so both paths count into one object.
 * tests/unit/media/test_rtp.py runs the same tests on both. */

#define SEQ_MOD 65536
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100

typedef struct {
    PyObject_HEAD
    long long packets;
    long long bytes;
    long long lost_before;
    long long base; /* -1: no packet yet */
    long long max_seq;
    long long cycles;
    long long received_since_base;
    double transit;
    double jitter;
    int clock_rate;
} ReceiveStats;

static void
stats_restart(ReceiveStats *self, long long seq)
{
    self->base = seq;
    self->max_seq = seq;
    self->cycles = 0;
    self->received_since_base = 0;
    self->transit = 0.0;
}

static long long
stats_lost(ReceiveStats *self)
{
    if (self->base < 0) {
        return self->lost_before;
    }
    long long expected = self->cycles + self->max_seq - self->base + 1;
    long long missing = expected - self->received_since_base;
    return self->lost_before + (missing > 0 ? missing : 0);
}

/* One RTP packet of at least 8 bytes (the sequence number and timestamp). */
static void
stats_update(ReceiveStats *self, const unsigned char *packet, Py_ssize_t length, double now)
{
    self->packets += 1;
    self->bytes += length;
    long long seq = ((long long)packet[2] << 8) | packet[3];
    uint32_t timestamp = ((uint32_t)packet[4] << 24) | ((uint32_t)packet[5] << 16) |
                         ((uint32_t)packet[6] << 8) | packet[7];
    if (self->base < 0) {
        stats_restart(self, seq);
    }
    else {
        long long delta = ((seq - self->max_seq) % SEQ_MOD + SEQ_MOD) % SEQ_MOD;
        if (delta < MAX_DROPOUT) {
            if (seq < self->max_seq) {
                self->cycles += SEQ_MOD;
            }
            self->max_seq = seq;
        }
        else if (delta > SEQ_MOD - MAX_MISORDER) {
            /* late or duplicate */
        }
        else {
            self->lost_before = stats_lost(self);
            stats_restart(self, seq);
        }
    }
    self->received_since_base += 1;
    double transit = now * self->clock_rate - (double)timestamp;
    if (self->transit != 0.0) {
        self->jitter += (fabs(transit - self->transit) - self->jitter) / 16;
    }
    self->transit = transit;
}

static int
ReceiveStats_init(ReceiveStats *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"clock_rate", NULL};
    int clock_rate = 8000;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|i", keywords, &clock_rate)) {
        return -1;
    }
    if (clock_rate <= 0) {
        PyErr_SetString(PyExc_ValueError, "clock_rate must be positive");
        return -1;
    }
    self->clock_rate = clock_rate;
    self->packets = self->bytes = self->lost_before = 0;
    self->base = -1;
    self->max_seq = self->cycles = self->received_since_base = 0;
    self->transit = self->jitter = 0.0;
    return 0;
}

static PyObject *
ReceiveStats_set_clock_rate(ReceiveStats *self, PyObject *arg)
{
    long clock_rate = PyLong_AsLong(arg);
    if (clock_rate == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (clock_rate <= 0 || clock_rate > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "clock_rate must be positive");
        return NULL;
    }
    if (clock_rate != self->clock_rate) {
        self->clock_rate = (int)clock_rate;
        self->transit = 0.0;
        self->jitter = 0.0;
    }
    Py_RETURN_NONE;
}

static PyObject *
ReceiveStats_update(ReceiveStats *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "update(packet, now)");
        return NULL;
    }
    Py_buffer packet;
    if (PyObject_GetBuffer(args[0], &packet, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (now == -1.0 && PyErr_Occurred()) {
        PyBuffer_Release(&packet);
        return NULL;
    }
    if (packet.len < 8) {
        PyBuffer_Release(&packet);
        PyErr_SetString(PyExc_ValueError, "an RTP header has at least 8 bytes");
        return NULL;
    }
    stats_update(self, packet.buf, packet.len, now);
    PyBuffer_Release(&packet);
    Py_RETURN_NONE;
}

static PyObject *
ReceiveStats_get_lost(ReceiveStats *self, void *closure)
{
    return PyLong_FromLongLong(stats_lost(self));
}

static PyObject *
ReceiveStats_get_jitter_ms(ReceiveStats *self, void *closure)
{
    return PyFloat_FromDouble(self->jitter * 1000 / self->clock_rate);
}

static PyMethodDef ReceiveStats_methods[] = {
    {"update", (PyCFunction)(void (*)(void))ReceiveStats_update, METH_FASTCALL,
     "Count one RTP packet received at ``now`` (seconds)."},
    {"set_clock_rate", (PyCFunction)ReceiveStats_set_clock_rate, METH_O,
     "The stream's RTP clock rate (Hz)."},
    {NULL},
};

static PyMemberDef ReceiveStats_members[] = {
    {"packets", T_LONGLONG, offsetof(ReceiveStats, packets), READONLY, NULL},
    {"bytes", T_LONGLONG, offsetof(ReceiveStats, bytes), READONLY, NULL},
    {"lost_before", T_LONGLONG, offsetof(ReceiveStats, lost_before), READONLY, NULL},
    {NULL},
};

static PyGetSetDef ReceiveStats_getset[] = {
    {"lost", (getter)ReceiveStats_get_lost, NULL, "Packets expected but not received.", NULL},
    {"jitter_ms", (getter)ReceiveStats_get_jitter_ms, NULL, "Interarrival jitter (ms).", NULL},
    {NULL},
};

static PyTypeObject ReceiveStatsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._forward.ReceiveStats",
    .tp_basicsize = sizeof(ReceiveStats),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RFC 3550 receive statistics of one stream: received, lost, jitter.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ReceiveStats_init,
    .tp_methods = ReceiveStats_methods,
    .tp_members = ReceiveStats_members,
    .tp_getset = ReceiveStats_getset,
};

/* -- Forwarder ---------------------------------------------------------------------- */

typedef struct {
    struct sockaddr_storage address;
    socklen_t length; /* 0: none */
} Address;

typedef struct Forwarder {
    PyObject_HEAD
    int fd; /* -1 once closed */
    PyObject *slow; /* RelayPort.receive */
    /* What arrives: from ``source`` only, unprotected by ``rx`` (NULL: plain RTP). */
    Address source;
    void *rx;
    PyObject *rx_owner;
    struct Forwarder *rtp_out;
    struct Forwarder *rtcp_out;
    ReceiveStats *stats;
    /* What leaves, when another port's packets come out of this one. */
    Address destination;
    void *tx;
    PyObject *tx_owner;
    double last_received;
    long long forwarded;
    long long dropped;
} Forwarder;

static PyTypeObject ForwarderType;

static double
monotonic(void)
{
    /* time.monotonic's clock on Linux, which the rest of the relay reads. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* ``value``: None, or a (host, port) tuple with a numeric host. */
static int
parse_address(PyObject *value, Address *out)
{
    memset(out, 0, sizeof(*out));
    if (value == Py_None) {
        return 0;
    }
    const char *host;
    int port;
    if (!PyArg_ParseTuple(value, "si", &host, &port)) {
        return -1;
    }
    if (port < 0 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "bad port %d", port);
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->address;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->address;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->length = sizeof(*v4);
    }
    else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->length = sizeof(*v6);
    }
    else {
        PyErr_Format(PyExc_ValueError, "not a numeric address: %s", host);
        return -1;
    }
    return 0;
}

/* Whether a datagram's source is ``expected``: family, address and port. */
static int
same_address(const struct sockaddr_storage *source, const Address *expected)
{
    if (expected->length == 0 || source->ss_family != expected->address.ss_family) {
        return 0;
    }
    if (source->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)source;
        const struct sockaddr_in *b = (const struct sockaddr_in *)&expected->address;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)source;
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)&expected->address;
    return a->sin6_port == b->sin6_port &&
           memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
}

/* The (host, port) the relay's Python code names a source by. */
static PyObject *
address_tuple(const struct sockaddr_storage *source)
{
    char host[INET6_ADDRSTRLEN];
    int port;
    if (source->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)source;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof(host));
        port = ntohs(v4->sin_port);
    }
    else if (source->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)source;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof(host));
        port = ntohs(v6->sin6_port);
    }
    else {
        host[0] = '\0';
        port = 0;
    }
    return Py_BuildValue("(si)", host, port);
}

static int
Forwarder_init(Forwarder *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fd", "slow", NULL};
    int fd;
    PyObject *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iO", keywords, &fd, &slow)) {
        return -1;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return -1;
    }
    self->fd = fd;
    Py_INCREF(slow);
    Py_XSETREF(self->slow, slow);
    return 0;
}

static void
Forwarder_disarm(Forwarder *self)
{
    self->source.length = 0;
    self->rx = NULL;
    Py_CLEAR(self->rx_owner);
    Py_CLEAR(self->rtp_out);
    Py_CLEAR(self->rtcp_out);
    Py_CLEAR(self->stats);
}

static void
Forwarder_stop_sending(Forwarder *self)
{
    self->destination.length = 0;
    self->tx = NULL;
    Py_CLEAR(self->tx_owner);
}

static int
Forwarder_traverse(Forwarder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->slow);
    Py_VISIT(self->rx_owner);
    Py_VISIT(self->rtp_out);
    Py_VISIT(self->rtcp_out);
    Py_VISIT(self->stats);
    Py_VISIT(self->tx_owner);
    return 0;
}

static int
Forwarder_clear(Forwarder *self)
{
    Py_CLEAR(self->slow);
    Forwarder_disarm(self);
    Forwarder_stop_sending(self);
    return 0;
}

static void
Forwarder_dealloc(Forwarder *self)
{
    PyObject_GC_UnTrack(self);
    Forwarder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A session address from Python: 0 for none (plain RTP). */
static int
parse_session(PyObject *value, void **out)
{
    *out = PyLong_AsVoidPtr(value);
    if (*out == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (*out != NULL && srtp_protect_rtp == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "use_libsrtp() was not called");
        return -1;
    }
    return 0;
}

static PyObject *
Forwarder_accept(Forwarder *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"source", "rx", "owner", "rtp", "rtcp", "stats", NULL};
    PyObject *source, *rx, *owner, *rtp, *rtcp, *stats;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO!O!O!", keywords, &source, &rx, &owner,
                                     &ForwarderType, &rtp, &ForwarderType, &rtcp,
                                     &ReceiveStatsType, &stats)) {
        return NULL;
    }
    Address parsed;
    void *session;
    if (parse_address(source, &parsed) < 0 || parse_session(rx, &session) < 0) {
        Forwarder_disarm(self);
        return NULL;
    }
    Forwarder_disarm(self);
    self->source = parsed;
    self->rx = session;
    Py_INCREF(owner);
    self->rx_owner = owner;
    Py_INCREF(rtp);
    self->rtp_out = (Forwarder *)rtp;
    Py_INCREF(rtcp);
    self->rtcp_out = (Forwarder *)rtcp;
    Py_INCREF(stats);
    self->stats = (ReceiveStats *)stats;
    Py_RETURN_NONE;
}

static PyObject *
Forwarder_disarm_method(Forwarder *self, PyObject *unused)
{
    Forwarder_disarm(self);
    Py_RETURN_NONE;
}

static PyObject *
Forwarder_send_to(Forwarder *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"destination", "tx", "owner", NULL};
    PyObject *destination, *tx, *owner;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO", keywords, &destination, &tx, &owner)) {
        return NULL;
    }
    Address parsed;
    void *session;
    if (parse_address(destination, &parsed) < 0 || parse_session(tx, &session) < 0) {
        Forwarder_stop_sending(self);
        return NULL;
    }
    Forwarder_stop_sending(self);
    self->destination = parsed;
    self->tx = session;
    Py_INCREF(owner);
    self->tx_owner = owner;
    Py_RETURN_NONE;
}

static PyObject *
Forwarder_close(Forwarder *self, PyObject *unused)
{
    self->fd = -1;
    Forwarder_disarm(self);
    Forwarder_stop_sending(self);
    Py_RETURN_NONE;
}

/* Forward one datagram if the fast path is armed for it; 0 if it is not (the caller
 * hands it to Python), 1 if it was forwarded or dropped here. */
static int
forward(Forwarder *self, unsigned char *packet, int length, int room,
        const struct sockaddr_storage *source)
{
    /* RFC 7983 §7: 128-191 is RTP or RTCP; RFC 5761 §4: RTCP packet types 192-223. */
    if (self->source.length == 0 || length < 8 || packet[0] < 128 || packet[0] > 191) {
        return 0;
    }
    int rtcp = packet[1] > 191 && packet[1] < 224;
    if (!rtcp && length < 12) {
        return 0;
    }
    if (!same_address(source, &self->source)) {
        return 0;
    }
    Forwarder *out = rtcp ? self->rtcp_out : self->rtp_out;
    if (out == NULL || out->fd < 0 || out->destination.length == 0) {
        return 0; /* Python counts why */
    }
    if (self->rx != NULL) {
        srtp_function unprotect = rtcp ? srtp_unprotect_rtcp : srtp_unprotect_rtp;
        if (unprotect(self->rx, packet, &length) != 0) {
            self->dropped += 1;
            return 1;
        }
    }
    double now = monotonic();
    self->last_received = now;
    if (!rtcp) {
        stats_update(self->stats, packet, length, now);
    }
    if (out->tx != NULL) {
        if (length + SRTP_TRAILER > room) {
            out->dropped += 1;
            return 1;
        }
        srtp_function protect = rtcp ? srtp_protect_rtcp : srtp_protect_rtp;
        if (protect(out->tx, packet, &length) != 0) {
            out->dropped += 1;
            return 1;
        }
    }
    /* A full buffer or an ICMP error loses the packet, as the network would. */
    if (sendto(out->fd, packet, (size_t)length, 0, (const struct sockaddr *)&out->destination.address,
               out->destination.length) >= 0) {
        self->forwarded += 1;
    }
    return 1;
}

#define BATCH 32
#define SLOT 4096

static unsigned char slots[BATCH][SLOT];
static struct sockaddr_storage sources[BATCH];
static struct iovec vectors[BATCH];
static struct mmsghdr messages[BATCH];

static PyObject *
Forwarder_drain(Forwarder *self, PyObject *unused)
{
    /* The buffers are the module's: drain is never re-entered (the Python it calls
     * handles one datagram and returns), and this makes sure of it. */
    static int draining = 0;
    if (draining) {
        PyErr_SetString(PyExc_RuntimeError, "Forwarder.drain re-entered");
        return NULL;
    }
    draining = 1;
    Py_INCREF(self); /* the Python it calls may close and drop this port */
    for (;;) {
        if (self->fd < 0) {
            break;
        }
        for (int i = 0; i < BATCH; i++) {
            vectors[i].iov_base = slots[i];
            vectors[i].iov_len = SLOT;
            messages[i].msg_hdr = (struct msghdr){
                .msg_name = &sources[i],
                .msg_namelen = sizeof(sources[i]),
                .msg_iov = &vectors[i],
                .msg_iovlen = 1,
            };
        }
        int count = recvmmsg(self->fd, messages, BATCH, MSG_DONTWAIT, NULL);
        if (count < 0) {
            if (errno == EINTR) {
                continue;
            }
            break; /* empty, or an error the socket reported (ICMP): readiness says when */
        }
        for (int i = 0; i < count && self->fd >= 0; i++) {
            int length = (int)messages[i].msg_len;
            if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
                self->dropped += 1; /* longer than any media packet */
                continue;
            }
            if (forward(self, slots[i], length, SLOT, &sources[i])) {
                continue;
            }
            PyObject *data = PyBytes_FromStringAndSize((const char *)slots[i], length);
            PyObject *address = data == NULL ? NULL : address_tuple(&sources[i]);
            PyObject *result = address == NULL
                                   ? NULL
                                   : PyObject_CallFunctionObjArgs(self->slow, data, address, NULL);
            if (result == NULL) {
                /* RelayPort.receive catches its own errors: this is a bug, or memory. */
                PyErr_WriteUnraisable(self->slow);
            }
            Py_XDECREF(result);
            Py_XDECREF(address);
            Py_XDECREF(data);
        }
        if (count < BATCH) {
            break; /* the queue was empty; the loop calls again when it is not */
        }
    }
    Py_DECREF(self);
    draining = 0;
    Py_RETURN_NONE;
}

static PyMethodDef Forwarder_methods[] = {
    {"drain", (PyCFunction)Forwarder_drain, METH_NOARGS,
     "Read and handle every datagram waiting on the socket: the socket's reader."},
    {"accept", (PyCFunction)(void (*)(void))Forwarder_accept, METH_VARARGS | METH_KEYWORDS,
     "Arm the fast path: RTP and RTCP from ``source`` go out of ``rtp`` and ``rtcp``."},
    {"disarm", (PyCFunction)Forwarder_disarm_method, METH_NOARGS,
     "Every datagram goes to the slow path."},
    {"send_to", (PyCFunction)(void (*)(void))Forwarder_send_to, METH_VARARGS | METH_KEYWORDS,
     "Where packets forwarded out of this port go (None: nowhere, by the fast path)."},
    {"close", (PyCFunction)Forwarder_close, METH_NOARGS,
     "Forget the socket (before it is closed) and every reference."},
    {NULL},
};

static PyMemberDef Forwarder_members[] = {
    {"last_received", T_DOUBLE, offsetof(Forwarder, last_received), READONLY,
     "When the fast path last took a packet in (0: never)."},
    {"forwarded", T_LONGLONG, offsetof(Forwarder, forwarded), READONLY,
     "Packets the fast path sent on."},
    {"dropped", T_LONGLONG, offsetof(Forwarder, dropped), READONLY,
     "Packets the fast path dropped: SRTP failures, truncated datagrams."},
    {NULL},
};

static PyTypeObject ForwarderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._forward.Forwarder",
    .tp_basicsize = sizeof(Forwarder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One relay port's socket reader, with its fast path for established streams.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Forwarder_init,
    .tp_dealloc = (destructor)Forwarder_dealloc,
    .tp_traverse = (traverseproc)Forwarder_traverse,
    .tp_clear = (inquiry)Forwarder_clear,
    .tp_methods = Forwarder_methods,
    .tp_members = Forwarder_members,
};

/* -- module --------------------------------------------------------------------------- */

static PyObject *
use_libsrtp(PyObject *module, PyObject *args)
{
    PyObject *functions[4];
    if (!PyArg_ParseTuple(args, "OOOO", &functions[0], &functions[1], &functions[2],
                          &functions[3])) {
        return NULL;
    }
    void *addresses[4];
    for (int i = 0; i < 4; i++) {
        addresses[i] = PyLong_AsVoidPtr(functions[i]);
        if (addresses[i] == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "a libsrtp function at address 0");
            }
            return NULL;
        }
    }
    srtp_protect_rtp = (srtp_function)addresses[0];
    srtp_unprotect_rtp = (srtp_function)addresses[1];
    srtp_protect_rtcp = (srtp_function)addresses[2];
    srtp_unprotect_rtcp = (srtp_function)addresses[3];
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"use_libsrtp", use_libsrtp, METH_VARARGS,
     "The addresses of srtp_protect, srtp_unprotect, srtp_protect_rtcp and "
     "srtp_unprotect_rtcp."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media._forward",
    .m_doc = "The built-in relay's fast path for established streams (see media/relay.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__forward(void)
{
    if (PyType_Ready(&ReceiveStatsType) < 0 || PyType_Ready(&ForwarderType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "ReceiveStats", (PyObject *)&ReceiveStatsType) < 0 ||
        PyModule_AddObjectRef(m, "Forwarder", (PyObject *)&ForwarderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
