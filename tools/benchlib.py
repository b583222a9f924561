"""What the benchmarks in tools/ share: processes started in their own sessions and ended by
their ids, free ports on loopback addresses, CPU and memory from /proc, SIPp's statistics
files, the release build of sbcd. Imported by tools/bench-b2bua and tools/bench-registrations.
"""

import os
import resource
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIPP = "/usr/bin/sipp"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Processes:
    """Every process the bench starts, ended by its own id (its own session's group)."""

    def __init__(self, nice):
        self.running = []
        self.nice = nice

    def start(self, args, log_path, **kwargs):
        log = open(log_path, "ab")

        def prepare():
            # Other work on a shared machine (builds) would otherwise decide the result.
            os.nice(self.nice)
            raise_nofile()

        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=prepare, **kwargs)
        log.close()
        self.running.append(proc)
        return proc

    def stop(self, proc, timeout=10):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self):
        for proc in list(self.running):
            self.stop(proc, timeout=5)


def free_udp_port(address):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def free_sip_port(addresses):
    """A port below sbcd's media range that is free on every one of `addresses`."""
    for port in range(5070, 9999, 7):
        if not any(udp_port_bound(a, port) for a in addresses):
            return port
    raise RuntimeError("no free SIP port below 10000")


def udp_port_bound(address, port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, port))
            return False
        except OSError:
            return True


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def process_tree(pid):
    """pid and all its descendants (Kamailio forks its workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid):
    """(user, system) CPU seconds of the process tree."""
    user = system = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except (OSError, IndexError):
            continue
    return user / CLK_TCK, system / CLK_TCK


def memory_kib(pid):
    """(resident, peak resident) in KiB; for a process tree, the sum of proportional sets
    (Kamailio's shared memory counted once), peak = max seen by the caller."""
    tree = process_tree(pid)
    if len(tree) == 1:
        values = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1])
        return values.get("VmRSS", 0), values.get("VmHWM", 0)
    pss = 0
    for member in tree:
        try:
            with open(f"/proc/{member}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return pss, pss


def load_average():
    return os.getloadavg()[0]


def machine_cpu_ticks():
    """(all, steal) CPU ticks of the whole machine from /proc/stat: the share the hypervisor
    gave to other guests over an interval is the steal delta over the total delta."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    return sum(fields[:8]), fields[7]


def steal_share(before, after):
    total = after[0] - before[0]
    return (after[1] - before[1]) / total if total > 0 else 0.0


def read_stat_csv(path):
    """The last line of SIPp's -trace_stat file as a dict."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    header = lines[0].rstrip(";").split(";")
    values = lines[-1].rstrip(";").split(";")
    return dict(zip(header, values))


def read_rtt(path):
    """Setup response times in ms from SIPp's -trace_rtt file."""
    times = []
    if not os.path.exists(path):
        return times
    with open(path) as f:
        for line in f:
            parts = line.strip().split(";")
            if len(parts) >= 2:
                try:
                    times.append(float(parts[1]))
                except ValueError:
                    continue
    return times


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def build_sbcd(skip_build):
    """The release sbcd of this tree, built unless `skip_build`."""
    build = os.path.join(ROOT, "build", "release")
    if not skip_build:
        if not os.path.exists(os.path.join(build, "build.ninja")):
            subprocess.run(["meson", "setup", build, "--buildtype=release"], cwd=ROOT, check=True)
        subprocess.run(["ninja", "-C", build, "-j2", "daemon/sbcd"], check=True)
    return os.path.join(build, "daemon", "sbcd")
