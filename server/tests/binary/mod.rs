//! Running the real `switchboard` binary in a folder of its own: one-shot commands, and the
//! server with its log redirected to a file.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// The binary, run in `dir`, with none of this process's configuration: no `SWITCHBOARD_*`
/// variables (they would override the test's), no `RUST_LOG`.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("SWITCHBOARD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with both streams unless the command succeeded.
    pub fn ok(self) -> Output {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
    /// Panics with both streams if the command succeeded.
    pub fn failed(self) -> Output {
        assert!(
            !self.status.success(),
            "command should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a command to completion, writing `stdin` to it.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = command(dir);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the binary starts");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every entry under `dir`, recursively, relative to it (sorted).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A running `switchboard serve` whose stderr goes to `<dir>/server.log`.
pub struct Server {
    child: Child,
    pub log: PathBuf,
    pub addr: SocketAddr,
}

/// Starts the server and waits (at most 20 s) for the log line giving its address.
pub fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
    let log = dir.join("server.log");
    let mut child = spawn_server(dir, env, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = listening_address(&text) {
            return Server { child, log, addr };
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited ({status}) before listening; log:\n{text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server not listening within 20s; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the server and waits (at most `within`) for it to exit; returns the status, the
/// time it took and the log.
pub fn start_expecting_exit(
    dir: &Path,
    env: &[(&str, &str)],
    within: Duration,
) -> (ExitStatus, Duration, String) {
    let log = dir.join("server.log");
    let started = Instant::now();
    let mut child = spawn_server(dir, env, &log);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return (status, started.elapsed(), text);
        }
        if started.elapsed() > within {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("server still running after {within:?}; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spawn_server(dir: &Path, env: &[(&str, &str)], log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    command(dir)
        .arg("serve")
        .env("SWITCHBOARD_SERVER__ADDRESS", "127.0.0.1:0")
        .env("SWITCHBOARD_SERVER__SHUTDOWN_TIMEOUT", "2s")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("the binary starts")
}

/// The address of the `listening on <addr>` line, text or JSON.
pub fn listening_address(log: &str) -> Option<SocketAddr> {
    let at = log.find("listening on ")? + "listening on ".len();
    let rest = &log[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then waits (at most 20 s); returns the exit status and the whole log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not stop within 20s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (
            status,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
}

impl Server {
    /// SIGKILL, as a crash would, and waits for the process to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Logs in over HTTP; returns the status.
pub async fn login_status(base: &str, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"username": user, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
