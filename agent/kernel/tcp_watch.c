// faultline TCP observer: tracepoint probes that report, for the sockets of this agent's
// host, state changes, retransmissions, resets and sampled RTTs.
//
// Only the tracepoints' own fields are read (bcc builds their structs from tracefs at
// load time); kernel structs are never dereferenced, so a header tree that is not this
// kernel's own cannot make the probes read the wrong offsets.
//
// Filtering happens here, in this order, so that little leaves the kernel:
//   1. host: the socket's local address must be in local_addrs. Several agents share one
//      kernel in the lab (one network namespace each); a socket belongs to the host whose
//      address it is bound to, so each agent sees its own host's connections only.
//   2. watchers: each watch stream owns a slot with its kinds, ports and peer CIDRs; the
//      event carries the bitmask of the slots it matches and is dropped if none does.
//   0. RTT samples (tcp_probe fires per segment): each socket is considered at most once
//      per rtt interval, before any other test.
#include <uapi/linux/ptrace.h>
#include <uapi/linux/in.h>

#ifndef MAX_WATCHERS
#define MAX_WATCHERS 16
#endif
#ifndef MAX_CIDRS
#define MAX_CIDRS 8
#endif
#ifndef MAX_PORTS
#define MAX_PORTS 8
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 256
#endif

#define EV_STATE 1
#define EV_RETRANSMIT 2
#define EV_RESET_SENT 3
#define EV_RESET_RECEIVED 4
#define EV_RTT 5

#define FAMILY_INET 2
#define FAMILY_INET6 10

#define ST_ESTABLISHED 1
#define ST_SYN_SENT 2
#define ST_FIN_WAIT1 4
#define ST_LAST_ACK 9

// Mirrored by agent/kernel/tcp_watch.py (AddrKeyC, WatcherC, EventC): keep both in step.
struct addr_key {
    u32 addr[4];    // network byte order; IPv4 in addr[0]
    u8 family;      // 4 or 6
    u8 pad[3];
};

struct cidr {
    u32 addr[4];
    u32 mask[4];
    u8 family;
    u8 pad[3];
};

struct watcher {
    u32 kinds;      // bit EV_* set: wanted
    u8 n_ports;     // 0: any port
    u8 n_cidrs;     // 0: any peer
    u8 pad[2];
    u16 ports[MAX_PORTS];   // the local or the remote port may match
    struct cidr cidrs[MAX_CIDRS];
};

struct event {
    u64 ts_ns;      // bpf_ktime_get_ns(): CLOCK_MONOTONIC
    u64 sock;       // the socket's kernel address: an identity, never dereferenced
    u32 watchers;   // bitmask of matching watcher slots
    u32 pid;        // task that caused it, where that is known (else 0)
    u32 laddr[4];
    u32 raddr[4];
    u16 lport;      // host byte order
    u16 rport;
    u8 family;
    u8 kind;
    u8 old_state;
    u8 new_state;   // or, for retransmits and resets, the socket's state
    u32 srtt_us;
    u32 snd_cwnd;
    char comm[16];
};

BPF_ARRAY(watchers, struct watcher, MAX_WATCHERS);
BPF_ARRAY(active, u32, 1);             // bit i: watchers[i] in use; written after the slot
BPF_ARRAY(rtt_interval, u64, 1);       // ns between two RTT samples of one socket
BPF_HASH(local_addrs, struct addr_key, u8, 256);
BPF_TABLE("lru_hash", u64, u64, rtt_last, 16384);
BPF_PERCPU_ARRAY(scratch, u32, 1);
// [0] events that matched, [1] of those, events the buffer had no room for.
BPF_PERCPU_ARRAY(stats, u64, 2);

#ifdef SEND_RESET_SOCKADDR
// The 6.10+ tcp_send_reset struct has an `enum sk_rst_reason` field, which header trees
// older than the kernel do not define; any 4-byte enum of our own stands in (never read).
#define sk_rst_reason fl_sk_rst_reason
enum fl_sk_rst_reason { FL_RST_REASON_UNREAD };
#endif

#ifdef USE_RINGBUF
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
#else
BPF_PERF_OUTPUT(events);
#endif

struct flow {
    u32 laddr[4];
    u32 raddr[4];
    u16 lport;
    u16 rport;
    u8 family;
};

// Tracepoint fields are read with bpf_probe_read_kernel: the verifier refuses loads
// through a pointer derived from ctx, which is what a copy of an array field becomes.
static __always_inline void set_addrs(struct flow *f, u16 family, const u8 *s4, const u8 *d4,
                                      const u8 *s6, const u8 *d6)
{
    if (family == FAMILY_INET) {
        f->family = 4;
        bpf_probe_read_kernel(&f->laddr[0], 4, s4);
        bpf_probe_read_kernel(&f->raddr[0], 4, d4);
    } else {
        f->family = 6;
        bpf_probe_read_kernel(f->laddr, 16, s6);
        bpf_probe_read_kernel(f->raddr, 16, d6);
    }
}

// A sockaddr_in / sockaddr_in6 as the newer tracepoints store it (28 bytes).
static __always_inline int sockaddr_to(const u8 *field, u32 *addr, u16 *port)
{
    u8 sa[28] = {};
    bpf_probe_read_kernel(sa, sizeof(sa), field);
    u16 fam = sa[0] | (sa[1] << 8);
    *port = (sa[2] << 8) | sa[3];
    if (fam == FAMILY_INET) {
        __builtin_memcpy(&addr[0], sa + 4, 4);
        return 4;
    }
    if (fam == FAMILY_INET6) {
        __builtin_memcpy(addr, sa + 8, 16);
        return 6;
    }
    return 0;
}

static __always_inline int is_local(struct flow *f)
{
    struct addr_key k = {};
    __builtin_memcpy(k.addr, f->laddr, 16);
    k.family = f->family;
    return local_addrs.lookup(&k) != NULL;
}

static __always_inline int port_ok(struct watcher *w, struct flow *f)
{
    if (!w->n_ports)
        return 1;
    for (int i = 0; i < MAX_PORTS; i++) {
        if (i < w->n_ports && (w->ports[i] == f->lport || w->ports[i] == f->rport))
            return 1;
    }
    return 0;
}

static __always_inline int peer_ok(struct watcher *w, struct flow *f)
{
    if (!w->n_cidrs)
        return 1;
    for (int i = 0; i < MAX_CIDRS; i++) {
        struct cidr *c = &w->cidrs[i];
        if (i < w->n_cidrs && c->family == f->family &&
            (f->raddr[0] & c->mask[0]) == c->addr[0] && (f->raddr[1] & c->mask[1]) == c->addr[1] &&
            (f->raddr[2] & c->mask[2]) == c->addr[2] && (f->raddr[3] & c->mask[3]) == c->addr[3])
            return 1;
    }
    return 0;
}

static __always_inline u32 match(struct flow *f, u8 kind)
{
    int zero = 0;
    u32 *act = active.lookup(&zero);
    if (!act || !*act || !is_local(f))
        return 0;
    // The mask is built in map memory, whose values the verifier does not track: built on
    // the stack, each of its 2^MAX_WATCHERS values would be a state of its own to verify.
    u32 *hit = scratch.lookup(&zero);
    if (!hit)
        return 0;
    *hit = 0;
    for (int i = 0; i < MAX_WATCHERS; i++) {
        if (!(*act & (1u << i)))
            continue;
        int k = i;
        struct watcher *w = watchers.lookup(&k);
        if (w && (w->kinds & (1u << kind)) && port_ok(w, f) && peer_ok(w, f))
            *hit |= 1u << i;
    }
    return *hit;
}

static __always_inline void count(int which)
{
    int k = which;
    u64 *n = stats.lookup(&k);
    if (n)
        (*n)++;
}

static __always_inline void emit(void *ctx, struct flow *f, u32 hit, u8 kind, u64 sock, u8 old_state,
                                 u8 new_state, u32 srtt_us, u32 snd_cwnd, int with_task)
{
    struct event ev = {};
    ev.ts_ns = bpf_ktime_get_ns();
    ev.sock = sock;
    ev.watchers = hit;
    __builtin_memcpy(ev.laddr, f->laddr, 16);
    __builtin_memcpy(ev.raddr, f->raddr, 16);
    ev.lport = f->lport;
    ev.rport = f->rport;
    ev.family = f->family;
    ev.kind = kind;
    ev.old_state = old_state;
    ev.new_state = new_state;
    ev.srtt_us = srtt_us;
    ev.snd_cwnd = snd_cwnd;
    if (with_task) {
        ev.pid = bpf_get_current_pid_tgid() >> 32;
        bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    }
    count(0);
#ifdef USE_RINGBUF
    if (events.ringbuf_output(&ev, sizeof(ev), 0) != 0)
        count(1);
#else
    if (events.perf_submit(ctx, &ev, sizeof(ev)) != 0)
        count(1);
#endif
}

#ifdef WANT_STATE
TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
    if (args->protocol != IPPROTO_TCP)
        return 0;
    struct flow f = {};
    set_addrs(&f, args->family, args->saddr, args->daddr, args->saddr_v6, args->daddr_v6);
    f.lport = args->sport;
    f.rport = args->dport;
    u32 hit = match(&f, EV_STATE);
    if (!hit)
        return 0;
    int ns = args->newstate;
    // These transitions run in the system call of the process that caused them
    // (connect, close, shutdown); the others run in softirq, on whichever task was current.
    int with_task = ns == ST_SYN_SENT || ns == ST_FIN_WAIT1 || ns == ST_LAST_ACK;
    emit(args, &f, hit, EV_STATE, (u64)args->skaddr, args->oldstate, ns, 0, 0, with_task);
    return 0;
}
#endif

#ifdef WANT_RETRANSMIT
TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
    struct flow f = {};
    set_addrs(&f, args->family, args->saddr, args->daddr, args->saddr_v6, args->daddr_v6);
    f.lport = args->sport;
    f.rport = args->dport;
    u32 hit = match(&f, EV_RETRANSMIT);
    if (hit)
        emit(args, &f, hit, EV_RETRANSMIT, (u64)args->skaddr, 0, args->state, 0, 0, 0);
    return 0;
}
#endif

#ifdef WANT_RESET_SENT
TRACEPOINT_PROBE(tcp, tcp_send_reset)
{
    struct flow f = {};
#ifdef SEND_RESET_SOCKADDR
    // 6.10+: addresses as sockaddrs, saddr always the local end (the one sending the RST).
    int fam = sockaddr_to(args->saddr, f.laddr, &f.lport);
    if (!fam || sockaddr_to(args->daddr, f.raddr, &f.rport) != fam)
        return 0;
    f.family = fam;
#else
    set_addrs(&f, args->family, args->saddr, args->daddr, args->saddr_v6, args->daddr_v6);
    f.lport = args->sport;
    f.rport = args->dport;
#endif
    u32 hit = match(&f, EV_RESET_SENT);
    if (hit)
        emit(args, &f, hit, EV_RESET_SENT, (u64)args->skaddr, 0, args->state, 0, 0, 0);
    return 0;
}
#endif

#ifdef WANT_RESET_RECEIVED
TRACEPOINT_PROBE(tcp, tcp_receive_reset)
{
    struct flow f = {};
    set_addrs(&f, args->family, args->saddr, args->daddr, args->saddr_v6, args->daddr_v6);
    f.lport = args->sport;
    f.rport = args->dport;
    u32 hit = match(&f, EV_RESET_RECEIVED);
    if (hit)
        emit(args, &f, hit, EV_RESET_RECEIVED, (u64)args->skaddr, 0, 0, 0, 0, 0);
    return 0;
}
#endif

#ifdef WANT_RTT
TRACEPOINT_PROBE(tcp, tcp_probe)
{
    // This fires on every segment received: the cheapest test goes first. Each socket,
    // watched or not, is looked at once per interval; on a busy connection most segments
    // end at the first lookup.
#ifdef TCP_PROBE_NO_SKADDR
    // Before 6.x's skaddr field (Debian's 6.1): the cookie keys the interval; the event
    // names no socket and the agent joins it to its connection by 4-tuple.
    u64 key = args->sock_cookie;
    u64 sock = 0;
#else
    u64 key = (u64)args->skaddr;
    u64 sock = key;
#endif
    u64 now = bpf_ktime_get_ns();
    int zero = 0;
    u64 *every = rtt_interval.lookup(&zero);
    if (every && *every) {
        u64 *last = rtt_last.lookup(&key);
        if (last && now - *last < *every)
            return 0;
        rtt_last.update(&key, &now);
    }
    struct flow f = {};
    int fam = sockaddr_to(args->saddr, f.laddr, &f.lport);
    if (!fam || sockaddr_to(args->daddr, f.raddr, &f.rport) != fam)
        return 0;
    f.family = fam;
    u32 hit = match(&f, EV_RTT);
    if (hit)
        emit(args, &f, hit, EV_RTT, sock, 0, ST_ESTABLISHED, args->srtt, args->snd_cwnd, 0);
    return 0;
}
#endif
