// faultline tc classifier: drops packets that match an active fault rule (fl_egress,
// fl_ingress on clsact), or sends them to a fault's netem class (fl_shape, on the htb
// root faultline puts on an interface for netem faults).
//
// One program per agent. The rules live in maps that the agent writes; this code holds
// no policy of its own. It returns TC_ACT_UNSPEC for anything it does not act on, so
// filters that others attached keep running, and htb sends the packet on unshaped.
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/in.h>
#include <uapi/linux/in6.h>

#ifndef MAX_FAULTS
#define MAX_FAULTS 32
#endif
#ifndef MAX_CIDRS
#define MAX_CIDRS 8
#endif
#ifndef MAX_PORTS
#define MAX_PORTS 8
#endif
#ifndef MAX_EXCLUDED
#define MAX_EXCLUDED 8
#endif

#define DIR_EGRESS 1
#define DIR_INGRESS 2
#define PROTO_ANY 0
#define PROTO_ICMP_ANY 1   // ICMP for IPv4, ICMPv6 for IPv6

// Mirrored by agent/kernel/ebpf.py (CidrC, RuleC, CountersC): keep both in step.
struct cidr {
    u32 addr[4];   // network address, network byte order
    u32 mask[4];
    u8 family;     // 4 or 6
    u8 pad[3];
};

struct rule {
    u32 ifindex;
    u32 threshold;   // drop when bpf_get_prandom_u32() < threshold
    u8 always;       // drop every matching packet
    u8 directions;   // DIR_EGRESS | DIR_INGRESS
    u8 protocol;     // PROTO_ANY, PROTO_ICMP_ANY, IPPROTO_TCP, IPPROTO_UDP
    u8 n_cidrs;      // 0: any peer
    u8 n_ports;      // 0: any port
    u8 band;         // 0: a drop rule; else the minor of the htb class holding its netem
    u8 pad[2];
    u16 ports[MAX_PORTS];  // host byte order; source or destination may match
    struct cidr cidrs[MAX_CIDRS];
};

struct counters {
    u64 matched;
    u64 dropped;
};

struct pkt {
    u32 remote[4];
    u16 sport;
    u16 dport;
    u8 family;
    u8 proto;
    u8 has_ports;
    u8 nd;   // IPv6 neighbour discovery: like ARP for IPv4, left alone unless ICMP is asked for
};

BPF_ARRAY(rules, struct rule, MAX_FAULTS);
// Bit i set: rules[i] is in force. Written after the rule itself, so a packet never
// sees a half-written rule.
BPF_ARRAY(active, u64, 1);
BPF_PERCPU_ARRAY(counters, struct counters, MAX_FAULTS);
// Each rule's lease end (bpf_ktime_get_ns: CLOCK_MONOTONIC); 0: none. The kernel keeps the
// lease: past it a rule matches nothing, whether or not the agent that made it still runs.
BPF_ARRAY(deadlines, u64, MAX_FAULTS);
// Ports never faulted (the agent's own, SSH): the operator can always reach the host.
BPF_ARRAY(excluded, u16, MAX_EXCLUDED);

static __always_inline int parse_l4(struct __sk_buff *skb, u32 off, struct pkt *p)
{
    if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
        return 0;
    u16 ports[2];
    if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
        return 0;
    p->sport = bpf_ntohs(ports[0]);
    p->dport = bpf_ntohs(ports[1]);
    p->has_ports = 1;
    return 0;
}

static __always_inline int parse(struct __sk_buff *skb, int dir, struct pkt *p)
{
    u16 h_proto;
    if (bpf_skb_load_bytes(skb, 12, &h_proto, sizeof(h_proto)) < 0)
        return -1;
    if (h_proto == bpf_htons(ETH_P_IP)) {
        u8 vihl;
        u8 proto;
        u16 frag;
        u32 addrs[2];   // saddr, daddr
        if (bpf_skb_load_bytes(skb, ETH_HLEN, &vihl, 1) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN + 6, &frag, 2) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN + 9, &proto, 1) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN + 12, addrs, 8) < 0)
            return -1;
        p->family = 4;
        p->proto = proto;
        p->remote[0] = dir == DIR_EGRESS ? addrs[1] : addrs[0];
        // Only the first fragment carries ports.
        if ((bpf_ntohs(frag) & 0x1fff) == 0)
            parse_l4(skb, ETH_HLEN + (vihl & 0x0f) * 4, p);
        return 0;
    }
    if (h_proto == bpf_htons(ETH_P_IPV6)) {
        u8 next;
        u32 addrs[8];   // saddr, daddr
        if (bpf_skb_load_bytes(skb, ETH_HLEN + 6, &next, 1) < 0 ||
            bpf_skb_load_bytes(skb, ETH_HLEN + 8, addrs, 32) < 0)
            return -1;
        p->family = 6;
        int base = dir == DIR_EGRESS ? 4 : 0;
#pragma unroll
        for (int i = 0; i < 4; i++)
            p->remote[i] = addrs[base + i];
        u32 off = ETH_HLEN + 40;
        // Walk up to four hop-by-hop / routing / destination-options headers.
#pragma unroll
        for (int i = 0; i < 4; i++) {
            if (next != 0 && next != 43 && next != 60)
                break;
            u8 ext[2];
            if (bpf_skb_load_bytes(skb, off, ext, 2) < 0)
                return -1;
            next = ext[0];
            off += (ext[1] + 1) * 8;
        }
        p->proto = next;
        if (next == IPPROTO_ICMPV6) {
            u8 type;
            if (bpf_skb_load_bytes(skb, off, &type, 1) == 0 && type >= 133 && type <= 137)
                p->nd = 1;
        }
        parse_l4(skb, off, p);   // a fragment header (44) is left port-less
        return 0;
    }
    return -1;  // not IP (ARP, ...): never faulted
}

static __always_inline int excluded_port(struct pkt *p)
{
    if (!p->has_ports)
        return 0;
#pragma unroll
    for (int i = 0; i < MAX_EXCLUDED; i++) {
        int k = i;
        u16 *port = excluded.lookup(&k);
        if (port && *port && (*port == p->sport || *port == p->dport))
            return 1;
    }
    return 0;
}

static __always_inline int rule_matches(struct rule *r, struct pkt *p, u32 ifindex, int dir)
{
    if (r->ifindex != ifindex || !(r->directions & dir))
        return 0;
    if (p->nd && r->protocol != PROTO_ICMP_ANY)
        return 0;
    if (r->protocol == PROTO_ICMP_ANY) {
        if (p->proto != (p->family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6))
            return 0;
    } else if (r->protocol != PROTO_ANY && r->protocol != p->proto) {
        return 0;
    }
    if (r->n_ports) {
        if (!p->has_ports)
            return 0;
        int hit = 0;
#pragma unroll
        for (int i = 0; i < MAX_PORTS; i++) {
            if (i < r->n_ports && (r->ports[i] == p->sport || r->ports[i] == p->dport))
                hit = 1;
        }
        if (!hit)
            return 0;
    }
    if (r->n_cidrs) {
        int hit = 0;
#pragma unroll
        for (int i = 0; i < MAX_CIDRS; i++) {
            struct cidr *c = &r->cidrs[i];
            if (i < r->n_cidrs && c->family == p->family &&
                (p->remote[0] & c->mask[0]) == c->addr[0] &&
                (p->remote[1] & c->mask[1]) == c->addr[1] &&
                (p->remote[2] & c->mask[2]) == c->addr[2] &&
                (p->remote[3] & c->mask[3]) == c->addr[3])
                hit = 1;
        }
        if (!hit)
            return 0;
    }
    return 1;
}

// One walk over the active rules, for either sort: drop rules (band 0) on the clsact
// hooks, shaping rules (band set) on faultline's htb root. The first match decides.
static __always_inline int classify(struct __sk_buff *skb, int dir, int shaping)
{
    int zero = 0;
    u64 *mask = active.lookup(&zero);
    if (!mask || *mask == 0)
        return TC_ACT_UNSPEC;
    struct pkt p = {};
    if (parse(skb, dir, &p) < 0 || excluded_port(&p))
        return TC_ACT_UNSPEC;
    u64 bits = *mask;
    u64 now = 0;  // read once, and only if a rule has a lease end
    for (int i = 0; i < MAX_FAULTS; i++) {
        if (!(bits & (1ULL << i)))
            continue;
        int k = i;
        u64 *until = deadlines.lookup(&k);
        if (until && *until) {
            if (!now)
                now = bpf_ktime_get_ns();
            if (now >= *until)
                continue;   // its lease has ended: a drop stops, a netem band is no longer fed
        }
        struct rule *r = rules.lookup(&k);
        if (!r || (r->band != 0) != shaping || !rule_matches(r, &p, skb->ifindex, dir))
            continue;
        struct counters *c = counters.lookup(&k);
        if (c)
            c->matched++;   // per-CPU: no atomics needed
        if (shaping) {
            skb->tc_classid = r->band;   // cls_bpf adds the filter's major (htb's handle)
            return TC_ACT_OK;
        }
        if (r->always || bpf_get_prandom_u32() < r->threshold) {
            if (c)
                c->dropped++;
            // Egress: STOLEN, not SHOT. SHOT makes the send fail inside this host
            // (NET_XMIT_DROP), so TCP keeps the segment as unsent and never retransmits
            // it; STOLEN reports success and frees the packet, which is what a loss on
            // the wire looks like to the sender. Ingress: a drop is a drop.
            return dir == DIR_EGRESS ? TC_ACT_STOLEN : TC_ACT_SHOT;
        }
    }
    return TC_ACT_UNSPEC;
}

// On faultline's htb root (direct action): a matching packet goes to its fault's class,
// whose leaf is netem; anything else to htb's unshaped direct queue.
int fl_shape(struct __sk_buff *skb)
{
    return classify(skb, DIR_EGRESS, 1);
}

int fl_egress(struct __sk_buff *skb)
{
    return classify(skb, DIR_EGRESS, 0);
}

int fl_ingress(struct __sk_buff *skb)
{
    return classify(skb, DIR_INGRESS, 0);
}
