//! CPU time the hypervisor took from this machine while a level ran (Linux `/proc/stat`).
//!
//! On a shared virtual machine a burst of steal time stretches whichever engine step it lands on,
//! and an ITL p99 over a few hundred steps is made of a handful of such steps. Recording it beside
//! each level shows when a tail was decided by the machine rather than by the server.

/// Milliseconds of steal time summed over all cores since boot, or `None` where the kernel does not
/// report it.
pub fn total_ms() -> Option<f64> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The steal column (the eighth value) of the `cpu` line of a `/proc/stat` text, in ms. The kernel
/// counts in USER_HZ ticks, 100 a second on x86 and Arm Linux.
fn parse(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(ticks as f64 * 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_is_the_eighth_value_of_the_all_cores_line() {
        let stat =
            "cpu  2792784 0 148098 1992736 9012 0 3867 44144 0 0\ncpu0 1 2 3 4 5 6 7 99 0 0\n";
        assert_eq!(parse(stat), Some(441_440.0));
    }

    #[test]
    fn an_old_kernel_without_the_column_gives_none() {
        assert_eq!(parse("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse("intr 1 2 3\n"), None);
    }
}
