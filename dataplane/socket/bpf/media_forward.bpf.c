/* The socket driver's in-kernel forwarding (RelaySettings::kernelForwarding): a TC ingress
 * program on the interfaces of the media addresses. For a UDP datagram to a relay port whose
 * stream the worker has described in the flows map, from a source that description allows,
 * with no older datagram of that port still waiting in the socket, it rewrites the addresses,
 * ports, DSCP and TTL (checksums updated incrementally), counts it and sends it on, so the
 * datagram never reaches a socket. Anything else (no entry, another source, fragments, IP
 * options, extension headers, a zero UDP checksum, an odd length) passes untouched to the
 * relay's socket, where the worker judges and counts it as it does without this program: the
 * program only takes over the common case, never decides a drop.
 *
 * Built with clang -target bpf; embedded in sbcd (kernel_forwarding.cc loads it). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <stddef.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dataplane/socket/bpf/forwarding_abi.h"

/* Sizes are set by the loader. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __type(key, struct sbc_fwd_key);
  __type(value, struct sbc_fwd_flow);
  __uint(max_entries, 1);
} sbc_fwd_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct sbc_fwd_realm);
  __uint(max_entries, SBC_FWD_REALMS);
} sbc_fwd_realms SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, struct sbc_fwd_counters);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE);
} sbc_fwd_counters SEC(".maps");

/* Per CPU: datagrams to relay ports the program forwarded or counted as passed. The worker
 * looks at their sum before it reads every stream's counters: unchanged, there is nothing to
 * read (calls without media, idle hours). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, 1);
} sbc_fwd_activity SEC(".maps");

#define IP4_OFF ETH_HLEN
#define IP4_CSUM_OFF (IP4_OFF + offsetof(struct iphdr, check))
#define UDP4_OFF (IP4_OFF + sizeof(struct iphdr))
#define IP6_OFF ETH_HLEN
#define UDP6_OFF (IP6_OFF + sizeof(struct ipv6hdr))
#define FRAGMENT_BITS 0x3fff /* IPv4 "more fragments" and the fragment offset */
/* Not ours: on to the next program, or the stack and the relay's socket. */
#define PASS TC_ACT_UNSPEC

static __always_inline int prefix_holds(const struct sbc_fwd_prefix *prefix, const __u32 *source,
                                        int words) {
  for (int i = 0; i < words; ++i) {
    __u32 address, mask;
    __builtin_memcpy(&address, prefix->address + 4 * i, 4);
    __builtin_memcpy(&mask, prefix->mask + 4 * i, 4);
    if ((source[i] & mask) != address) return 0;
  }
  return 1;
}

/* The source check the worker would make, for the cases it handed to the kernel. */
static __always_inline int source_allowed(const struct sbc_fwd_flow *flow, const __u32 *source,
                                          int words, __be16 source_port) {
  if (flow->exact_source) {
    if (source_port != flow->source_port) return 0;
    for (int i = 0; i < words; ++i) {
      __u32 expected;
      __builtin_memcpy(&expected, flow->source_address + 4 * i, 4);
      if (source[i] != expected) return 0;
    }
    return 1;
  }
#pragma unroll
  for (int p = 0; p < SBC_FWD_MAX_PREFIXES; ++p) {
    if (p >= flow->prefix_count) break;
    if (prefix_holds(&flow->prefixes[p], source, words)) return 1;
  }
  return 0;
}

/* The egress the flow asks for is possible for this packet. */
static __always_inline int egress_possible(const struct __sk_buff *skb,
                                           const struct sbc_fwd_flow *flow) {
  return flow->egress == SBC_FWD_REDIRECT || skb->ingress_ifindex == SBC_FWD_LOOPBACK_IFINDEX;
}

static __always_inline int same_words(const __u8 *a, const void *b, int words) {
  for (int i = 0; i < words; ++i) {
    __u32 x, y;
    __builtin_memcpy(&x, a + 4 * i, 4);
    __builtin_memcpy(&y, (const __u8 *)b + 4 * i, 4);
    if (x != y) return 0;
  }
  return 1;
}

/* The counters of the relay port `address` (4 or 16 bytes) : `port` (network order); NULL when
 * it is no relay port. */
static __always_inline struct sbc_fwd_counters *relay_port(const void *address, int bytes,
                                                           __be16 port) {
  const __u16 host_port = bpf_ntohs(port);
#pragma unroll
  for (__u32 r = 0; r < SBC_FWD_REALMS; ++r) {
    __u32 key = r;
    const struct sbc_fwd_realm *realm = bpf_map_lookup_elem(&sbc_fwd_realms, &key);
    if (!realm || realm->family != (bytes == 4 ? 4 : 6)) continue;
    if (host_port < realm->port_min || host_port > realm->port_max) continue;
    if (!same_words(realm->address, address, bytes / 4)) continue;
    __u32 slot = realm->slot_base + (host_port - realm->port_min);
    return bpf_map_lookup_elem(&sbc_fwd_counters, &slot);
  }
  return NULL;
}

static __always_inline void note_activity(void) {
  __u32 zero = 0;
  __u64 *activity = bpf_map_lookup_elem(&sbc_fwd_activity, &zero);
  if (activity) *activity += 1;
}

/* Leaves a datagram to a relay port to its socket, and counts it for the handoff. */
static __always_inline int pass_counted(struct sbc_fwd_counters *counters) {
  __sync_fetch_and_add(&counters->passed, 1);
  note_activity();
  return PASS;
}

/* Whether older datagrams of the port may still wait in its socket. */
static __always_inline int socket_behind(const struct sbc_fwd_counters *counters) {
  return *(volatile const __u64 *)&counters->passed != *(volatile const __u64 *)&counters->handled;
}

static __always_inline void count(struct sbc_fwd_counters *counters, __u32 payload) {
  __sync_fetch_and_add(&counters->packets, 1);
  __sync_fetch_and_add(&counters->bytes, payload);
  counters->last_seen_ns = bpf_ktime_get_ns();
  note_activity();
}

/* Both families' last steps: the UDP checksum (the pseudo-header's addresses, then the
 * ports) and ports, the counters, and the way out. */
static __always_inline int rewrite_udp_and_send(struct __sk_buff *skb, __u32 udp_offset,
                                                __s64 address_diff, const __be16 *ports,
                                                const __be16 *new_ports,
                                                struct sbc_fwd_counters *counters, __u32 payload,
                                                const struct sbc_fwd_flow *flow) {
  const __u32 checksum = udp_offset + offsetof(struct udphdr, check);
  bpf_l4_csum_replace(skb, checksum, 0, address_diff, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0);
  bpf_l4_csum_replace(skb, checksum, ports[0], new_ports[0], 2 | BPF_F_MARK_MANGLED_0);
  bpf_l4_csum_replace(skb, checksum, ports[1], new_ports[1], 2 | BPF_F_MARK_MANGLED_0);
  bpf_skb_store_bytes(skb, udp_offset, new_ports, 4, 0);
  count(counters, payload);
  if (flow->egress == SBC_FWD_REDIRECT) return bpf_redirect_neigh(flow->egress_ifindex, NULL, 0, 0);
  return TC_ACT_OK; /* up the stack, rewritten */
}

static __always_inline int forward4(struct __sk_buff *skb, void *data, void *end) {
  struct iphdr *ip = data + IP4_OFF;
  if ((void *)(ip + 1) > end) return PASS;
  if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP) return PASS;
  if (ip->frag_off & bpf_htons(FRAGMENT_BITS)) return PASS;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end) return PASS;
  const __u32 destination = ip->daddr;
  struct sbc_fwd_counters *counters = relay_port(&destination, 4, udp->dest);
  if (!counters) return PASS;
  const __u32 udp_length = bpf_ntohs(udp->len);
  /* gso_segs > 1: datagrams merged by UDP GRO forwarding, one header for several. */
  if (udp_length <= sizeof(*udp) || udp_length > sizeof(*udp) + SBC_FWD_MAX_PAYLOAD ||
      bpf_ntohs(ip->tot_len) != sizeof(*ip) + udp_length || udp->check == 0 ||
      skb->gso_segs > 1) {
    return pass_counted(counters);
  }

  struct sbc_fwd_key key = {};
  __builtin_memcpy(key.address, &destination, 4);
  key.port = udp->dest;
  key.family = 4;
  const struct sbc_fwd_flow *flow = bpf_map_lookup_elem(&sbc_fwd_flows, &key);
  const __u32 source = ip->saddr;
  if (!flow || !source_allowed(flow, &source, 1, udp->source) || !egress_possible(skb, flow) ||
      socket_behind(counters)) {
    return pass_counted(counters);
  }

  __u32 addresses[2] = {ip->saddr, ip->daddr};
  __u32 new_addresses[2];
  __builtin_memcpy(&new_addresses[0], flow->new_source, 4);
  __builtin_memcpy(&new_addresses[1], flow->new_destination, 4);
  const __u16 old_tos_word = *(__u16 *)ip; /* version, IHL, TOS */
  const __u16 old_ttl_word = *((__u16 *)ip + 4); /* TTL, protocol */
  __u16 new_tos_word = old_tos_word, new_ttl_word = old_ttl_word;
  ((__u8 *)&new_tos_word)[1] = flow->tos;
  ((__u8 *)&new_ttl_word)[0] = SBC_FWD_HOP_LIMIT;
  const __be16 ports[2] = {udp->source, udp->dest};
  const __be16 new_ports[2] = {flow->new_source_port, flow->new_destination_port};
  const __u32 payload = udp_length - sizeof(*udp);
  /* From here on the helpers change the packet: no direct access to it any more. */

  const __s64 address_diff = bpf_csum_diff(addresses, 8, new_addresses, 8, 0);
  if (address_diff < 0) return pass_counted(counters);
  bpf_l3_csum_replace(skb, IP4_CSUM_OFF, 0, address_diff, 0);
  bpf_l3_csum_replace(skb, IP4_CSUM_OFF, old_tos_word, new_tos_word, 2);
  bpf_l3_csum_replace(skb, IP4_CSUM_OFF, old_ttl_word, new_ttl_word, 2);
  bpf_skb_store_bytes(skb, IP4_OFF, &new_tos_word, 2, 0);
  bpf_skb_store_bytes(skb, IP4_OFF + offsetof(struct iphdr, ttl), &new_ttl_word, 2, 0);
  bpf_skb_store_bytes(skb, IP4_OFF + offsetof(struct iphdr, saddr), new_addresses, 8, 0);
  return rewrite_udp_and_send(skb, UDP4_OFF, address_diff, ports, new_ports, counters, payload,
                              flow);
}

static __always_inline int forward6(struct __sk_buff *skb, void *data, void *end) {
  struct ipv6hdr *ip = data + IP6_OFF;
  if ((void *)(ip + 1) > end) return PASS;
  if (ip->nexthdr != IPPROTO_UDP) return PASS; /* extension headers: the socket's */
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end) return PASS;
  __u32 addresses[8];
  __builtin_memcpy(addresses, &ip->saddr, 32); /* saddr, then daddr */
  struct sbc_fwd_counters *counters = relay_port(addresses + 4, 16, udp->dest);
  if (!counters) return PASS;
  const __u32 udp_length = bpf_ntohs(udp->len);
  if (udp_length <= sizeof(*udp) || udp_length > sizeof(*udp) + SBC_FWD_MAX_PAYLOAD ||
      bpf_ntohs(ip->payload_len) != udp_length || udp->check == 0 || skb->gso_segs > 1) {
    return pass_counted(counters);
  }

  struct sbc_fwd_key key = {};
  __builtin_memcpy(key.address, addresses + 4, 16);
  key.port = udp->dest;
  key.family = 6;
  const struct sbc_fwd_flow *flow = bpf_map_lookup_elem(&sbc_fwd_flows, &key);
  if (!flow || !source_allowed(flow, addresses, 4, udp->source) || !egress_possible(skb, flow) ||
      socket_behind(counters)) {
    return pass_counted(counters);
  }

  __u32 new_addresses[8];
  __builtin_memcpy(new_addresses, flow->new_source, 16);
  __builtin_memcpy(new_addresses + 4, flow->new_destination, 16);
  __u32 first_word;
  __builtin_memcpy(&first_word, ip, 4); /* version, traffic class, flow label */
  const __u32 host_word = bpf_ntohl(first_word);
  const __u32 new_first_word =
      bpf_htonl((host_word & 0xf00fffff) | ((__u32)flow->tos << 20));
  const __u8 hop_limit = SBC_FWD_HOP_LIMIT;
  const __be16 ports[2] = {udp->source, udp->dest};
  const __be16 new_ports[2] = {flow->new_source_port, flow->new_destination_port};
  const __u32 payload = udp_length - sizeof(*udp);

  /* IPv6 has no header checksum; the UDP one covers the addresses (pseudo-header). */
  const __s64 address_diff = bpf_csum_diff(addresses, 32, new_addresses, 32, 0);
  if (address_diff < 0) return pass_counted(counters);
  bpf_skb_store_bytes(skb, IP6_OFF, &new_first_word, 4, 0);
  bpf_skb_store_bytes(skb, IP6_OFF + offsetof(struct ipv6hdr, hop_limit), &hop_limit, 1, 0);
  bpf_skb_store_bytes(skb, IP6_OFF + offsetof(struct ipv6hdr, saddr), new_addresses, 32, 0);
  return rewrite_udp_and_send(skb, UDP6_OFF, address_diff, ports, new_ports, counters, payload,
                              flow);
}

SEC("tc")
int sbc_media_fwd(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return PASS;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) return forward4(skb, data, end);
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) return forward6(skb, data, end);
  return PASS;
}

char LICENSE[] SEC("license") = "GPL";
