//! File descriptors: the node needs some for its storage, its peers and its HTTP port, whatever
//! the clients do; client connections get what is left. (Before, the client limit was 10,000
//! whatever the process's descriptor limit: with 1,024 descriptors, 1,100 idle clients made the
//! next snapshot fail with "Too many open files", and the node stop.)

/// Descriptors kept for everything but client connections: log segments and snapshot files (one
/// being written, one staged), the data directory, peer connections both ways, the listeners, the
/// HTTP port's connections, the runtime's own.
pub const RESERVED: u64 = 256;

/// What the process may open, after raising its soft limit to the hard one (as servers do at
/// start); None if it cannot be read.
pub fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur as u64)
}

/// The client connections a node with `open_files` descriptors can take while keeping `RESERVED`
/// for the rest: at most `wanted`, at least 1.
pub fn client_limit(wanted: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(open_files) => (open_files.saturating_sub(RESERVED).max(1)).min(wanted as u64) as usize,
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_what_the_reserve_leaves() {
        assert_eq!(client_limit(10_000, Some(1024)), 768);
        assert_eq!(client_limit(10_000, Some(1 << 20)), 10_000);
        assert_eq!(client_limit(10_000, Some(100)), 1);
        assert_eq!(client_limit(10_000, None), 10_000);
    }

    #[test]
    fn the_limit_can_be_read() {
        assert!(open_files_limit().is_some_and(|limit| limit > 0));
    }
}
