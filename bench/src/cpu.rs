//! CPU time (user + system) of the local stack's processes over a measured window, from
//! `/proc/<pid>/stat`: each function's processes, the emulator, the local stack itself (its
//! event source mappings, its API Gateway and Runtime API servers) and the bench (publisher
//! and receiver), told apart.
//!
//! A process's own time only (not its children's); a process that started or ended within
//! the window is counted for the part of it that was seen, and flagged.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// The functions' binaries, as their processes are named.
const FUNCTIONS: [&str; 3] = ["subscriptions", "matcher", "delivery"];

/// Every process of the stack at one moment: pid -> (role, CPU seconds so far).
#[derive(Debug, Clone, Default)]
pub struct Reading(BTreeMap<u32, (String, f64)>);

/// CPU seconds used by each role between two readings.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub seconds_by_role: BTreeMap<String, f64>,
    pub processes_by_role: BTreeMap<String, usize>,
    /// Processes seen in only one of the two readings (restarted, started or ended).
    pub partial_processes: usize,
    pub clock_ticks_per_second: f64,
}

/// Reads the local stack (`stack_pid` and all its descendants) and this process.
pub fn read(stack_pid: u32) -> Reading {
    let ticks = clock_ticks();
    let stats: Vec<(u32, u32, f64)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|pid| {
                    let (ppid, ticks_used) = stat(pid)?;
                    Some((pid, ppid, ticks_used / ticks))
                })
                .collect()
        })
        .unwrap_or_default();
    let parent: BTreeMap<u32, u32> = stats.iter().map(|(pid, ppid, _)| (*pid, *ppid)).collect();
    let descends = |mut pid: u32| {
        for _ in 0..16 {
            if pid == stack_pid {
                return true;
            }
            match parent.get(&pid) {
                Some(p) if *p > 1 => pid = *p,
                _ => return false,
            }
        }
        false
    };
    let me = std::process::id();
    let mut out = BTreeMap::new();
    for (pid, _, seconds) in stats {
        if pid == me {
            out.insert(pid, ("bench (publisher, receiver)".to_owned(), seconds));
        } else if pid == stack_pid {
            out.insert(pid, ("local stack".to_owned(), seconds));
        } else if descends(pid) {
            out.insert(pid, (role(pid), seconds));
        }
    }
    Reading(out)
}

/// What each role used from `before` to `after`.
pub fn between(before: &Reading, after: &Reading) -> Usage {
    let mut seconds_by_role: BTreeMap<String, f64> = BTreeMap::new();
    let mut processes_by_role: BTreeMap<String, usize> = BTreeMap::new();
    let mut partial = 0;
    for (pid, (role, end)) in &after.0 {
        let start = match before.0.get(pid) {
            Some((_, start)) => *start,
            None => {
                partial += 1;
                0.0
            }
        };
        *seconds_by_role.entry(role.clone()).or_default() += (end - start).max(0.0);
        *processes_by_role.entry(role.clone()).or_default() += 1;
    }
    partial += before.0.keys().filter(|pid| !after.0.contains_key(pid)).count();
    Usage { seconds_by_role, processes_by_role, partial_processes: partial, clock_ticks_per_second: clock_ticks() }
}

/// (parent pid, user + system ticks) of `pid`.
fn stat(pid: u32) -> Option<(u32, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields after it.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn role(pid: u32) -> String {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let name = exe.as_deref().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    if let Some(f) = FUNCTIONS.iter().find(|f| **f == name) {
        return (*f).to_owned();
    }
    let cmdline =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).into_owned();
    if cmdline.contains("moto") {
        return "emulator".to_owned();
    }
    if cmdline.contains("fault_proxy") {
        return "local stack: its proxy in front of the emulator".to_owned();
    }
    format!("other ({name})")
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The parent of `pid` (the local stack, for a function process).
pub fn parent_of(pid: u32) -> Option<u32> {
    stat(pid).map(|(ppid, _)| ppid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_counts_its_time_between_two_readings() {
        // GIVEN a reading of this process (as its own "stack")
        let me = std::process::id();
        let before = read(me);
        // WHEN it burns some CPU
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        let after = read(me);
        // THEN the time shows under the bench's role, and nothing is partial
        let usage = between(&before, &after);
        let seconds = usage.seconds_by_role.get("bench (publisher, receiver)").copied().unwrap_or_default();
        assert!(seconds > 0.1, "{usage:?}");
        assert_eq!(usage.partial_processes, 0);
    }
}
