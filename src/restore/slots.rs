//! `--restore-slots K`: at most K restore sessions with scratch servers at
//! once on this machine, across backproof processes (the shards of a fleet
//! run side by side on one node). A slot is a lock on one of K files in a
//! directory every process on the machine sees; the OS drops it when its
//! process dies, so a killed run never keeps a slot.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Slots {
    dir: PathBuf,
    count: usize,
}

/// A held slot, released on drop.
#[derive(Debug)]
pub struct Slot {
    _file: File,
    pub index: usize,
    /// How long the wait for it took.
    pub waited: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("restore slots in {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("interrupted while waiting for a restore slot")]
    Interrupted,
}

impl Slots {
    pub fn new(count: usize) -> Slots {
        Slots::in_dir(std::env::temp_dir().join("backproof-restore-slots"), count)
    }

    pub fn in_dir(dir: PathBuf, count: usize) -> Slots {
        Slots {
            dir,
            count: count.max(1),
        }
    }

    /// Waits for a free slot.
    pub fn acquire(&self) -> Result<Slot, SlotError> {
        let io = |source| SlotError::Io {
            dir: self.dir.clone(),
            source,
        };
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).map_err(io)?;
            // Shared like /tmp itself: shards run as other users may come
            // later (sticky, so none removes another's lock file).
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o1777));
        }
        let started = Instant::now();
        loop {
            for index in 0..self.count {
                let path = self.dir.join(format!("slot-{index}.lock"));
                // Another user's lock file can still be locked read-only.
                let file = match OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                {
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(&path),
                    other => other,
                }
                .map_err(io)?;
                match file.try_lock() {
                    Ok(()) => {
                        return Ok(Slot {
                            _file: file,
                            index,
                            waited: started.elapsed(),
                        });
                    }
                    Err(std::fs::TryLockError::WouldBlock) => continue,
                    Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
                }
            }
            if crate::interrupt::interrupted() {
                return Err(SlotError::Interrupted);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// K slots are handed out; the K+1st waits until one is released.
    #[test]
    fn the_slot_after_the_last_waits_for_a_release() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::in_dir(dir.path().to_path_buf(), 2);
        let a = slots.acquire().unwrap();
        let b = slots.acquire().unwrap();
        assert_ne!(a.index, b.index);
        let waiter = std::thread::spawn(move || {
            let s = Slots::in_dir(dir.path().to_path_buf(), 2);
            let c = s.acquire().unwrap();
            (c.index, c.waited)
        });
        std::thread::sleep(Duration::from_millis(600));
        assert!(!waiter.is_finished(), "a third slot was handed out");
        let freed = a.index;
        drop(a);
        let (index, waited) = waiter.join().unwrap();
        assert_eq!(index, freed);
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
        drop(b);
    }
}
