//! CPU time spent by processes and threads, from `/proc`.

/// The command name and user + system CPU ticks of one `/proc/…/stat`.
fn stat_ticks(stat: &str) -> Option<(&str, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((&stat[open + 1..close], utime + stime))
}

const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of the processes whose pid and command name
/// pass `filter`.
pub fn seconds(filter: impl Fn(u32, &str) -> bool) -> f64 {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        match stat_ticks(&stat) {
            Some((command, ticks)) if filter(pid, command) => total += ticks,
            _ => {}
        }
    }
    total as f64 / TICKS_PER_SECOND
}

/// CPU seconds of the threads of `pid` whose name starts with `prefix`.
pub fn thread_seconds(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        match stat_ticks(&stat) {
            Some((name, ticks)) if name.starts_with(prefix) => total += ticks,
            _ => {}
        }
    }
    total as f64 / TICKS_PER_SECOND
}

/// CPU seconds of every PostgreSQL process (the server's and its backends').
pub fn postgres() -> f64 {
    seconds(|_, command| command == "postgres")
}

/// CPU seconds of this process.
pub fn own() -> f64 {
    let own = std::process::id();
    seconds(|pid, _| pid == own)
}
