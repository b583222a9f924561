#include "dataplane/socket/port_steering.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace sbc::dataplane {
namespace {

// The program is a dozen instructions built here with the constants of one realm in its
// immediates, so the project needs neither a BPF compiler nor an object file at run time.
// libbpf loads and attaches it.
bpf_insn instruction(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t offset,
                     std::int32_t immediate) {
  bpf_insn out{};
  out.code = code;
  out.dst_reg = dst & 0xf;
  out.src_reg = src & 0xf;
  out.off = offset;
  out.imm = immediate;
  return out;
}

constexpr std::uint8_t kContext = 6;  // r6 keeps the program's argument (r1)
constexpr std::uint8_t kSocket = 7;   // r7: the socket the map lookup returned

class ProgramBuilder {
 public:
  void load32(std::uint8_t reg, std::size_t contextOffset) {
    code_.push_back(instruction(BPF_LDX | BPF_W | BPF_MEM, reg, kContext,
                                static_cast<std::int16_t>(contextOffset), 0));
  }
  // Goes to the "let the kernel decide" exit unless the condition on the low 32 bits holds.
  void passUnless(std::uint8_t jumpWhenNot, std::uint8_t reg, std::uint32_t value) {
    passJumps_.push_back(code_.size());
    code_.push_back(instruction(BPF_JMP32 | jumpWhenNot | BPF_K, reg, 0, 0,
                                static_cast<std::int32_t>(value)));
  }
  void add(const bpf_insn& insn) { code_.push_back(insn); }
  void passIfZero(std::uint8_t reg) {
    passJumps_.push_back(code_.size());
    code_.push_back(instruction(BPF_JMP | BPF_JEQ | BPF_K, reg, 0, 0, 0));
  }
  std::vector<bpf_insn> finish() {
    const std::size_t pass = code_.size();
    code_.push_back(instruction(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, SK_PASS));
    code_.push_back(instruction(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (const std::size_t at : passJumps_) {
      code_[at].off = static_cast<std::int16_t>(pass - at - 1);
    }
    return code_;
  }

 private:
  std::vector<bpf_insn> code_;
  std::vector<std::size_t> passJumps_;
};

std::uint32_t word(const std::uint8_t* bytes) {
  std::uint32_t out = 0;
  std::memcpy(&out, bytes, sizeof out);  // the context holds addresses in network order too
  return out;
}

// if (udp && family && local address && port in range) assign the map's socket; always
// SK_PASS, so a datagram the program does not claim (or claims while the map is empty) is
// looked up as usual.
std::vector<bpf_insn> steeringProgram(const policy::IpAddress& address, std::uint16_t portMin,
                                      std::uint16_t portMax, int socketMapFd) {
  ProgramBuilder program;
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, kContext, BPF_REG_1, 0, 0));
  program.load32(BPF_REG_2, offsetof(bpf_sk_lookup, protocol));
  program.passUnless(BPF_JNE, BPF_REG_2, IPPROTO_UDP);
  const bool v4 = address.family == policy::IpFamily::v4;
  program.load32(BPF_REG_2, offsetof(bpf_sk_lookup, family));
  program.passUnless(BPF_JNE, BPF_REG_2, v4 ? AF_INET : AF_INET6);
  if (v4) {
    program.load32(BPF_REG_2, offsetof(bpf_sk_lookup, local_ip4));
    program.passUnless(BPF_JNE, BPF_REG_2, word(address.bytes.data()));
  } else {
    for (std::size_t i = 0; i < 4; ++i) {
      program.load32(BPF_REG_2, offsetof(bpf_sk_lookup, local_ip6) + 4 * i);
      program.passUnless(BPF_JNE, BPF_REG_2, word(address.bytes.data() + 4 * i));
    }
  }
  program.load32(BPF_REG_2, offsetof(bpf_sk_lookup, local_port));  // host order
  program.passUnless(BPF_JLT, BPF_REG_2, portMin);
  program.passUnless(BPF_JGT, BPF_REG_2, portMax);
  // sk = bpf_map_lookup_elem(&map, &(u32){0})
  program.add(instruction(BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, -4, 0));
  program.add(instruction(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, socketMapFd));
  program.add(instruction(0, 0, 0, 0, 0));  // second half of the 64-bit immediate
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0));
  program.add(instruction(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4));
  program.add(instruction(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem));
  program.passIfZero(BPF_REG_0);
  // bpf_sk_assign(ctx, sk, 0); bpf_sk_release(sk): the verifier insists on the release.
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, kSocket, BPF_REG_0, 0, 0));
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, kContext, 0, 0));
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, kSocket, 0, 0));
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 0));
  program.add(instruction(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_assign));
  program.add(instruction(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_1, kSocket, 0, 0));
  program.add(instruction(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_release));
  return program.finish();
}

void closeIfOpen(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// libbpf 1.x returns -errno and also sets errno.
[[noreturn]] void fail(int result, const std::string& step) {
  throw std::system_error(result < 0 ? -result : EINVAL, std::generic_category(),
                          "media sk_lookup: " + step);
}

}  // namespace

PortSteering::PortSteering(const policy::IpAddress& address, std::uint16_t portMin,
                           std::uint16_t portMax, int socketFd) {
  try {
    socketMapFd_ = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, "sbc_media_sock", sizeof(std::uint32_t),
                                  sizeof(std::uint64_t), 1, nullptr);
    if (socketMapFd_ < 0) fail(socketMapFd_, "cannot create the socket map");
    const std::uint32_t key = 0;
    const std::uint64_t value = static_cast<std::uint64_t>(socketFd);
    if (const int rc = bpf_map_update_elem(socketMapFd_, &key, &value, BPF_ANY); rc != 0) {
      fail(rc, "cannot put the media socket in the socket map");
    }
    const auto code = steeringProgram(address, portMin, portMax, socketMapFd_);
    std::array<char, 4096> log{};
    bpf_prog_load_opts options{};
    options.sz = sizeof options;
    options.expected_attach_type = BPF_SK_LOOKUP;
    options.log_buf = log.data();
    options.log_size = static_cast<std::uint32_t>(log.size());
    options.log_level = 0;  // the kernel fills the log only when loading fails at level 0
    programFd_ = bpf_prog_load(BPF_PROG_TYPE_SK_LOOKUP, "sbc_media", "GPL", code.data(),
                               code.size(), &options);
    if (programFd_ < 0) {
      fail(programFd_, std::string("the kernel refused the steering program") +
                           (log[0] != '\0' ? ": " + std::string(log.data()) : ""));
    }
    const int netns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (netns < 0) fail(-errno, "cannot open the network namespace");
    linkFd_ = bpf_link_create(programFd_, netns, BPF_SK_LOOKUP, nullptr);
    const int linkError = errno;
    ::close(netns);
    if (linkFd_ < 0) fail(-linkError, "cannot attach the steering program");
  } catch (...) {
    closeIfOpen(linkFd_);
    closeIfOpen(programFd_);
    closeIfOpen(socketMapFd_);
    throw;
  }
}

PortSteering::~PortSteering() {
  closeIfOpen(linkFd_);  // detaches the program
  closeIfOpen(programFd_);
  closeIfOpen(socketMapFd_);
}

}  // namespace sbc::dataplane
