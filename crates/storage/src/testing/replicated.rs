//! A PostgreSQL primary with a synchronous standby, for the failover tests (issue 15,
//! "Database faults and failover").
//!
//! [`ReplicatedPostgres::start`] runs `initdb` for the primary (trust authentication on
//! 127.0.0.1, `wal_level = replica`, `synchronous_standby_names = 'standby'`), starts it,
//! copies it with `pg_basebackup -R` into the standby (which streams from the primary as
//! `standby`), starts that and waits until the primary reports it synchronous: from then on
//! a COMMIT on the primary returns only once the standby has its WAL. [`url`] is the libpq
//! multi-host URL Gatehouse is given (`target_session_attrs=read-write`). The faults are
//! staged with `pg_ctl` and signals; dropping the value stops both servers (`-m
//! immediate`) and removes every file. Like [`super::tls`], as root the servers run as the
//! `postgres` system user, and without server binaries `start` fails under
//! `GATEHOUSE_REQUIRE_POSTGRES=1` and is otherwise skipped loudly.
//!
//! [`url`]: ReplicatedPostgres::url

use std::io::Write;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};

use super::tls::{ids_of, is_root, run_server_binary, server_binaries};

/// The superuser both servers know (trusted on 127.0.0.1).
pub const USER: &str = "postgres";

/// One of the two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// The primary at the start (listed first in [`ReplicatedPostgres::url`]).
    First,
    /// The synchronous standby at the start (listed second).
    Second,
}

/// A primary and its synchronous standby in a temporary directory; stopped when dropped.
#[derive(Debug)]
pub struct ReplicatedPostgres {
    bin: PathBuf,
    run_as: Option<&'static str>,
    ports: [u16; 2],
    started: [bool; 2],
    /// The processes stopped by [`ReplicatedPostgres::freeze`], per node.
    frozen: [Vec<u32>; 2],
    dir: tempfile::TempDir,
}

impl ReplicatedPostgres {
    /// Starts both servers, or returns `None` after printing `*** SKIPPED …` when this
    /// machine has no PostgreSQL server binaries.
    ///
    /// # Panics
    /// When a server cannot be set up (with its own words), or there are no server
    /// binaries and `GATEHOUSE_REQUIRE_POSTGRES=1`.
    #[must_use]
    pub fn start() -> Option<Self> {
        let Some(bin) = server_binaries() else {
            assert!(
                !super::postgres_required(),
                "{} is set but this machine has no PostgreSQL server binaries \
                 (initdb in /usr/lib/postgresql/*/bin or on PATH) for a replicated cluster",
                super::REQUIRE_POSTGRES_VAR
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: replicated PostgreSQL test (no initdb in \
                 /usr/lib/postgresql/*/bin or on PATH) ***\n"
            );
            return None;
        };
        let run_as = is_root().then_some("postgres");
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-replicated-pg-")
            .tempdir_in(parent)
            .expect("a temporary directory");
        if let Some(user) = run_as {
            let (uid, gid) = ids_of(user);
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let mut cluster = Self {
            bin,
            run_as,
            ports: two_free_ports(),
            started: [false, false],
            frozen: [Vec::new(), Vec::new()],
            dir,
        };
        cluster.init_primary();
        cluster.start_node(Node::First);
        cluster.copy_to_standby();
        cluster.start_node(Node::Second);
        cluster.wait_for_sync_standby();
        Some(cluster)
    }

    /// `postgres://postgres@127.0.0.1:FIRST,127.0.0.1:SECOND/postgres?target_session_attrs=read-write`.
    #[must_use]
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.ports[0], self.ports[1]
        )
    }

    /// Both servers without `target_session_attrs`: libpq takes the first that answers,
    /// a standby included (as a URL naming any server of a cluster does).
    #[must_use]
    pub fn url_to_any_server(&self) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{},127.0.0.1:{}/postgres",
            self.ports[0], self.ports[1]
        )
    }

    /// One server's own URL.
    #[must_use]
    pub fn node_url(&self, node: Node) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/postgres",
            self.ports[index(node)]
        )
    }

    /// Kills a server without a shutdown checkpoint (`pg_ctl stop -m immediate`): its
    /// connections close at once, as in a crash.
    pub fn crash(&mut self, node: Node) {
        self.pg_ctl(node, &["stop", "-m", "immediate", "-w"]);
        self.started[index(node)] = false;
    }

    /// Freezes a server: `SIGSTOP` to its postmaster and every process it started. Its
    /// sockets stay open and its kernel goes on acknowledging packets, so a client waits
    /// for answers that do not come (what a hung host, or a VM paused, looks like).
    ///
    /// # Panics
    /// When the server's processes cannot be found or stopped.
    pub fn freeze(&mut self, node: Node) {
        let pid_file = self.data(node).join("postmaster.pid");
        let postmaster: u32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no postmaster pid in {}", pid_file.display()));
        // Children of a stopped postmaster cannot be forked any more: stop it first.
        let mut pids = vec![postmaster];
        assert!(signal("STOP", &pids), "kill -STOP {postmaster}");
        let children = children_of(postmaster);
        assert!(signal("STOP", &children), "kill -STOP {children:?}");
        pids.extend(children);
        self.frozen[index(node)] = pids;
    }

    /// Lets a frozen server run again (`SIGCONT`).
    pub fn thaw(&mut self, node: Node) {
        let pids = std::mem::take(&mut self.frozen[index(node)]);
        // Processes that ended meanwhile (a crash staged after the freeze) are no error.
        let _ = signal("CONT", &pids);
    }

    /// Promotes the standby to primary (`pg_ctl promote -w`).
    pub fn promote(&self, node: Node) {
        self.pg_ctl(node, &["promote", "-w", "-t", "60"]);
    }

    /// Whether `node` answers and is not in recovery.
    #[must_use]
    pub fn is_primary(&self, node: Node) -> bool {
        #[derive(QueryableByName)]
        struct Recovery {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            in_recovery: bool,
        }
        PgConnection::establish(&self.node_url(node))
            .ok()
            .and_then(|mut conn| {
                diesel::sql_query("SELECT pg_is_in_recovery() AS in_recovery")
                    .get_result::<Recovery>(&mut conn)
                    .ok()
            })
            .is_some_and(|r| !r.in_recovery)
    }

    /// The emails in `node`'s `users` table.
    ///
    /// # Panics
    /// When the server cannot be read.
    #[must_use]
    pub fn emails_on(&self, node: Node) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            email: String,
        }
        let mut conn = PgConnection::establish(&self.node_url(node))
            .unwrap_or_else(|e| panic!("connecting to {node:?}: {e}"));
        diesel::sql_query("SELECT email FROM users ORDER BY id")
            .load::<Row>(&mut conn)
            .unwrap_or_else(|e| panic!("reading the users of {node:?}: {e}"))
            .into_iter()
            .map(|row| row.email)
            .collect()
    }

    /// Both servers' logs, for a failed test's message.
    #[must_use]
    pub fn logs(&self) -> String {
        [Node::First, Node::Second]
            .iter()
            .map(|&node| {
                let log = std::fs::read_to_string(self.log_file(node)).unwrap_or_default();
                format!("--- {node:?} ---\n{log}")
            })
            .collect()
    }

    fn data(&self, node: Node) -> PathBuf {
        self.dir.path().join(match node {
            Node::First => "first",
            Node::Second => "second",
        })
    }

    fn log_file(&self, node: Node) -> String {
        format!("{}.log", self.data(node).display())
    }

    fn init_primary(&self) {
        let data = self.data(Node::First).display().to_string();
        let output = self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert_success("initdb", &output);
        self.append_settings(
            Node::First,
            &format!(
                "listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{dir}'\n\
                 fsync = off\n\
                 max_connections = 60\n\
                 wal_level = replica\n\
                 max_wal_senders = 5\n\
                 hot_standby = on\n\
                 synchronous_standby_names = 'standby'\n",
                dir = self.dir.path().display()
            ),
        );
        std::fs::write(
            self.data(Node::First).join("pg_hba.conf"),
            "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
        )
        .expect("writing pg_hba.conf");
    }

    /// `port = …` last in `node`'s postgresql.conf (the standby's is the primary's copy).
    fn append_settings(&self, node: Node, settings: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data(node).join("postgresql.conf"))
            .expect("postgresql.conf");
        file.write_all(
            format!(
                "\n# gatehouse failover test\n{settings}port = {}\n",
                self.ports[index(node)]
            )
            .as_bytes(),
        )
        .expect("writing postgresql.conf");
    }

    fn copy_to_standby(&self) {
        let data = self.data(Node::Second).display().to_string();
        let primary = format!(
            "host=127.0.0.1 port={} user={USER} application_name=standby",
            self.ports[0]
        );
        let output = self.run(
            "pg_basebackup",
            &[
                "-d",
                &primary,
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        assert_success("pg_basebackup", &output);
        // -R wrote standby.signal and a primary_conninfo; this one (later in the file)
        // names the standby as synchronous_standby_names expects.
        let mut auto = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data(Node::Second).join("postgresql.auto.conf"))
            .expect("postgresql.auto.conf");
        auto.write_all(format!("primary_conninfo = '{primary}'\n").as_bytes())
            .expect("writing postgresql.auto.conf");
        // Promoted, it has no standby of its own: with the primary's setting copied, every
        // COMMIT would wait for one forever (the "standby gone" case: each would end at the
        // time limit with 503, and no write would succeed after a promotion).
        self.append_settings(Node::Second, "synchronous_standby_names = ''\n");
    }

    fn start_node(&mut self, node: Node) {
        self.started[index(node)] = true; // from here on, Drop stops whatever pg_ctl started
        let log = self.log_file(node);
        self.pg_ctl(node, &["start", "-w", "-t", "60", "-l", &log]);
    }

    fn wait_for_sync_standby(&self) {
        #[derive(QueryableByName)]
        struct Synchronous {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let synchronous = PgConnection::establish(&self.node_url(Node::First))
                .ok()
                .and_then(|mut conn| {
                    diesel::sql_query(
                        "SELECT count(*) AS n FROM pg_stat_replication \
                         WHERE application_name = 'standby' AND sync_state = 'sync'",
                    )
                    .get_result::<Synchronous>(&mut conn)
                    .ok()
                })
                .is_some_and(|s| s.n == 1);
            if synchronous {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not become synchronous within 60 s:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn pg_ctl(&self, node: Node, args: &[&str]) {
        let data = self.data(node).display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        let output = self.run("pg_ctl", &all);
        assert!(
            output.status.success(),
            "pg_ctl {args:?} on {node:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.logs()
        );
    }

    /// Runs one of the server binaries, as the servers' user.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        run_server_binary(&self.bin, self.run_as, self.dir.path(), program, args)
    }
}

impl Drop for ReplicatedPostgres {
    fn drop(&mut self) {
        for node in [Node::First, Node::Second] {
            // A stopped postmaster would take the stop signal only once running again.
            self.thaw(node);
            if self.started[index(node)] {
                let data = self.data(node).display().to_string();
                let _ = self.run("pg_ctl", &["-D", &data, "stop", "-m", "immediate", "-w"]);
            }
        }
    }
}

/// The processes whose parent is `parent` (from `/proc`).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // After the command's ")": state, then the parent's pid.
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Two distinct free ports of 127.0.0.1. Both listeners are held at once: two ports asked
/// for one after the other may be the same one (CI saw the standby refused for the
/// primary's port).
fn two_free_ports() -> [u16; 2] {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (first, second) = (bind(), bind());
    let port =
        |listener: &std::net::TcpListener| listener.local_addr().expect("a bound address").port();
    [port(&first), port(&second)]
}

/// Sends `SIG{name}` to every process in `pids`; whether `kill` reported success.
fn signal(name: &str, pids: &[u32]) -> bool {
    if pids.is_empty() {
        return true;
    }
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .is_ok_and(|status| status.success())
}

fn index(node: Node) -> usize {
    match node {
        Node::First => 0,
        Node::Second => 1,
    }
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
