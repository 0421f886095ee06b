//! The cluster under test: 3 or 5 lognodes and a gateway, each on a host of its own (a network
//! namespace, `n1`.. and `g1`), and the faults the nemesis applies to them. The clients run
//! on hosts of their own too ([`CLIENT_HOSTS`]: threads of the harness inside those namespaces);
//! the harness itself (the nemesis's lookups, the final reads, the projector) stays in its own
//! namespace, which reaches every host over the bridge.
//!
//! Dropping the world kills its processes and removes its namespaces (after a panic too);
//! `chaos cleanup` removes what a killed harness left ([`testkit::netns::cleanup_tag`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use lognode_args::LognodeArgs;
use testkit::netns::Net;
use testkit::process::{Proc, hermetic};

/// The tag of the harness's namespaces (`cz<n>-<host>`).
pub const NET_TAG: &str = "cz";
/// Voters in the cluster unless the run asks for more (lognode's default `--voters`).
pub const VOTERS_DEFAULT: u64 = 3;
/// Hosts for lognodes: the voters' and spares for the nodes the membership nemesis adds. A new
/// node gets a host never used before while one is left (see docs/FAULTS.md: a node on the
/// address of a removed one was discovered late), then the one freed longest ago.
pub const LOGNODE_HOSTS: u64 = 12;
/// The clients' hosts: the transfers' writers, the readers, the producers, the group's members.
pub const CLIENT_HOSTS: [&str; 4] = ["c1", "c2", "c3", "c4"];
/// lognode's gRPC port on its host.
const GRPC_PORT: u16 = 7000;
/// The delaying proxy's port on a host whose links are delayed ([`World::delay`]).
const DELAY_PORT: u16 = 7100;
/// lognode's gossip port on its host.
const GOSSIP_PORT: u16 = 7001;
/// The gateway's HTTP port on its host.
const GATEWAY_PORT: u16 = 8080;
/// The lognodes' log filter.
const LOGNODE_RUST_LOG: &str = "info,openraft=warn,memberlist_core::broadcast=off";
/// Longest wait for the cluster to serve (a leader, every voter, the gateway ready).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The lognode whose data is on a filesystem of its own, which the disk nemesis fills.
pub const DISK_NODE: u64 = 3;
/// The size of that filesystem (a tmpfs: memory only as far as it is used).
pub const DISK_BYTES: u64 = 2 << 30;
/// The source name of that filesystem's mount (`chaos cleanup` unmounts every one of them).
pub const DISK_SOURCE: &str = "chaos-disk";
/// Longest `projector verify` (it waits up to a minute for the projector to catch up).
const VERIFY_TIMEOUT: Duration = Duration::from_secs(180);
/// The files that fill the disk.
const FILLER: &str = "chaos-filler";
const FILLER_REST: &str = "chaos-filler-rest";
/// Longest run of a mount, fill or iptables command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The binaries the world runs.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `lognode`.
    pub lognode: PathBuf,
    /// `gateway`.
    pub gateway: PathBuf,
    /// `projector`, when it was built (needed with a projector).
    pub projector: Option<PathBuf>,
}

impl Bins {
    /// The binaries in `dir`; an error names the missing one and how to build it.
    pub fn in_dir(dir: &Path) -> anyhow::Result<Bins> {
        let find = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                bail!(
                    "{} is missing: build it first (`cargo build --release -p lognode -p gateway`), or pass \
                     --bin-dir",
                    p.display()
                )
            }
        };
        let projector = Some(dir.join("projector")).filter(|p| p.is_file());
        Ok(Bins { lognode: find("lognode")?, gateway: find("gateway")?, projector })
    }
}

struct Node {
    id: u64,
    host: String,
    args: Vec<String>,
    log: PathBuf,
    proc: Option<Proc>,
    paused: bool,
}

/// The running cluster; see the module docs.
pub struct World {
    // Dropped in this order: the processes, then the namespaces.
    nodes: Vec<Node>,
    gateway: Option<Proc>,
    gateway_args: Vec<String>,
    bins: Bins,
    dir: PathBuf,
    /// The admin key's secret (the gateway runs with `--auth keys`, as in production).
    pub admin_key: String,
    /// The mount of [`DISK_NODE`]'s data, when the disk nemesis runs.
    disk: Option<PathBuf>,
    /// The projector's database URL and process, when the run has one.
    projector: Option<(String, Option<Proc>)>,
    key_file: PathBuf,
    /// Voters in the cluster.
    voters: u64,
    /// The id of the next node added.
    next_id: u64,
    /// Lognode hosts freed by retired nodes, oldest first.
    freed: std::collections::VecDeque<String>,
    /// The delaying proxies of [`World::delay`], and the iptables rules that send to them
    /// (namespace, rule): removed at the heal.
    proxies: Vec<crate::delay::Proxy>,
    redirects: Vec<(String, Vec<String>)>,
    /// The clock files [`World::jump_clock`] wrote: removed at the heal.
    clocks: Vec<PathBuf>,
    net: Net,
}

impl World {
    /// Creates the hosts and starts the lognodes and the gateway, with their data and logs in
    /// `dir` (which must be empty or absent). Needs root.
    /// With `disk`, [`DISK_NODE`]'s data is on a tmpfs of [`DISK_BYTES`] of its own. With
    /// `projector_db`, a projector (in the harness's namespace) materializes the ledger into that
    /// database.
    pub fn start(
        bins: Bins,
        dir: &Path,
        seed: u64,
        voters: u64,
        disk: bool,
        projector_db: Option<String>,
    ) -> anyhow::Result<World> {
        if !(3..=LOGNODE_HOSTS / 2).contains(&voters) || voters.is_multiple_of(2) {
            bail!("{voters} voters: expected an odd number from 3 to {}", LOGNODE_HOSTS / 2);
        }
        if projector_db.is_some() && bins.projector.is_none() {
            bail!("a run with a projector needs the projector binary next to lognode (`cargo build -p projector`)");
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let admin_key = format!("lk_chaos_{:032x}", fastrand::Rng::with_seed(seed ^ 0x5eed).u128(..));
        let key_file = dir.join("admin.key");
        write_secret(&key_file, &admin_key)?;
        let names: Vec<String> = (1..=LOGNODE_HOSTS)
            .map(|i| format!("n{i}"))
            .chain(["g1".to_owned()])
            .chain(CLIENT_HOSTS.map(str::to_owned))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let net = Net::tagged(NET_TAG, &refs);
        let seed_addr = format!("{}:{GOSSIP_PORT}", net.host("n1").ip);
        let nodes = (1..=voters)
            .map(|id| {
                let host = format!("n{id}");
                let ip = net.host(&host).ip.clone();
                let synced = dir.join(format!("synced-{host}-id{id}"));
                let args =
                    LognodeArgs::new(id, dir.join(&host), &format!("{ip}:{GRPC_PORT}"), &format!("{ip}:{GOSSIP_PORT}"))
                        .voters(voters as usize)
                        .extra(&["--admin-key-file", &key_file.display().to_string()])
                        .extra(&["--fault-synced-map", &synced.display().to_string()])
                        .extra(&["--fault-clock-file", &clock_file(dir, &host, id).display().to_string()]);
                let args = if id == 1 { args.bootstrap() } else { args.join(&seed_addr) };
                Node { id, log: dir.join(format!("{host}.log")), host, args: args.to_args(), proc: None, paused: false }
            })
            .collect();
        // Every lognode host, the spares too: a node added later is reached at its host's address.
        let lognodes: Vec<String> =
            (1..=LOGNODE_HOSTS).map(|i| format!("{}:{GRPC_PORT}", net.host(&format!("n{i}")).ip)).collect();
        let gateway_args = vec![
            "--listen".to_owned(),
            format!("{}:{GATEWAY_PORT}", net.host("g1").ip),
            "--lognodes".to_owned(),
            lognodes.join(","),
        ];
        let disk = if disk {
            let mount = dir.join(host(DISK_NODE));
            std::fs::create_dir_all(&mount).with_context(|| format!("create {}", mount.display()))?;
            let size = format!("size={DISK_BYTES}");
            let mut cmd = std::process::Command::new("mount");
            cmd.args(["-t", "tmpfs", "-o", &size, DISK_SOURCE]).arg(&mount);
            run(cmd, "mount the disk node's tmpfs")?;
            Some(mount)
        } else {
            None
        };
        let mut world = World {
            nodes,
            gateway: None,
            gateway_args,
            bins,
            dir: dir.to_path_buf(),
            admin_key,
            disk,
            projector: projector_db.map(|db| (db, None)),
            key_file,
            voters,
            next_id: voters + 1,
            freed: std::collections::VecDeque::new(),
            proxies: Vec::new(),
            clocks: Vec::new(),
            redirects: Vec::new(),
            net,
        };
        for i in 0..world.nodes.len() {
            world.spawn_node(i);
        }
        world.spawn_gateway();
        world.spawn_projector();
        Ok(world)
    }

    /// The gateway's base URL.
    pub fn gateway_url(&self) -> String {
        format!("http://{}:{GATEWAY_PORT}", self.net.host("g1").ip)
    }

    /// Voters in the cluster.
    pub fn voters(&self) -> u64 {
        self.voters
    }

    /// The network namespace of host `host` (`c1`, `n2`, ...).
    pub fn namespace(&self, host: &str) -> String {
        self.net.host(host).ns.clone()
    }

    /// Each lognode's id and gRPC address.
    pub fn grpc_addrs(&self) -> Vec<(u64, String)> {
        self.nodes.iter().map(|n| (n.id, format!("{}:{GRPC_PORT}", self.net.host(&n.host).ip))).collect()
    }

    /// The ids of the lognodes in the world (not retired).
    pub fn member_ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// The host of lognode `id` (`?` when it is not in the world).
    pub fn host_of(&self, id: u64) -> String {
        self.nodes.iter().find(|n| n.id == id).map_or_else(|| "?".to_owned(), |n| n.host.clone())
    }

    /// Starts a new lognode, with the next id and fresh data, on a lognode host no node uses; it
    /// joins through the others' gossip (the leader adds it as a learner, and promotes it once a
    /// voter is missing). Its id.
    pub fn add_node(&mut self) -> anyhow::Result<u64> {
        let used: Vec<&str> = self.nodes.iter().map(|n| n.host.as_str()).collect();
        let fresh = (1..=LOGNODE_HOSTS)
            .map(|i| format!("n{i}"))
            .find(|h| !used.contains(&h.as_str()) && !self.freed.contains(h) && !self.ever_used(h));
        let host = match fresh {
            Some(h) => h,
            None => self.freed.pop_front().context("no free lognode host")?,
        };
        let id = self.next_id;
        self.next_id += 1;
        let ip = self.net.host(&host).ip.clone();
        let seeds: Vec<String> =
            self.nodes.iter().map(|n| format!("{}:{GOSSIP_PORT}", self.net.host(&n.host).ip)).collect();
        let data = self.dir.join(format!("{host}-id{id}"));
        let mut args = LognodeArgs::new(id, data, &format!("{ip}:{GRPC_PORT}"), &format!("{ip}:{GOSSIP_PORT}"))
            .voters(self.voters as usize)
            .extra(&["--admin-key-file", &self.key_file.display().to_string()])
            .extra(&["--fault-clock-file", &clock_file(&self.dir, &host, id).display().to_string()]);
        for s in &seeds {
            args = args.join(s);
        }
        let log = self.dir.join(format!("{host}-id{id}.log"));
        self.nodes.push(Node { id, host, args: args.to_args(), log, proc: None, paused: false });
        self.spawn_node(self.nodes.len() - 1);
        Ok(id)
    }

    /// Whether a node ever ran on `host` (its log is there).
    fn ever_used(&self, host: &str) -> bool {
        std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{host}-id"))))
            .unwrap_or(false)
            || (1..=self.voters).any(|i| format!("n{i}") == host)
    }

    /// Kills lognode `id` and takes it out of the world (after the cluster removed it).
    pub fn retire(&mut self, id: u64) {
        if let Some(i) = self.nodes.iter().position(|n| n.id == id) {
            let mut node = self.nodes.remove(i);
            if let Some(mut p) = node.proc.take() {
                p.kill9();
            }
            self.freed.push_back(node.host);
        }
    }

    /// Where the run's files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn spawn_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let proc =
            self.net.spawn(&node.host, &self.bins.lognode, &node.args, &[("RUST_LOG", LOGNODE_RUST_LOG)], &node.log);
        node.proc = Some(proc);
        node.paused = false;
    }

    fn spawn_gateway(&mut self) {
        let log = self.dir.join("g1.log");
        let mut cmd = hermetic("ip");
        cmd.args(["netns", "exec", &self.net.host("g1").ns]).arg(&self.bins.gateway).args(&self.gateway_args);
        cmd.env("RUST_LOG", "info");
        self.gateway = Some(Proc::spawn("gateway on g1", cmd, &log));
    }

    fn projector_command(&self, args: &[&str]) -> Option<std::process::Command> {
        let (db, _) = self.projector.as_ref()?;
        let mut cmd = hermetic(self.bins.projector.as_ref()?);
        cmd.args(args).args(["--gateway", &self.gateway_url(), "--database-url", db]);
        cmd.env("LEDGER_KEY", &self.admin_key).env("RUST_LOG", "info");
        Some(cmd)
    }

    fn spawn_projector(&mut self) {
        let log = self.dir.join("projector.log");
        if let Some(cmd) = self.projector_command(&[])
            && let Some((_, proc)) = self.projector.as_mut()
        {
            *proc = Some(Proc::spawn("projector", cmd, &log));
        }
    }

    /// Whether the run has a projector.
    pub fn has_projector(&self) -> bool {
        self.projector.is_some()
    }

    /// `kill -9` of the projector.
    pub fn kill_projector(&mut self) {
        if let Some((_, Some(mut p))) = self.projector.as_mut().map(|(db, p)| (db, p.take())) {
            p.kill9();
        }
    }

    /// `projector verify`: whether PostgreSQL equals the ledger (it waits for the projector to
    /// catch up), with what it said.
    pub fn verify_projection(&self) -> Option<(bool, String)> {
        let cmd = self.projector_command(&["verify"])?;
        let out = testkit::process::run_bounded(cmd, VERIFY_TIMEOUT, false);
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Some((out.status.success(), testkit::process::tail(&said, 30)))
    }

    fn index(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// `kill -9` of lognode `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(i) = self.index(id)
            && let Some(mut p) = self.nodes[i].proc.take()
        {
            p.kill9();
        }
    }

    /// SIGSTOP of lognode `id`.
    pub fn pause(&mut self, id: u64) {
        if let Some(i) = self.index(id)
            && let Some(p) = &self.nodes[i].proc
        {
            p.pause();
            self.nodes[i].paused = true;
        }
    }

    /// `kill -9` of the gateway.
    pub fn kill_gateway(&mut self) {
        if let Some(mut p) = self.gateway.take() {
            p.kill9();
        }
    }

    /// `host`'s outgoing link slowed to `rate_kbit`, queueing up to `latency_ms`.
    pub fn slow(&self, host: &str, rate_kbit: u32, latency_ms: u32) {
        self.net.slow(host, rate_kbit, latency_ms);
    }

    /// `from` drops each packet to `to` with probability `p` (host names).
    pub fn lossy(&self, from: &str, to: &str, p: f64) {
        self.net.lossy(from, to, p);
    }

    /// Delays the links between lognode `node` and each of `peers`, both ways: on each side, the
    /// other side's connections to lognode's port are redirected (iptables' `REDIRECT`) to a
    /// delaying proxy in front of it ([`crate::delay`]). The connections open now are reset, so
    /// that they are made again through the proxies. Healed by [`World::heal`].
    pub fn delay(&mut self, node: u64, peers: &[u64], delay: crate::delay::Delay, seed: u64) -> anyhow::Result<()> {
        // Each side: its namespace, its address, and the addresses whose connections it delays.
        let host = |id: u64| self.net.host(&self.host_of(id)).clone();
        let mut sides = vec![(host(node), peers.iter().map(|p| host(*p).ip).collect::<Vec<_>>())];
        sides.extend(peers.iter().map(|p| (host(*p), vec![host(node).ip])));
        for (i, (side, sources)) in sides.into_iter().enumerate() {
            let ns = side.ns;
            let listen = format!("{}:{DELAY_PORT}", side.ip).parse().context("proxy address")?;
            let to = format!("{}:{GRPC_PORT}", side.ip).parse().context("lognode address")?;
            self.proxies.push(crate::delay::Proxy::start(Some(&ns), listen, to, delay, seed ^ i as u64)?);
            for source in sources {
                let rule: Vec<String> = [
                    "PREROUTING",
                    "-s",
                    &format!("{source}/32"),
                    "-p",
                    "tcp",
                    "--dport",
                    &GRPC_PORT.to_string(),
                    "-j",
                    "REDIRECT",
                    "--to-ports",
                    &DELAY_PORT.to_string(),
                ]
                .map(str::to_owned)
                .to_vec();
                let mut cmd = std::process::Command::new("ip");
                cmd.args(["netns", "exec", &ns, "iptables", "-t", "nat", "-A"]).args(&rule);
                run(cmd, "iptables REDIRECT to the delaying proxy")?;
                self.redirects.push((ns.clone(), rule));
            }
        }
        // Every connection of `node` to or from a lognode port, reset: made again, redirected.
        let mut reset = std::process::Command::new("ip");
        let filter = format!("( sport = :{GRPC_PORT} or dport = :{GRPC_PORT} )");
        reset.args(["netns", "exec", &self.net.host(&self.host_of(node)).ns, "ss", "-K", "-tn", &filter]);
        run(reset, "ss -K (reset the connections to delay)")?;
        Ok(())
    }

    /// The connections the delaying proxies of [`World::delay`] accepted since it was called.
    pub fn delayed_connections(&self) -> u64 {
        self.proxies.iter().map(crate::delay::Proxy::accepted).sum()
    }

    /// Moves lognode `id`'s wall clock by `offset_ms` (its `--fault-clock-file`, which it reads
    /// every 100 ms); [`World::heal`] moves it back.
    pub fn jump_clock(&mut self, id: u64, offset_ms: i64) -> anyhow::Result<()> {
        let path = clock_file(&self.dir, &self.host_of(id), id);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_ms}\n")).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("rename to {}", path.display()))?;
        self.clocks.push(path);
        Ok(())
    }

    /// `from` sends a second copy of each packet for `to` with probability `p` (host names).
    pub fn duplicate(&self, from: &str, to: &str, p: f64) {
        self.net.duplicate(from, to, p);
    }

    /// `host` holds back a share `p` of its outgoing packets in a lane of `slow_kbit` kbit/s.
    pub fn reorder(&self, host: &str, p: f64, slow_kbit: u32) {
        self.net.reorder(host, p, slow_kbit);
    }

    /// The packets duplicated or held back on `host` since the last heal.
    pub fn mangled_packets(&self, host: &str) -> u64 {
        self.net.mangled_packets(host)
    }

    /// Fills [`DISK_NODE`]'s filesystem: a file of nearly all the space left, then another
    /// written until the filesystem refuses (ENOSPC). The bytes it took.
    pub fn fill_disk(&self) -> anyhow::Result<u64> {
        let mount = self.disk.as_ref().context("the disk nemesis is off")?;
        let avail = || -> anyhow::Result<u64> {
            let mut df = std::process::Command::new("df");
            df.args(["--output=avail", "-B1"]).arg(mount);
            let out = run(df, "df")?;
            out.lines().last().unwrap_or_default().trim().parse().context("df's answer")
        };
        let before = avail()?;
        let mut fill = std::process::Command::new("fallocate");
        fill.args(["-l", &before.saturating_sub(1 << 20).max(4096).to_string()]).arg(mount.join(FILLER));
        run(fill, "fallocate")?;
        // The rest, until the filesystem says no (dd then fails: that is the point).
        let mut dd = std::process::Command::new("dd");
        dd.args(["if=/dev/zero", "bs=4096", "status=none"]).arg(format!("of={}", mount.join(FILLER_REST).display()));
        let _ = testkit::process::run_bounded(dd, COMMAND_TIMEOUT, false);
        let after = avail()?;
        if after > 64 << 10 {
            bail!("{} bytes are still free after filling", after);
        }
        Ok(before - after)
    }

    /// `kill -9` of lognode `id`, then every file of its logs cut back to the bytes its last sync
    /// made durable (`--fault-synced-map`): what a power loss would leave. Restarted at the heal.
    /// The files cut and the bytes dropped.
    pub fn lose_unsynced(&mut self, id: u64) -> anyhow::Result<(u64, u64)> {
        self.kill(id);
        let host = self.host_of(id);
        let (mut files, mut dropped) = (0u64, 0u64);
        for log in ["log", "events"] {
            let map = self.dir.join(format!("synced-{host}-id{id}.{log}.map"));
            let Ok(text) = std::fs::read_to_string(&map) else { continue };
            for line in text.lines() {
                let Some((len, path)) = line.split_once('\t') else { continue };
                let len: u64 = len.parse().with_context(|| format!("{}: {line:?}", map.display()))?;
                let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) else { continue };
                let now = f.metadata()?.len();
                if now > len {
                    f.set_len(len).with_context(|| format!("truncate {path}"))?;
                    files += 1;
                    dropped += now - len;
                }
            }
            std::fs::remove_file(&map).with_context(|| format!("remove {}", map.display()))?;
        }
        Ok((files, dropped))
    }

    /// Whether lognode `id` runs.
    pub fn running(&mut self, id: u64) -> bool {
        self.index(id).is_some_and(|i| self.nodes[i].proc.as_mut().is_some_and(Proc::running))
    }

    /// The last `lines` lines of lognode `id`'s log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = self.index(id).and_then(|i| std::fs::read_to_string(&self.nodes[i].log).ok()).unwrap_or_default();
        testkit::process::tail(&text, lines)
    }

    /// Cuts `from`'s packets to `to` (host names).
    pub fn cut(&self, from: &str, to: &str) {
        self.net.cut(from, to);
    }

    /// Ends every fault: routes healed, paused nodes resumed, killed processes restarted on
    /// their data.
    pub fn heal(&mut self) {
        for (ns, rule) in std::mem::take(&mut self.redirects) {
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", &ns, "iptables", "-t", "nat", "-D"]).args(&rule);
            if let Err(e) = run(cmd, "iptables: remove a REDIRECT") {
                eprintln!("chaos: {e:#}");
            }
        }
        // Their connections close with them; the peers connect again, directly.
        self.proxies.clear();
        for path in std::mem::take(&mut self.clocks) {
            if let Err(e) = std::fs::remove_file(&path) {
                eprintln!("chaos: remove {}: {e}", path.display());
            }
        }
        self.net.heal();
        if let Some(mount) = &self.disk {
            let _ = std::fs::remove_file(mount.join(FILLER));
            let _ = std::fs::remove_file(mount.join(FILLER_REST));
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused
                && let Some(p) = &self.nodes[i].proc
            {
                p.resume();
                self.nodes[i].paused = false;
            }
            if !self.nodes[i].proc.as_mut().is_some_and(Proc::running) {
                self.spawn_node(i);
            }
        }
        if !self.gateway.as_mut().is_some_and(Proc::running) {
            self.spawn_gateway();
        }
        if self.projector.as_mut().is_some_and(|(_, p)| !p.as_mut().is_some_and(Proc::running)) {
            self.spawn_projector();
        }
    }

    /// The last lines of every process's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            out.push_str(&format!("--- {} ({})\n{}\n", n.host, n.log.display(), testkit::process::tail(&text, lines)));
        }
        let g = std::fs::read_to_string(self.dir.join("g1.log")).unwrap_or_default();
        out.push_str(&format!("--- g1\n{}\n", testkit::process::tail(&g, lines)));
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut p) = n.proc.take() {
                p.kill9();
            }
        }
        if let Some(mut g) = self.gateway.take() {
            g.kill9();
        }
        self.kill_projector();
        if let Some(mount) = &self.disk {
            let mut cmd = std::process::Command::new("umount");
            cmd.arg(mount);
            if let Err(e) = run(cmd, "umount") {
                eprintln!("chaos: {e:#} (`chaos cleanup` unmounts it)");
            }
        }
    }
}

/// Unmounts every disk-nemesis filesystem (source [`DISK_SOURCE`]) a killed run left; their
/// mount points.
pub fn unmount_leftovers() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        if f.next() == Some(DISK_SOURCE)
            && let Some(point) = f.next()
        {
            let mut cmd = std::process::Command::new("umount");
            cmd.arg(point);
            if run(cmd, "umount").is_ok() {
                out.push(point.to_owned());
            }
        }
    }
    out
}

/// Runs `cmd` (bounded by [`COMMAND_TIMEOUT`]); its stdout, or an error naming `what` with its
/// stderr.
fn run(cmd: std::process::Command, what: &str) -> anyhow::Result<String> {
    let out = testkit::process::run_bounded(cmd, COMMAND_TIMEOUT, false);
    if !out.status.success() {
        bail!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether this process runs as root (its effective user id, from `/proc/self/status`).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2));
    euid == Some("0")
}

/// Lognode `id`'s clock file (`--fault-clock-file`): absent while its clock is true.
fn clock_file(dir: &Path, host: &str, id: u64) -> PathBuf {
    dir.join(format!("clock-{host}-id{id}"))
}

/// The host of an initial lognode `id`.
fn host(id: u64) -> String {
    format!("n{id}")
}

/// Writes `secret` to a new file readable only by its owner.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    writeln!(f, "{secret}").with_context(|| format!("write {}", path.display()))
}
