//! The peak resident set size of this process, resettable, so that a study can report the
//! peak memory of each training run (Linux: `VmHWM` in `/proc/self/status`, reset by writing
//! `5` to `/proc/self/clear_refs`; elsewhere there is no measurement).

/// Resets the peak resident set size to the current one. Returns whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident set size in bytes since the process started or since the last
/// successful [`reset_peak_rss`]; `None` where the system does not report it.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// The current resident set size in bytes (`VmRSS`); `None` where the system does not report
/// it.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_sees_a_large_allocation_and_a_reset_forgets_it() {
        let resettable = reset_peak_rss();
        if !resettable && !cfg!(target_os = "linux") {
            // No procfs: there is nothing to measure, and nothing claims it.
            assert_eq!(peak_rss_bytes(), None);
            return;
        }
        assert!(resettable, "procfs should be writable on Linux");
        let before = peak_rss_bytes().unwrap();
        let size = 256 << 20;
        // Touch every page so the allocation is resident, not just reserved.
        let block = vec![1u8; size];
        assert_eq!(
            block
                .iter()
                .step_by(4096)
                .map(|&b| b as usize)
                .sum::<usize>(),
            size / 4096
        );
        let during = peak_rss_bytes().unwrap();
        assert!(during >= before + size as u64 / 2, "{before} -> {during}");
        let now = rss_bytes().unwrap();
        assert!(
            now >= before + size as u64 / 2 && now <= during,
            "{before} -> {now}"
        );
        drop(block);
        assert!(reset_peak_rss());
        let after = peak_rss_bytes().unwrap();
        assert!(after + (size as u64) / 2 <= during, "{during} -> {after}");
    }
}
