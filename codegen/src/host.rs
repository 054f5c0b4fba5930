//! What lowering reads of the host besides its ISA: the size of a core's L2
//! cache, which decides how a Winograd kernel cuts its tiles into runs
//! ([`crate::winograd::WinogradSpec::runs`]).
//!
//! Read from Linux's `/sys/devices/system/cpu/cpu0/cache`, as `lscpu` does;
//! `None` where that is missing or malformed (another OS, a sandbox), and
//! lowering then keeps the rule measured on small L2s.

use std::sync::OnceLock;

/// The unified (or data) L2 cache of CPU 0 in bytes, read once.
pub fn l2_bytes() -> Option<usize> {
    static L2: OnceLock<Option<usize>> = OnceLock::new();
    *L2.get_or_init(read_l2_bytes)
}

fn read_l2_bytes() -> Option<usize> {
    let root = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    // A handful of `indexN` entries, one per cache; at most 16 are looked at.
    (0..16).find_map(|i| {
        let index = root.join(format!("index{i}"));
        let read = |name: &str| std::fs::read_to_string(index.join(name)).ok();
        let level = read("level")?;
        let kind = read("type")?;
        (level.trim() == "2" && kind.trim() != "Instruction")
            .then(|| parse_size(&read("size")?))
            .flatten()
    })
}

/// A sysfs cache size (`2048K`, `1M`, `524288`) in bytes; `None` for
/// anything else, zero, or a size that overflows.
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let (digits, unit) = match text.strip_suffix(['K', 'k']) {
        Some(digits) => (digits, 1 << 10),
        None => match text.strip_suffix(['M', 'm']) {
            Some(digits) => (digits, 1 << 20),
            None => (text, 1),
        },
    };
    let count: usize = digits.parse().ok()?;
    count.checked_mul(unit).filter(|&bytes| bytes > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_as_sysfs_writes_them() {
        assert_eq!(parse_size("2048K\n"), Some(2 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("524288"), Some(512 << 10));
        for bad in [
            "",
            "K",
            "0K",
            "-1K",
            "2.5M",
            "12G",
            "99999999999999999999999K",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }
}
