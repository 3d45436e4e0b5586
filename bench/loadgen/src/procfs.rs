//! Resident memory and CPU time of a process, read from /proc.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub rss_bytes: u64,
    pub cpu: Duration,
}

/// `pid` 0 means "no process to watch": every sample is zero.
pub fn sample(pid: u32) -> Sample {
    let path = |f: &str| {
        if pid == 0 {
            None
        } else {
            Some(format!("/proc/{pid}/{f}"))
        }
    };
    let rss_bytes = path("status")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let cpu = path("stat")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map_or(Duration::ZERO, |s| cpu_from_stat(&s));
    Sample { rss_bytes, cpu }
}

pub fn sample_self() -> Sample {
    sample(std::process::id())
}

/// utime + stime: fields 14 and 15, counted after the `(comm)` field, which may contain spaces.
fn cpu_from_stat(stat: &str) -> Duration {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_comm() {
        let stat = "42 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0";
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(
            cpu_from_stat(stat),
            Duration::from_micros(400 * 1_000_000 / hz)
        );
    }
}
