/* What the socket driver's in-kernel forwarding program (media_forward.bpf.c) and its
 * loader (kernel_forwarding.cc) share: the layout of the two BPF maps. Plain C, so that
 * both the BPF compiler and the C++ build read the same definitions.
 *
 * flows (hash): relay port -> what to do with a datagram that reaches it. An entry exists
 * only while the worker knows the datagram's whole fate: the source check it may do in the
 * kernel (one latched address and port, or a few prefixes), and the rewrite. Everything
 * else reaches the relay's socket and the worker, as without the program.
 * realms (array of 2): each realm's address and port range, so that the program knows a relay
 * port (and its slot) without an entry.
 * counters (array, mmapped by the relay): per relay port ("slot"), what the program
 * forwarded, and when it last did (the worker folds them into its own counters); and the
 * handoff between socket and kernel. The program forwards a datagram only when every earlier
 * one it left to the port's socket has been read by the worker (passed == handled): a stream
 * that moves into the kernel (its entry written after an update or a latch) never has new
 * packets overtake old ones still queued in the socket. */
#ifndef SBC_DATAPLANE_SOCKET_BPF_FORWARDING_ABI_H
#define SBC_DATAPLANE_SOCKET_BPF_FORWARDING_ABI_H

#include <linux/types.h>

#define SBC_FWD_MAX_PREFIXES 4
/* Userspace treats larger datagrams as malformed: the program leaves them to it. */
#define SBC_FWD_MAX_PAYLOAD 2048
/* The TTL / hop limit a forwarded packet leaves with: what the relay's sockets send with
 * unless net.ipv4.ip_default_ttl or the IPv6 hop_limit sysctl has been changed. */
#define SBC_FWD_HOP_LIMIT 64
#define SBC_FWD_LOOPBACK_IFINDEX 1 /* every network namespace's "lo" */
#define SBC_FWD_REALMS 2

struct sbc_fwd_realm {
  __u8 address[16]; /* IPv4 in the first four bytes */
  __u32 slot_base;  /* the slot of port_min */
  __u16 port_min;   /* host order */
  __u16 port_max;
  __u8 family; /* 4 or 6; 0: unused */
  __u8 pad[7];
};

struct sbc_fwd_key {
  __u8 address[16]; /* the relay port's address; IPv4 in the first four bytes, zeros after */
  __be16 port;
  __u8 family; /* 4 or 6 */
  __u8 pad;
};

enum sbc_fwd_egress {
  /* The new destination is an address of this host: the packet continues up the stack
   * rewritten. Only for packets that arrived on loopback (they keep the local route). */
  SBC_FWD_LOCAL = 0,
  /* Out of egress_ifindex, the next hop resolved by the kernel (bpf_redirect_neigh). */
  SBC_FWD_REDIRECT = 1,
};

struct sbc_fwd_prefix {
  __u8 address[16]; /* already masked */
  __u8 mask[16];
};

struct sbc_fwd_flow {
  __u32 egress_ifindex;
  __u8 egress;       /* enum sbc_fwd_egress */
  __u8 exact_source; /* 1: only source_address:source_port (a latched terminal) */
  __u8 prefix_count; /* otherwise: the source is inside one of prefixes[0, prefix_count) */
  __u8 tos;          /* DSCP << 2 */
  __be16 source_port;
  __be16 new_source_port;
  __be16 new_destination_port;
  __u8 pad[6];
  __u8 source_address[16];
  __u8 new_source[16];
  __u8 new_destination[16];
  struct sbc_fwd_prefix prefixes[SBC_FWD_MAX_PREFIXES];
};

struct sbc_fwd_counters {
  __u64 packets;
  __u64 bytes;        /* UDP payload bytes, as the relay counts them */
  __u64 last_seen_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
  __u64 passed;       /* written by the program: datagrams it left to the port's socket */
  __u64 handled;      /* written by the worker: how many of those it has read and dealt with */
  __u64 pad[3];
};

#endif
