//! Real processes for the tests that stop, freeze or kill them: the `switchboard` binary with
//! its own environment and log file, and a private `redis-server` on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `sig` (`-STOP`, `-CONT`, `-KILL`, `-TERM`…) to a process.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// A `redis-server` of the test's own, which it may stop and restart.
pub struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    append_only: bool,
    child: Child,
}

impl PrivateRedis {
    /// With `append_only`, every write is fsynced to an append-only file, so a restart keeps
    /// the data; without, a restart comes back empty.
    pub fn start(append_only: bool) -> PrivateRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::spawn(port, dir.path(), append_only);
        let r = PrivateRedis {
            port,
            dir,
            append_only,
            child,
        };
        r.wait_up();
        r
    }

    fn spawn(port: u16, dir: &Path, append_only: bool) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""]);
        if append_only {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs")
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn start_again(&mut self) {
        self.child = Self::spawn(self.port, self.dir.path(), self.append_only);
        self.wait_up();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How to start a server process that listens on a known port (so it can be restarted on the
/// same address) and is ready when `/readyz` says so: its data directory and `SWITCHBOARD_*`
/// settings. Built on [`super::binary::command`], so the test process's own configuration is not
/// passed on.
pub struct ServerCommand {
    data_dir: PathBuf,
    envs: Vec<(String, String)>,
    port: u16,
}

impl ServerCommand {
    pub fn new(data_dir: &Path) -> ServerCommand {
        ServerCommand {
            data_dir: data_dir.to_path_buf(),
            envs: vec![
                (
                    "SWITCHBOARD_AUTH__ADMIN_PASSWORD".into(),
                    super::ADMIN_PASSWORD.into(),
                ),
                ("SWITCHBOARD_LOG__LEVEL".into(), "warn".into()),
            ],
            port: free_port(),
        }
    }

    /// Sets an environment variable of the server (a later value for the same name wins).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> ServerCommand {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_string(), value.into()));
        self
    }

    /// Listens on `port` instead of a fresh one (a restart on the same address).
    pub fn port(mut self, port: u16) -> ServerCommand {
        self.port = port;
        self
    }

    /// A node of a cluster on `redis`.
    pub fn cluster(self, redis: &str, prefix: &str, node_id: &str) -> ServerCommand {
        self.env("SWITCHBOARD_CLUSTER__REDIS_URL", redis)
            .env("SWITCHBOARD_CLUSTER__PREFIX", prefix)
            .env("SWITCHBOARD_CLUSTER__NODE_ID", node_id)
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start(self) -> ServerProcess {
        let p = self.spawn();
        p.wait_ready(Duration::from_secs(60)).await;
        p
    }

    /// Starts the process without waiting for it.
    pub fn spawn(self) -> ServerProcess {
        std::fs::create_dir_all(&self.data_dir).unwrap();
        let log = self
            .data_dir
            .join(format!("server-{}-{}.log", self.port, unique_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = super::binary::command(&self.data_dir);
        cmd.env(
            "SWITCHBOARD_SERVER__ADDRESS",
            format!("127.0.0.1:{}", self.port),
        )
        .env("SWITCHBOARD_SERVER__DATA_DIR", &self.data_dir)
        .envs(self.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
        let child = cmd.spawn().expect("the server binary starts");
        ServerProcess {
            child,
            port: self.port,
            base: format!("http://127.0.0.1:{}", self.port),
            ws_url: format!("ws://127.0.0.1:{}/socket", self.port),
            log,
        }
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A running server process; killed when dropped.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// `ws://127.0.0.1:<port>/socket`.
    pub ws_url: String,
    log: PathBuf,
}

impl ServerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ready = reqwest::get(format!("{}/readyz", self.base))
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server on port {} never became ready; its log:\n{}",
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful shutdown), SIGKILL after `grace`; answers whether it exited by itself.
    pub async fn terminate(&mut self, grace: Duration) -> bool {
        self.signal("-TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
