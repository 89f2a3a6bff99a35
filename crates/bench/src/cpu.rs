//! CPU time spent by this process and by PostgreSQL's processes, from Linux's
//! `/proc`: a throughput figure on a shared two-core machine says little on
//! its own (a compiler running beside it halves it), while the CPU each
//! operation costs, and who spends it, stays put and shows where to work.

use std::collections::HashMap;

/// `/proc`'s clock ticks per second (USER_HZ, 100 on Linux's mainstream
/// architectures; it is part of the kernel's ABI, not its configuration).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far: by this process, and by each PostgreSQL process
/// (with whether it serves the database the snapshot was taken for).
pub(crate) struct CpuSnapshot {
    own: f64,
    postgres: HashMap<u32, (f64, bool)>,
}

/// CPU seconds spent between two snapshots.
pub(crate) struct CpuSpent {
    pub(crate) own: f64,
    /// Every PostgreSQL process's: its backends', and its shared work
    /// (writing the WAL, checkpoints) for whatever else uses the server.
    pub(crate) postgres: f64,
    /// Only the backends connected to the snapshot's database: what this
    /// process's queries cost the server, apart from another client's
    /// beside it.
    pub(crate) database: f64,
}

/// User plus system CPU seconds of a process, and its command name.
fn cpu_of(stat_path: &str) -> Option<(String, f64)> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // "pid (comm) state ppid …": the name may hold spaces, so split at the
    // last ')'; utime and stime are the 14th and 15th fields.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks as f64 / TICKS_PER_SECOND))
}

/// Whether PostgreSQL process `pid` is a backend connected to `database`:
/// its title (PostgreSQL's `update_process_title`, on by default) reads
/// `postgres: [cluster: ]user database host(port) state`.
fn serves(pid: u32, database: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|title| {
        String::from_utf8_lossy(&title)
            .split([' ', '\0'])
            .any(|word| word == database)
    })
}

impl CpuSnapshot {
    /// `None` where `/proc` is not there to read; `database` names the
    /// database whose backends [`CpuSpent::database`] counts.
    pub(crate) fn take(database: &str) -> Option<Self> {
        let own = cpu_of("/proc/self/stat")?.1;
        let mut postgres = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some((comm, secs)) = cpu_of(&format!("/proc/{pid}/stat")) {
                if comm == "postgres" {
                    postgres.insert(pid, (secs, serves(pid, database)));
                }
            }
        }
        Some(Self { own, postgres })
    }

    /// What was spent from `self` to `later`; a PostgreSQL process that
    /// started in between counts from zero.
    pub(crate) fn until(&self, later: &Self) -> CpuSpent {
        let spent = |pid: &u32, secs: f64| {
            let before = self.postgres.get(pid).map_or(0.0, |(secs, _)| *secs);
            (secs - before).max(0.0)
        };
        CpuSpent {
            own: later.own - self.own,
            postgres: later
                .postgres
                .iter()
                .map(|(pid, (secs, _))| spent(pid, *secs))
                .sum(),
            database: later
                .postgres
                .iter()
                .filter(|(_, (_, serving))| *serving)
                .map(|(pid, (secs, _))| spent(pid, *secs))
                .sum(),
        }
    }
}

/// Set in the environment of a process run under Valgrind (`telemetry
/// --instructions` sets it for its workers): Valgrind gives a process no
/// vDSO, and rustix's clock looks for one and faults. Such a process counts
/// instructions, not time, so its clocks read zero.
pub(crate) const UNDER_VALGRIND_VAR: &str = "VITALGATE_BENCH_UNDER_VALGRIND";

fn under_valgrind() -> bool {
    static UNDER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNDER.get_or_init(|| std::env::var_os(UNDER_VALGRIND_VAR).is_some())
}

/// CPU time this process has used so far, all its threads, in nanoseconds
/// (`CLOCK_PROCESS_CPUTIME_ID`): exact where `/proc`'s ticks are 10 ms, for
/// what one operation costs over a few dozen of them.
pub(crate) fn process_cpu_ns() -> u64 {
    if under_valgrind() {
        return 0;
    }
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// CPU time the calling thread has used so far, in nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`): what a device driven from this thread
/// spent, to take from the process's time and leave the services'.
pub(crate) fn thread_cpu_ns() -> u64 {
    if under_valgrind() {
        return 0;
    }
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// CPU time spent over a stretch of work: by the whole process, and by
/// the thread that drove it (the device or clients the benchmark plays),
/// so that the services' share is the difference.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SplitCpu {
    pub(crate) process_ns: u64,
    pub(crate) driver_ns: u64,
}

impl SplitCpu {
    /// Both clocks now; [`SplitCpu::since`] takes a later reading from it.
    pub(crate) fn now() -> Self {
        // The thread's clock first and last: reading the process's clock is
        // then inside the driver's stretch, and taken out with it.
        let driver_ns = thread_cpu_ns();
        Self {
            process_ns: process_cpu_ns(),
            driver_ns,
        }
    }

    /// What was spent from `self` (a [`SplitCpu::now`]) until now.
    pub(crate) fn since(self) -> Self {
        let process_ns = process_cpu_ns();
        Self {
            process_ns: process_ns.saturating_sub(self.process_ns),
            driver_ns: thread_cpu_ns().saturating_sub(self.driver_ns),
        }
    }

    /// The process's time apart from the driving thread's: the services'.
    pub(crate) fn services_ns(self) -> u64 {
        self.process_ns.saturating_sub(self.driver_ns)
    }
}

impl std::ops::AddAssign for SplitCpu {
    fn add_assign(&mut self, other: Self) {
        self.process_ns += other.process_ns;
        self.driver_ns += other.driver_ns;
    }
}

/// Times this process's threads have left a CPU so far, by waiting
/// (voluntary: a lock, a channel, a socket, a parked runtime worker) or
/// by being preempted, summed over its threads from Linux's
/// `/proc/self/task/*/status`; `None` where there is none. A thread that
/// ended in between is missing from the later sum: count over a stretch
/// whose threads live through it.
pub(crate) fn context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread may end between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(count) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += count.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_sleeps_is_switched_out() {
        let Some(before) = context_switches() else {
            return; // not Linux
        };
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = context_switches().expect("read once, read again");
        assert!(after > before, "{before} then {after}");
    }

    #[test]
    fn the_driving_threads_time_is_taken_from_the_process() {
        let start = SplitCpu::now();
        // Work on another thread, then on this one.
        std::thread::spawn(|| spin(std::time::Duration::from_millis(40)))
            .join()
            .expect("spinner");
        spin(std::time::Duration::from_millis(20));
        let spent = start.since();
        assert!(spent.driver_ns >= 20_000_000, "{spent:?}");
        assert!(spent.services_ns() >= 40_000_000, "{spent:?}");
        // The other thread's time is not the driver's.
        assert!(spent.driver_ns < 35_000_000, "{spent:?}");
    }

    /// Works until this thread's own clock has run `how_long`: the same
    /// CPU time however busy the machine is.
    fn spin(how_long: std::time::Duration) {
        let until = thread_cpu_ns() + how_long.as_nanos() as u64;
        let mut x = 0u64;
        while thread_cpu_ns() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn this_process_is_found_and_its_cpu_time_grows() {
        let Some(before) = CpuSnapshot::take("no_such_database") else {
            return; // not Linux
        };
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed().as_millis() < 60 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = CpuSnapshot::take("no_such_database").expect("still Linux");
        let spent = before.until(&after);
        assert!(spent.own > 0.0);
        assert_eq!(spent.database, 0.0, "no backend serves that database");
    }
}
