//! The process's open-file limit (`RLIMIT_NOFILE`). Every client
//! connection holds a file descriptor, so this limit caps the connections
//! and sessions a dispatcher can hold. Many systems start processes with a
//! soft limit of 1,024 and a much higher hard limit; the dispatcher raises
//! its soft limit to the hard one at start (an unprivileged process may),
//! and the connection limits are worked out from what it then has.

use std::io;

/// File descriptors kept for everything but client connections: the
/// journal (SQLite's file, WAL and shared memory), Redis and its
/// connections, the listening sockets, the metrics endpoint and its
/// scrapes, OTLP export, the runtime's own (epoll, eventfd), stdio.
pub const RESERVED_FOR_THE_PROCESS: u64 = 128;

/// The soft and hard open-file limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFileLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// The limits now.
pub fn current() -> OpenFileLimit {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    OpenFileLimit { soft: limit.current, hard: limit.maximum }
}

/// Raises the soft limit to the hard one (to the kernel's per-process
/// maximum, `fs.nr_open`, when the hard limit is unlimited); returns the
/// limits before and after.
pub fn raise_soft_to_hard() -> io::Result<(OpenFileLimit, OpenFileLimit)> {
    let before = current();
    let target = match before.hard {
        Some(hard) => Some(hard),
        // RLIM_INFINITY is refused for RLIMIT_NOFILE; nr_open is the most allowed.
        None => Some(kernel_maximum()),
    };
    if target == before.soft || before.soft.is_none() {
        return Ok((before, before));
    }
    let wanted = rustix::process::Rlimit { current: target, maximum: before.hard };
    rustix::process::setrlimit(rustix::process::Resource::Nofile, wanted).map_err(io::Error::from)?;
    Ok((before, current()))
}

/// `fs.nr_open`: the most file descriptors one process may have (Linux's
/// default, 1,048,576, when it cannot be read).
fn kernel_maximum() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|text| text.trim().parse().ok()).unwrap_or(1_048_576)
}

/// How many client connections fit in `limit`, after what the process keeps
/// for itself and `refusing` connections being refused at the same time.
pub fn connections_allowed(limit: OpenFileLimit, refusing: usize) -> usize {
    let Some(soft) = limit.soft else {
        return usize::MAX;
    };
    let available = soft.saturating_sub(RESERVED_FOR_THE_PROCESS).saturating_sub(refusing as u64);
    usize::try_from(available).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_in_what_is_left_after_the_process_and_the_refusals() {
        let limit = |soft| OpenFileLimit { soft, hard: Some(4096) };
        assert_eq!(connections_allowed(limit(Some(1024)), 64), 1024 - 128 - 64);
        assert_eq!(connections_allowed(limit(Some(100)), 64), 0);
        assert_eq!(connections_allowed(limit(None), 64), usize::MAX);
    }
}
