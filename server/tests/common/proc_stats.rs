//! What the kernel says about a process: its CPU time, resident memory and open descriptors,
//! read from `/proc`, and its open-files limit, set with `prlimit`.

use std::time::Duration;

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a constant of the running system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / per_second)
}

/// The share of one core the process used over `window` (1.0 = a core busy all the time).
pub async fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    let started = std::time::Instant::now();
    tokio::time::sleep(window).await;
    let used = cpu_time(pid).saturating_sub(before);
    used.as_secs_f64() / started.elapsed().as_secs_f64()
}

/// Resident memory (`VmRSS`) in bytes.
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/<pid>/status")
}

/// How many descriptors the process holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Sets the process's open-files limit (soft and hard) with `prlimit` from util-linux.
pub fn set_open_files_limit(pid: u32, limit: usize) {
    let ok = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux) runs")
        .success();
    assert!(ok, "prlimit --nofile={limit} on {pid}");
}
