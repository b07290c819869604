// The `tc` command's side of bench/apply_latency.py: a direct-action classifier that drops
// every IPv4 packet to or from one peer (PEER_BE, network byte order, set when compiled).
// It is what a user of the plain tc command would write to cut one peer off on a kernel
// without netem: `tc filter add dev X egress bpf da obj tc_peer_drop.o sec classifier`.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#ifndef PEER_BE
#error "compile with -DPEER_BE=<IPv4 address as a network-order u32>"
#endif

__attribute__((section("classifier"), used))
int drop_peer(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);

    if ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
        return TC_ACT_UNSPEC;
    if (ip->saddr == PEER_BE || ip->daddr == PEER_BE)
        return TC_ACT_SHOT;
    return TC_ACT_UNSPEC;
}

char _license[] __attribute__((section("license"), used)) = "GPL";
