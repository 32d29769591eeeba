//! A throw-away PostgreSQL cluster that accepts TLS connections only, for the tests that
//! prove libpq is built with OpenSSL (`sslmode=verify-full`).
//!
//! [`TlsPostgres::start`] makes a CA and a server certificate for `127.0.0.1`/`localhost`
//! (and a second, unrelated CA of the same name: the wrong one), runs `initdb` on a free
//! port with `ssl = on` and `hostssl`-only authentication (a password, SCRAM), and starts
//! the server with `pg_ctl`; dropping it stops the server (`-m immediate`) and removes
//! every file. `initdb` and `postgres` refuse to run as root: as root they run as the
//! `postgres` system user, which then owns the temporary directory. Without PostgreSQL's
//! server binaries (`/usr/lib/postgresql/*/bin`, or on `PATH`), `start` fails the test when
//! `GATEHOUSE_REQUIRE_POSTGRES=1`, and otherwise says loudly that it is skipped and returns
//! `None` (the tests are also marked `#[needs_postgres]`, so they are reported ignored when
//! no PostgreSQL is configured at all).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Name, X509};

/// The cluster's superuser, who logs in with [`TlsPostgres::password`].
pub const USER: &str = "gatehouse";

/// A running TLS-only PostgreSQL server in a temporary directory; stopped when dropped.
#[derive(Debug)]
pub struct TlsPostgres {
    bin: PathBuf,
    /// As whom `initdb`, `pg_ctl` and `postgres` run (`None`: as this process's user).
    run_as: Option<&'static str>,
    data: PathBuf,
    port: u16,
    password: String,
    tls: bool,
    ca: PathBuf,
    wrong_ca: PathBuf,
    started: bool,
    dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// Starts a cluster, or returns `None` after printing `*** SKIPPED …` when this machine
    /// has no PostgreSQL server binaries.
    ///
    /// # Panics
    /// When the cluster cannot be set up (a failed test, with `initdb`'s or the server's
    /// own words), or there are no server binaries and `GATEHOUSE_REQUIRE_POSTGRES=1`.
    #[must_use]
    pub fn start() -> Option<Self> {
        Self::start_with(true)
    }

    /// The same kind of cluster with `ssl = off` and plain `host` lines: a server that
    /// offers no TLS at all (for libpq's fallback from the default `sslmode=prefer`).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    #[must_use]
    pub fn start_without_tls() -> Option<Self> {
        Self::start_with(false)
    }

    fn start_with(tls: bool) -> Option<Self> {
        let Some(bin) = server_binaries() else {
            assert!(
                !super::postgres_required(),
                "{} is set but this machine has no PostgreSQL server binaries \
                 (initdb in /usr/lib/postgresql/*/bin or on PATH) for a TLS-only cluster",
                super::REQUIRE_POSTGRES_VAR
            );
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: TLS-only PostgreSQL test (no initdb in /usr/lib/postgresql/*/bin \
                 or on PATH) ***\n"
            );
            return None;
        };
        let run_as = is_root().then_some("postgres");
        // As root, in /tmp: a TMPDIR under /root would be out of the postgres user's reach.
        let parent = match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        };
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-tls-pg-")
            .tempdir_in(parent)
            .expect("a temporary directory");
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).expect("randomness");
        let password = format!("tls-{}", hex(&random));
        let mut cluster = Self {
            data: dir.path().join("data"),
            port: free_port(),
            ca: dir.path().join("ca.crt"),
            wrong_ca: dir.path().join("wrong-ca.crt"),
            bin,
            run_as,
            password,
            tls,
            started: false,
            dir,
        };
        cluster.write_certificates();
        cluster.init();
        cluster.configure();
        cluster.started = true; // from here on, Drop stops whatever pg_ctl started
        cluster.pg_ctl(&["start", "-w", "-t", "60", "-l", &cluster.file("server.log")]);
        Some(cluster)
    }

    /// `postgres://gatehouse:PASSWORD@127.0.0.1:PORT/postgres?sslmode=SSLMODE`, with
    /// `sslrootcert=ROOT` when given.
    #[must_use]
    pub fn url(&self, sslmode: &str, root: Option<&Path>) -> String {
        let mut url = format!(
            "postgres://{USER}:{}@127.0.0.1:{}/postgres?sslmode={sslmode}",
            self.password, self.port
        );
        if let Some(root) = root {
            url.push_str(&format!("&sslrootcert={}", root.display()));
        }
        url
    }

    /// The CA that signed the server's certificate (PEM).
    #[must_use]
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// A CA of the same name that signed nothing this server presents (PEM).
    #[must_use]
    pub fn wrong_ca(&self) -> &Path {
        &self.wrong_ca
    }

    /// The superuser's password (to check that no message shows it).
    #[must_use]
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The port the server listens on (127.0.0.1 only).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far (for a failed assertion's message).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The CA, the server's certificate and key, and the wrong CA, as files the server's
    /// user owns (PostgreSQL wants its key 0600 and its own).
    fn write_certificates(&self) {
        let (ca_key, ca_cert) = certificate_authority();
        let (server_key, server_cert) = server_certificate(&ca_key, &ca_cert);
        let (_, wrong_ca) = certificate_authority();
        let files: [(&str, Vec<u8>, u32); 4] = [
            ("ca.crt", ca_cert.to_pem().expect("PEM"), 0o644),
            ("wrong-ca.crt", wrong_ca.to_pem().expect("PEM"), 0o644),
            ("server.crt", server_cert.to_pem().expect("PEM"), 0o644),
            (
                "server.key",
                server_key.private_key_to_pem_pkcs8().expect("PEM"),
                0o600,
            ),
        ];
        for (name, pem, mode) in files {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).expect("writing a certificate");
            set_mode(&path, mode);
        }
        std::fs::write(self.dir.path().join("password"), &self.password).expect("password file");
        set_mode(&self.dir.path().join("password"), 0o600);
        if let Some(user) = self.run_as {
            let (uid, gid) = ids_of(user);
            for entry in std::fs::read_dir(self.dir.path()).expect("the temporary directory") {
                let path = entry.expect("a directory entry").path();
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
            std::os::unix::fs::chown(self.dir.path(), Some(uid), Some(gid)).expect("chown");
        }
    }

    fn init(&self) {
        let data = self.data.display().to_string();
        let pwfile = self.file("password");
        let output = self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                USER,
                "--pwfile",
                &pwfile,
                "--auth",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// TLS on, listening on 127.0.0.1 only, and `hostssl` the only way in over TCP (or TLS
    /// off and plain `host`).
    fn configure(&self) {
        let dir = self.dir.path().display().to_string();
        let settings = format!(
            "\n# gatehouse TLS test\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{dir}'\n\
             ssl = {ssl}\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             fsync = off\n\
             max_connections = 40\n",
            port = self.port,
            ssl = if self.tls { "on" } else { "off" },
        );
        let conf = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .expect("postgresql.conf");
        file.write_all(settings.as_bytes())
            .expect("writing postgresql.conf");
        // With TLS, no `host` line: a connection without TLS finds no entry and is refused.
        let kind = if self.tls { "hostssl" } else { "host" };
        std::fs::write(
            self.data.join("pg_hba.conf"),
            format!("{kind} all all 127.0.0.1/32 scram-sha-256\n"),
        )
        .expect("writing pg_hba.conf");
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        let output = self.run("pg_ctl", &all);
        assert!(
            output.status.success(),
            "pg_ctl {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// Runs one of the server binaries, as the server's user.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        run_server_binary(&self.bin, self.run_as, self.dir.path(), program, args)
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        if self.started {
            let data = self.data.display().to_string();
            let _ = self.run("pg_ctl", &["-D", &data, "stop", "-m", "immediate", "-w"]);
        }
    }
}

/// Runs `program` of the server binaries in `bin` with `args` in `dir`, as `run_as` when
/// given (initdb and postgres refuse root), away from the caller's `PGDATA` and `PGPORT`.
pub(super) fn run_server_binary(
    bin: &Path,
    run_as: Option<&str>,
    dir: &Path,
    program: &str,
    args: &[&str],
) -> Output {
    let program = bin.join(program);
    let mut command = match run_as {
        Some(user) => {
            let mut command = Command::new("runuser");
            command.args(["-u", user, "--"]).arg(&program);
            command
        }
        None => Command::new(&program),
    };
    command
        .args(args)
        // Away from the server's own environment (a developer's PGDATA, say).
        .env_remove("PGDATA")
        .env_remove("PGPORT")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the newest
/// `/usr/lib/postgresql/VERSION/bin` (Debian's layout), else `initdb`'s directory on PATH.
pub(super) fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| bin.join(b).is_file())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find(|dir| {
            ["initdb", "pg_ctl", "postgres"]
                .iter()
                .all(|b| dir.join(b).is_file())
        })
    })
}

pub(super) fn is_root() -> bool {
    command_stdout("id", &["-u"]) == "0"
}

/// A user's uid and gid.
pub(super) fn ids_of(user: &str) -> (u32, u32) {
    let parse = |flag: &str| {
        command_stdout("id", &[flag, user])
            .parse::<u32>()
            .unwrap_or_else(|_| {
                panic!(
                    "running as root, the cluster tests need the `{user}` system user to run initdb \
                     and postgres (they refuse root)"
                )
            })
    };
    (parse("-u"), parse("-g"))
}

fn command_stdout(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A port nobody listens on (bound, then released for the server to take).
pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
    PKey::from_ec_key(EcKey::generate(&group).expect("an EC key")).expect("a key")
}

fn serial() -> openssl::asn1::Asn1Integer {
    let mut serial = BigNum::new().expect("a bignum");
    serial
        .rand(64, MsbOption::MAYBE_ZERO, false)
        .expect("a serial");
    serial.to_asn1_integer().expect("a serial")
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509Name::builder().expect("a name");
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)
        .expect("a common name");
    name.build()
}

/// A self-signed CA, valid for a day.
fn certificate_authority() -> (PKey<Private>, X509) {
    let key = new_key();
    let subject = name("Gatehouse test CA");
    let mut cert = X509::builder().expect("a certificate");
    cert.set_version(2).expect("v3");
    cert.set_serial_number(&serial()).expect("serial");
    cert.set_subject_name(&subject).expect("subject");
    cert.set_issuer_name(&subject).expect("issuer");
    cert.set_pubkey(&key).expect("public key");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    cert.set_not_after(&Asn1Time::days_from_now(1).expect("tomorrow"))
        .expect("not after");
    cert.append_extension(
        BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .expect("basic constraints"),
    )
    .expect("extension");
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .expect("key usage"),
    )
    .expect("extension");
    let ski = SubjectKeyIdentifier::new()
        .build(&cert.x509v3_context(None, None))
        .expect("subject key id");
    cert.append_extension(ski).expect("extension");
    cert.sign(&key, MessageDigest::sha256()).expect("signing");
    (key, cert.build())
}

/// The server's certificate for 127.0.0.1 and localhost, signed by the CA.
fn server_certificate(ca_key: &PKey<Private>, ca: &X509) -> (PKey<Private>, X509) {
    let key = new_key();
    let mut cert = X509::builder().expect("a certificate");
    cert.set_version(2).expect("v3");
    cert.set_serial_number(&serial()).expect("serial");
    cert.set_subject_name(&name("localhost")).expect("subject");
    cert.set_issuer_name(ca.subject_name()).expect("issuer");
    cert.set_pubkey(&key).expect("public key");
    cert.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    cert.set_not_after(&Asn1Time::days_from_now(1).expect("tomorrow"))
        .expect("not after");
    cert.append_extension(BasicConstraints::new().build().expect("basic constraints"))
        .expect("extension");
    cert.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_agreement()
            .build()
            .expect("key usage"),
    )
    .expect("extension");
    cert.append_extension(
        ExtendedKeyUsage::new()
            .server_auth()
            .build()
            .expect("extended key usage"),
    )
    .expect("extension");
    let san = SubjectAlternativeName::new()
        .dns("localhost")
        .ip("127.0.0.1")
        .build(&cert.x509v3_context(Some(ca), None))
        .expect("subject alternative names");
    cert.append_extension(san).expect("extension");
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&cert.x509v3_context(Some(ca), None))
        .expect("authority key id");
    cert.append_extension(aki).expect("extension");
    cert.sign(ca_key, MessageDigest::sha256()).expect("signing");
    (key, cert.build())
}
