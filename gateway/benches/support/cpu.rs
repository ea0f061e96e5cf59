//! CPU time spent by processes and threads, from `/proc`.

/// CPU ticks of one `/proc/…/stat`: the command name, the user + system
/// ticks of the process itself, and those of its children that exited and
/// were waited for.
fn stat_ticks(stat: &str) -> Option<(&str, u64, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let field = |n: usize| fields.get(n).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime) = (field(11)?, field(12)?);
    let (cutime, cstime) = (field(13)?, field(14)?);
    Some((&stat[open + 1..close], utime + stime, cutime + cstime))
}

const TICKS_PER_SECOND: f64 = 100.0;

/// The number and `stat` text of every numbered entry of `dir` (`/proc`,
/// or a process's `task`).
fn stats(dir: &str) -> impl Iterator<Item = (u32, String)> {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    entries.filter_map(|entry| {
        let number = entry.file_name().to_str()?.parse::<u32>().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        Some((number, stat))
    })
}

/// User + system CPU seconds of the processes whose pid and command name
/// pass `filter` (with `exited`, also of their children that have exited).
fn processes(filter: impl Fn(u32, &str) -> bool, exited: bool) -> f64 {
    let ticks = stats("/proc").filter_map(|(pid, stat)| {
        let (command, own, children) = stat_ticks(&stat)?;
        filter(pid, command).then_some(own + if exited { children } else { 0 })
    });
    ticks.sum::<u64>() as f64 / TICKS_PER_SECOND
}

/// User + system CPU seconds of the processes whose pid and command name
/// pass `filter`.
pub fn seconds(filter: impl Fn(u32, &str) -> bool) -> f64 {
    processes(filter, false)
}

/// CPU seconds of the threads of `pid` whose name starts with `prefix`.
pub fn thread_seconds(pid: u32, prefix: &str) -> f64 {
    let ticks = stats(&format!("/proc/{pid}/task")).filter_map(|(_, stat)| {
        let (name, own, _) = stat_ticks(&stat)?;
        name.starts_with(prefix).then_some(own)
    });
    ticks.sum::<u64>() as f64 / TICKS_PER_SECOND
}

/// CPU seconds of every PostgreSQL process: the server's, its backends' and
/// those of its processes that have exited (a closed connection's backend,
/// autovacuum and parallel query workers), which the server has waited for
/// and /proc counts as its children's. Between two samples, a process alive
/// at the first and gone by the second counts for what it spent between
/// them.
pub fn postgres() -> f64 {
    processes(|_, command| command == "postgres", true)
}

/// CPU seconds of this process.
pub fn own() -> f64 {
    let own = std::process::id();
    seconds(|pid, _| pid == own)
}
