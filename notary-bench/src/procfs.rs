//! What the bench reads from Linux `/proc`: CPU time per process and for the machine, and a
//! process's resident memory.

use std::time::Instant;

use anyhow::Context;

/// CPU used during one measurement, as a fraction of one core: by the load generator (this
/// process), by the server under test, and by the whole machine (all cores, so at most
/// `nproc`). On a shared machine this tells whose time a latency tail is made of.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// This process.
    pub client: f64,
    /// The server under test, if its PID is known.
    pub server: Option<f64>,
    /// Every process named `postgres` on this machine (the database, when it is local).
    pub db: f64,
    /// The whole machine.
    pub machine: f64,
}

/// A snapshot of CPU counters, to diff against at the end of a measurement (Linux `/proc`).
pub struct CpuProbe {
    at: Instant,
    client: f64,
    server: Option<(u32, f64)>,
    db: f64,
    machine: f64,
}

/// CPU seconds of every process whose command name is `name` (children that ended are not
/// counted: Postgres backends of the server's pool live as long as the pool).
fn cpu_secs_named(name: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_string)
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(|pid| proc_cpu_secs(&pid))
        .sum()
}

fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next() else {
        return 0.0;
    };
    let v: Vec<f64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
    let busy: f64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / clock_ticks()
}

fn clock_ticks() -> f64 {
    100.0 // USER_HZ on every Linux architecture the bench runs on
}

impl CpuProbe {
    /// Counters now (`server_pid`: the server under test).
    pub fn start(server_pid: Option<u32>) -> CpuProbe {
        CpuProbe {
            at: Instant::now(),
            client: proc_cpu_secs("self").unwrap_or(0.0),
            server: server_pid.and_then(|p| Some((p, proc_cpu_secs(&p.to_string())?))),
            db: cpu_secs_named("postgres"),
            machine: machine_busy_secs(),
        }
    }
    /// The CPU used since `start`, per wall second.
    pub fn finish(&self) -> CpuUse {
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        CpuUse {
            client: (proc_cpu_secs("self").unwrap_or(0.0) - self.client) / wall,
            server: self
                .server
                .and_then(|(p, before)| Some((proc_cpu_secs(&p.to_string())? - before) / wall)),
            db: (cpu_secs_named("postgres") - self.db).max(0.0) / wall,
            machine: (machine_busy_secs() - self.machine) / wall,
        }
    }
}

/// Resident set size of a process, in MiB (Linux `/proc/<pid>/status`).
pub fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    Ok(kb / 1024.0)
}
