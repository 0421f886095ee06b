//! Hosts made of Linux network namespaces, and network faults between them, for partition tests.
//!
//! [`Net::new`] creates one namespace per host, each with its own address in a private /24, all
//! joined by a bridge in a namespace of its own; the test's own (root) namespace joins the bridge
//! too, with one address, so that a test can talk to processes inside (only that /24's connected
//! route is added to it). Faults are blackhole routes, which drop a namespace's *outgoing*
//! packets to one address: [`Net::cut`] is one direction, [`Net::isolate`] both; and random loss
//! on one direction with iptables' `statistic` match ([`Net::lossy`], needs iptables), and a slow
//! congested link with `tc`'s token bucket ([`Net::slow`]); duplicated packets with iptables'
//! `TEE` ([`Net::duplicate`]); reordered ones with a slow `htb` lane that iptables' `CLASSIFY`
//! sends a random share of packets to ([`Net::reorder`]). No netem (this kernel has none): fixed
//! delay needs a delaying proxy (the chaos harness has one). Everything is removed when the
//! [`Net`] is dropped, after a panic too, and [`cleanup`] removes what a killed test left behind.
//!
//! Needs root and iproute2 (`ip`): a test that cannot create a namespace panics saying so.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Proc, hermetic, run_bounded};

/// Longest run of one `ip` command.
pub const IP_TIMEOUT: Duration = Duration::from_secs(10);
/// Most hosts in one net (addresses `.1` to `.HOSTS_MAX` of its /24).
pub const HOSTS_MAX: usize = 32;
/// Address of the root namespace on every net's bridge (`.254`).
const ROOT_HOST: u8 = 254;

/// A set of hosts; see the module docs.
#[derive(Debug)]
pub struct Net {
    prefix: String,
    subnet: String,
    hosts: Vec<Host>,
    /// The namespaces where [`Net::lossy`] added iptables rules ([`Net::heal`] flushes them).
    lossy: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The (namespace, interface) pairs [`Net::slow`] gave a queue discipline ([`Net::heal`]
    /// deletes them).
    slow: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
    /// The blackhole routes [`Net::cut`] added: (namespace, destination), for [`Net::heal`].
    cuts: std::sync::Mutex<Vec<(String, String)>>,
    /// The namespaces where [`Net::duplicate`] or [`Net::reorder`] added iptables `mangle`
    /// rules ([`Net::heal`] flushes them).
    mangled: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// One host: a network namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its name in the test (`n1`, ...).
    pub name: String,
    /// The namespace's name.
    pub ns: String,
    /// Its IPv4 address.
    pub ip: String,
}

/// Runs `ip` with `args`; panics with its output when it fails.
fn ip(args: &[&str]) {
    let out = run_bounded(ip_command(args), IP_TIMEOUT, true);
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}\nnetwork namespace tests need root and iproute2",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip` with `args`, ignoring failure (cleanup of what may not exist).
fn ip_quiet(args: &[&str]) {
    let _ = run_bounded(ip_command(args), IP_TIMEOUT, false);
}

fn ip_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    cmd
}

/// Distinct nets at once: a process's prefix and subnet both come from its pid modulo this, so
/// two concurrent tests get different ones unless their pids are this far apart.
const NETS: u32 = 12_500;

/// The short prefix of this process's namespaces and interfaces (interface names have at most 15
/// bytes: `v<prefix><host>`).
#[cfg(test)]
fn prefix_of(pid: u32) -> String {
    prefix_tagged(TAG, pid)
}

/// The prefix of this module's tests' nets (`lt<n>`).
const TAG: &str = "lt";

/// The prefix of a net tagged `tag` (at most 4 bytes) made by process `pid`.
fn prefix_tagged(tag: &str, pid: u32) -> String {
    format!("{tag}{}", pid % NETS)
}

/// The first three bytes of this process's /24: `10.200.0` to `10.249.249`.
fn subnet_of(pid: u32) -> String {
    let n = pid % NETS;
    format!("10.{}.{}", 200 + n / 250, n % 250)
}

impl Net {
    /// Creates the hosts named `names` (at most [`HOSTS_MAX`], each name at most 4 bytes), with
    /// addresses `.1`, `.2`, ... in this process's own /24.
    pub fn new(names: &[&str]) -> Net {
        Net::tagged(TAG, names)
    }

    /// [`Net::new`] with namespaces named `<tag><n>-<host>` (`tag`: 1 to 4 lowercase letters), so
    /// that a tool can find and remove its own leftovers ([`cleanup_tag`]).
    pub fn tagged(tag: &str, names: &[&str]) -> Net {
        assert!(names.len() <= HOSTS_MAX && names.iter().all(|n| !n.is_empty() && n.len() <= 4), "{names:?}");
        assert!((1..=4).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_lowercase()), "{tag:?}");
        let pid = std::process::id();
        let prefix = prefix_tagged(tag, pid);
        cleanup(&prefix);
        let subnet = subnet_of(pid);
        let mut net = Net {
            prefix,
            subnet,
            hosts: Vec::new(),
            lossy: Default::default(),
            slow: Default::default(),
            cuts: Default::default(),
            mangled: Default::default(),
        };
        let bridge_ns = net.bridge_ns();
        ip(&["netns", "add", &bridge_ns]);
        ip(&["-n", &bridge_ns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge_ns, "link", "set", "br0", "up"]);
        for (i, name) in names.iter().enumerate() {
            let host = Host {
                name: (*name).to_owned(),
                ns: format!("{}-{name}", net.prefix),
                ip: format!("{}.{}", net.subnet, i + 1),
            };
            ip(&["netns", "add", &host.ns]);
            ip(&["-n", &host.ns, "link", "set", "lo", "up"]);
            net.attach(Some(&host.ns), name, &host.ip);
            net.hosts.push(host);
        }
        net.attach(None, "root", &format!("{}.{ROOT_HOST}", net.subnet));
        net
    }

    fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// Joins namespace `ns` (`None`: the root namespace) to the bridge with address `addr`.
    fn attach(&self, ns: Option<&str>, name: &str, addr: &str) {
        let (inside, outside) = (format!("v{}{name}", self.prefix), format!("b{}{name}", self.prefix));
        let bridge_ns = self.bridge_ns();
        ip(&["link", "add", &inside, "type", "veth", "peer", "name", &outside]);
        ip(&["link", "set", &outside, "netns", &bridge_ns]);
        ip(&["-n", &bridge_ns, "link", "set", &outside, "master", "br0"]);
        ip(&["-n", &bridge_ns, "link", "set", &outside, "up"]);
        let cidr = format!("{addr}/24");
        match ns {
            Some(ns) => {
                ip(&["link", "set", &inside, "netns", ns]);
                ip(&["-n", ns, "addr", "add", &cidr, "dev", &inside]);
                ip(&["-n", ns, "link", "set", &inside, "up"]);
            }
            None => {
                ip(&["addr", "add", &cidr, "dev", &inside]);
                ip(&["link", "set", &inside, "up"]);
            }
        }
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap_or_else(|| panic!("no host {name}"))
    }

    /// The host whose address is `ip`.
    pub fn host_of(&self, ip: &str) -> &Host {
        self.hosts.iter().find(|h| h.ip == ip).unwrap_or_else(|| panic!("no host at {ip}"))
    }

    /// Spawns `bin` with `args` and `envs` inside `host`'s namespace (`ip netns exec` runs it in
    /// place, so the process is the binary itself), its output appended to `log`.
    pub fn spawn(&self, host: &str, bin: &Path, args: &[String], envs: &[(&str, &str)], log: &Path) -> Proc {
        let mut cmd = hermetic("ip");
        cmd.args(["netns", "exec", &self.host(host).ns]).arg(bin).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Proc::spawn(&format!("{} on {host}", bin.display()), cmd, log)
    }

    /// From now on `from` cannot send to `to` (its packets to `to`'s address are dropped).
    pub fn cut(&self, from: &str, to: &str) {
        let to_ip = format!("{}/32", self.host(to).ip);
        let ns = self.host(from).ns.clone();
        ip(&["-n", &ns, "route", "add", "blackhole", &to_ip]);
        self.cuts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((ns, to_ip));
    }

    /// `a` and `b` cannot reach each other.
    pub fn isolate(&self, a: &str, b: &str) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// From now on `from` drops each packet it sends to `to` with probability `p` (0 to 1), with
    /// iptables' `statistic` match in `from`'s namespace: a lossy link in one direction. Needs
    /// iptables; panics naming it when the rule cannot be added.
    pub fn lossy(&self, from: &str, to: &str, p: f64) {
        assert!((0.0..=1.0).contains(&p), "{p}");
        let (ns, to_ip) = (&self.host(from).ns, format!("{}/32", self.host(to).ip));
        self.lossy.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(ns.clone());
        let prob = format!("{p:.4}");
        let args =
            ["netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", &to_ip, "-m", "statistic", "--mode", "random"];
        let mut cmd = ip_command(&args);
        cmd.args(["--probability", &prob, "-j", "DROP"]);
        let out = run_bounded(cmd, IP_TIMEOUT, true);
        assert!(
            out.status.success(),
            "iptables in {ns} failed ({}): {}\nlossy links need iptables (apt-get install iptables)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// From now on `host`'s outgoing traffic goes through a token bucket (`tc`'s `tbf`) of
    /// `rate_kbit` kbit/s that queues packets for up to `latency_ms` before dropping them: a slow,
    /// congested link (delay under load, then loss). Not netem's fixed delay: this kernel has no
    /// netem.
    pub fn slow(&self, host: &str, rate_kbit: u32, latency_ms: u32) {
        let iface = format!("v{}{host}", self.prefix);
        let (rate, latency) = (format!("{rate_kbit}kbit"), format!("{latency_ms}ms"));
        let ns = &self.host(host).ns;
        self.slow.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((ns.clone(), iface.clone()));
        let args = ["netns", "exec", ns, "tc", "qdisc", "replace", "dev", &iface, "root", "tbf", "rate", &rate];
        let mut cmd = ip_command(&args);
        cmd.args(["burst", "32kbit", "latency", &latency]);
        let out = run_bounded(cmd, IP_TIMEOUT, true);
        assert!(
            out.status.success(),
            "tc in {ns} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// From now on `from` sends a second copy of each packet for `to` with probability `p` (0 to
    /// 1): iptables' `TEE` target, picked at random by the `statistic` match, in `from`'s
    /// namespace. Duplicated packets, as netem's `duplicate` would make. Needs iptables.
    pub fn duplicate(&self, from: &str, to: &str, p: f64) {
        assert!((0.0..=1.0).contains(&p), "{p}");
        let to_ip = self.host(to).ip.clone();
        let prob = format!("{p:.4}");
        let dest = format!("{to_ip}/32");
        let rule = ["-d", &dest, "-m", "statistic", "--mode", "random", "--probability", &prob];
        self.mangle(from, &[&rule[..], &["-j", "TEE", "--gateway", &to_ip]].concat());
    }

    /// From now on `host` holds back a share `p` (0 to 1) of its outgoing packets, picked at
    /// random, in a slow lane of `slow_kbit` kbit/s, so that packets sent after them overtake
    /// them: reordering, as netem's `reorder` would make. The lane is a class of an `htb` queue
    /// discipline, fed by iptables' `CLASSIFY`; the other packets pass at once. Needs iptables.
    pub fn reorder(&self, host: &str, p: f64, slow_kbit: u32) {
        assert!((0.0..=1.0).contains(&p) && slow_kbit > 0, "{p} {slow_kbit}");
        let iface = format!("v{}{host}", self.prefix);
        let ns = self.host(host).ns.clone();
        self.slow.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert((ns.clone(), iface.clone()));
        let slow = format!("{slow_kbit}kbit");
        let tc: [&[&str]; 3] = [
            &["qdisc", "replace", "dev", &iface, "root", "handle", "1:", "htb", "default", "1"],
            &["class", "add", "dev", &iface, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"],
            &["class", "add", "dev", &iface, "parent", "1:", "classid", "1:2", "htb", "rate", &slow, "ceil", &slow],
        ];
        for args in tc {
            let mut cmd = ip_command(&["netns", "exec", &ns, "tc"]);
            cmd.args(args);
            let out = run_bounded(cmd, IP_TIMEOUT, true);
            assert!(
                out.status.success(),
                "tc {} in {ns} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let prob = format!("{p:.4}");
        let rule = ["-o", &iface, "-m", "statistic", "--mode", "random", "--probability", &prob];
        self.mangle(host, &[&rule[..], &["-j", "CLASSIFY", "--set-class", "1:2"]].concat());
    }

    /// The packets that [`Net::duplicate`] and [`Net::reorder`] have copied or held back on
    /// `host` so far (iptables' counters of its `mangle` rules).
    pub fn mangled_packets(&self, host: &str) -> u64 {
        let ns = &self.host(host).ns;
        let cmd = ip_command(&["netns", "exec", ns, "iptables", "-t", "mangle", "-L", "POSTROUTING", "-v", "-x", "-n"]);
        let out = run_bounded(cmd, IP_TIMEOUT, false);
        // Two header lines, then one line per rule whose first column is its packet count.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }

    /// Appends `rule` to the `mangle` table's POSTROUTING chain in `host`'s namespace; panics
    /// naming iptables when it cannot.
    fn mangle(&self, host: &str, rule: &[&str]) {
        let ns = self.host(host).ns.clone();
        self.mangled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(ns.clone());
        let mut cmd = ip_command(&["netns", "exec", &ns, "iptables", "-t", "mangle", "-A", "POSTROUTING"]);
        cmd.args(rule);
        let out = run_bounded(cmd, IP_TIMEOUT, true);
        assert!(
            out.status.success(),
            "iptables -t mangle in {ns} failed ({}): {}\nduplicated and reordered packets need iptables",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    /// Removes every fault.
    pub fn heal(&self) {
        let mangled = std::mem::take(&mut *self.mangled.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for ns in mangled {
            ip_quiet(&["netns", "exec", &ns, "iptables", "-t", "mangle", "-F", "POSTROUTING"]);
        }
        let slow = std::mem::take(&mut *self.slow.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for (ns, iface) in slow {
            ip_quiet(&["netns", "exec", &ns, "tc", "qdisc", "del", "dev", &iface, "root"]);
        }
        let lossy = std::mem::take(&mut *self.lossy.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for ns in lossy {
            ip_quiet(&["netns", "exec", &ns, "iptables", "-F", "OUTPUT"]);
        }
        let cuts = std::mem::take(&mut *self.cuts.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for (ns, to_ip) in cuts {
            ip_quiet(&["-n", &ns, "route", "del", "blackhole", &to_ip]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        cleanup(&self.prefix);
    }
}

/// Removes every namespace whose name starts with `prefix` and the root namespace's interface of
/// that prefix (deleting a namespace deletes the interfaces in it).
pub fn cleanup(prefix: &str) {
    for name in namespaces() {
        if name.starts_with(&format!("{prefix}-")) {
            ip_quiet(&["netns", "del", &name]);
        }
    }
    ip_quiet(&["link", "del", &format!("v{prefix}root")]);
}

/// The names of the network namespaces.
fn namespaces() -> Vec<String> {
    let out = run_bounded(ip_command(&["netns", "list"]), IP_TIMEOUT, false);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Removes what every net tagged `tag` left behind, whichever process made it: SIGKILL to each
/// process still in one of its namespaces, then the namespaces and the root namespace's
/// interfaces. Returns the namespaces removed.
pub fn cleanup_tag(tag: &str) -> Vec<String> {
    let ours = |name: &str| {
        name.strip_prefix(tag)
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut removed = Vec::new();
    let mut prefixes = std::collections::BTreeSet::new();
    for name in namespaces().into_iter().filter(|n| ours(n)) {
        let pids = run_bounded(ip_command(&["netns", "pids", &name]), IP_TIMEOUT, false);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        prefixes.insert(name.split_once('-').map(|(p, _)| p.to_owned()).unwrap_or_default());
        removed.push(name);
    }
    for p in prefixes {
        cleanup(&p);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_in_fifteen_bytes_and_subnets_differ_with_prefixes() {
        let p = prefix_of(NETS - 1);
        assert!(format!("v{p}root").len() <= 15 && format!("b{p}abcd").len() <= 15, "{p}");
        assert_eq!(subnet_of(NETS - 1), "10.249.249");
        let subnets: std::collections::BTreeSet<String> = (0..NETS).map(subnet_of).collect();
        assert_eq!(subnets.len(), NETS as usize);
    }
}
