//! Memory sized by user input: a network's arena, its packed weights and
//! working memory, a batch of images, a file read whole.
//!
//! Such memory is never allocated with `vec!` (which aborts the process when
//! the allocator refuses): every size is computed with checked arithmetic,
//! weighed against a [`Budget`] before anything is allocated, then reserved
//! with `try_reserve_exact` and filled. Either step failing is an
//! [`Error::OutOfMemory`] naming the bytes asked for and what they were for.
//!
//! The budget exists because of Linux's overcommit: a reservation far beyond
//! the machine's memory may *succeed*, and the process is then killed when
//! its pages are touched. So a budget's default limit is the memory the
//! machine has available when the budget is made ([`available_memory`],
//! `MemAvailable` in `/proc/meminfo`: free memory plus what the kernel can
//! reclaim), and a model's whole footprint (arena, packed weights, working
//! memory) must fit in it; [`Options::memory_limit`](crate::Options::memory_limit)
//! sets another. Where it is unknown (not Linux), only the allocator's
//! refusal bounds it.
//!
//! One budget serves a whole command: it is made once and passed to every
//! step that allocates ([`Weights::from_file_in`](crate::Weights::from_file_in),
//! [`Model::with_budget`](crate::Model::with_budget), the outputs of a batch),
//! so that what one step keeps is counted against the next and two
//! reservations that each fit but not together are refused. Memory a step
//! frees before it returns (the bytes of a file once parsed) is taken from a
//! copy of the budget (`Budget` is `Copy`), so it is not counted twice.

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The memory the machine has available now, in bytes (`MemAvailable` in
/// `/proc/meminfo`), or `None` where that cannot be read.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line
        .trim_start_matches("MemAvailable:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// What is left to allocate under a limit: each allocation sized by user
/// input is taken from it, with what it is for, before it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes left, or `None` for no limit.
    left: Option<u64>,
}

impl Budget {
    /// A budget of `limit` bytes, or by default of the memory the machine
    /// has available now (no limit where that is unknown).
    pub fn new(limit: Option<u64>) -> Budget {
        Budget {
            left: limit.or_else(available_memory),
        }
    }

    /// Takes `bytes` (for `what`, e.g. "the activation arena of net `Big`")
    /// from the budget, or says that they do not fit, without allocating.
    pub fn take(&mut self, bytes: u64, what: impl FnOnce() -> String) -> Result<()> {
        match self.left {
            Some(left) if bytes > left => Err(Error::OutOfMemory {
                what: what(),
                bytes,
                left: Some(left),
            }),
            Some(left) => {
                self.left = Some(left - bytes);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// `len` zeros (`T::default()`), taken from the budget first, then
    /// allocated fallibly; `len` elements of `T` that overflow a `u64` of
    /// bytes are refused as well.
    pub fn zeroed<T: Clone + Default>(
        &mut self,
        len: usize,
        what: impl Fn() -> String,
    ) -> Result<Vec<T>> {
        let bytes = (len as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        self.take(bytes, &what)?;
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
            what: what(),
            bytes,
            left: None,
        })?;
        v.resize(len, T::default());
        Ok(v)
    }
}

/// Reads the file at `path` whole, through `read` (never a memory map, so
/// another process truncating it cannot fault this one): its length is taken
/// from `budget` and reserved fallibly first. A directory is an
/// [`Error::NotAFile`]. If the file changes while it is read, the bytes read
/// are what it held then; whoever parses them finds any inconsistency.
pub fn read_file(path: &Path, budget: &mut Budget) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            found: "a directory",
        });
    }
    let len = meta.len();
    let what = || format!("reading {}", path.display());
    budget.take(len, what)?;
    let mut bytes = Vec::new();
    usize::try_from(len)
        .ok()
        .and_then(|n| bytes.try_reserve_exact(n).ok())
        .ok_or_else(|| Error::OutOfMemory {
            what: what(),
            bytes: len,
            left: None,
        })?;
    // At most the length reserved: a file growing meanwhile is read as it was.
    file.take(len).read_to_end(&mut bytes).map_err(io)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_what_does_not_fit_and_keeps_what_does() {
        let mut budget = Budget::new(Some(100));
        budget.take(60, || "a".into()).unwrap();
        let err = budget.take(41, || "b".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot allocate 41 bytes for b: more than the 40 bytes left under the memory limit"
        );
        assert_eq!(budget.zeroed::<f32>(10, || "c".into()).unwrap(), [0.0; 10]);
        assert!(budget.zeroed::<f32>(1, || "d".into()).is_err());
    }

    #[test]
    fn a_huge_reservation_is_an_error_not_an_abort() {
        let err = Budget::new(Some(u64::MAX))
            .zeroed::<f32>(usize::MAX / 4, || "the test".into())
            .unwrap_err();
        assert!(
            err.to_string().starts_with("cannot allocate ")
                && err
                    .to_string()
                    .ends_with(" bytes for the test: the system refused"),
            "{err}"
        );
    }

    #[test]
    fn available_memory_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|b| b > 1 << 20));
        }
    }
}
