//! Sockets for many connections from one process: the open-files limit raised to its hard limit,
//! and client sockets spread over several loopback source addresses so that more connections than
//! one address's ephemeral ports (32768–60999 here) can be open, or lingering in TIME_WAIT, at once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpSocket, TcpStream};

/// Raises RLIMIT_NOFILE's soft limit to the hard limit and returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Round-robin over 127.0.0.2, 127.0.0.3, … (none when the target is not on loopback).
pub struct Sources {
    addrs: Vec<Ipv4Addr>,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(target: SocketAddr, count: usize) -> Self {
        let addrs = if target.ip().is_loopback() && target.is_ipv4() {
            (0..count)
                .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    pub async fn connect(&self, target: SocketAddr) -> std::io::Result<TcpStream> {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !self.addrs.is_empty() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
            bind_address_no_port(&socket);
            socket.bind(SocketAddr::new(IpAddr::V4(self.addrs[i]), 0))?;
        }
        let stream = socket.connect(target).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// Without IP_BIND_ADDRESS_NO_PORT, bind() picks the port before the destination is known, so the
/// whole 4-tuple space collapses to one port per source address.
fn bind_address_no_port(socket: &TcpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a plain setsockopt on a socket we own, with a correctly sized int option.
    unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}
