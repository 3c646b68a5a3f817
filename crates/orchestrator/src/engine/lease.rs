//! The lease on an orchestrator id: one orchestrator per `ORCHESTRATOR_ID`
//! on one engine.
//!
//! Two orchestrators with one id would each take the other's runners for
//! their own, report them finished and remove them. So at start an
//! orchestrator claims its id with a lease, a labelled volume named after
//! the id that says who holds it ([`Holder`]); a second one finds the first
//! holder alive and refuses to start. A clean shutdown releases the lease;
//! after a crash the holder is found dead (its container stopped or gone,
//! its process gone) and the next start takes the lease over.
//!
//! A volume, because it is the engine's cheapest object that carries labels
//! and whose name is unique: a network would take an address range.

use std::fmt;

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// An orchestrator in a container of this engine: the container's full id.
    Container(String),
    /// An orchestrator running as a process on a host, not in a container.
    Process {
        /// The host's name.
        host: String,
        /// Its process id.
        pid: u32,
        /// When the process started (clock ticks since boot, from
        /// `/proc/PID/stat`): a pid reused by another process does not pass
        /// for the holder.
        started: u64,
    },
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Container(id) => write!(f, "container:{id}"),
            Holder::Process { host, pid, started } => write!(f, "process:{host}:{pid}:{started}"),
        }
    }
}

impl Holder {
    /// Reads a holder back from its label.
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(id) = text.strip_prefix("container:") {
            return (!id.is_empty()).then(|| Holder::Container(id.to_owned()));
        }
        let rest = text.strip_prefix("process:")?;
        let (rest, started) = rest.rsplit_once(':')?;
        let (host, pid) = rest.rsplit_once(':')?;
        Some(Holder::Process {
            host: host.to_owned(),
            pid: pid.parse().ok()?,
            started: started.parse().ok()?,
        })
    }

    /// This process as a holder, when it is not in a container (or its
    /// container cannot be found): host name, pid and start time.
    pub fn this_process() -> Self {
        let pid = std::process::id();
        Holder::Process {
            host: host_name(),
            pid,
            started: process_start(pid).unwrap_or(0),
        }
    }

    /// How to say who this is in a message.
    pub fn describe(&self) -> String {
        match self {
            Holder::Container(id) => format!("container {}", &id[..id.len().min(12)]),
            Holder::Process { host, pid, .. } => format!("process {pid} on host {host}"),
        }
    }
}

/// What is known of a recorded holder's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running now.
    Alive,
    /// Stopped, removed, or a process that is gone.
    Gone,
    /// Cannot be told from here (a process on another host).
    Unknown,
}

/// The lease's verdict at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours: nobody held it, we held it before (a restart of this very
    /// container), or its holder is gone.
    Take,
    /// Someone else holds it and may be running: do not start.
    Refuse(Holder),
}

/// Decides a claim: `recorded` holds the lease (`None`: nobody), `me` asks
/// for it, `liveness` is what could be learned of `recorded`.
pub fn decide(recorded: Option<&Holder>, me: &Holder, liveness: Liveness) -> Claim {
    match recorded {
        None => Claim::Take,
        Some(holder) if holder == me => Claim::Take,
        Some(_) if liveness == Liveness::Gone => Claim::Take,
        Some(holder) => Claim::Refuse(holder.clone()),
    }
}

/// Whether a process holder is alive, seen from this host.
pub fn process_liveness(host: &str, pid: u32, started: u64) -> Liveness {
    if host != host_name() {
        return Liveness::Unknown;
    }
    match process_start(pid) {
        Some(now) if started == 0 || now == started => Liveness::Alive,
        _ => Liveness::Gone,
    }
}

/// The volume that holds the lease on `instance`: its name is the lease, so
/// characters a volume name may not hold are replaced.
pub fn volume_name(instance: &str) -> String {
    let safe: String = instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("gha-orchestrator-lease-{safe}")
}

/// The message of a refused start.
pub fn refusal(instance: &str, holder: &Holder) -> String {
    format!(
        "another orchestrator with ORCHESTRATOR_ID={instance} is running on this Docker engine ({}); two orchestrators with one id would take and remove each other's runners. Give this one its own ORCHESTRATOR_ID, or stop the other. If it is truly gone, remove its lease: docker volume rm {}",
        holder.describe(),
        volume_name(instance)
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Field 22 of `/proc/PID/stat`, the process's start time; `None` when no
/// such process exists.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last `)`.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip_through_their_label() {
        for holder in [
            Holder::Container("0123456789abcdef".into()),
            Holder::Process {
                host: "build-host".into(),
                pid: 42,
                started: 123_456,
            },
        ] {
            assert_eq!(Holder::parse(&holder.to_string()), Some(holder));
        }
        assert_eq!(Holder::parse("container:"), None);
        assert_eq!(Holder::parse("somebody"), None);
    }

    #[test]
    fn a_live_holder_is_refused_and_a_gone_one_replaced() {
        let me = Holder::Container("mine".into());
        let other = Holder::Container("theirs".into());
        assert_eq!(decide(None, &me, Liveness::Unknown), Claim::Take);
        assert_eq!(decide(Some(&me), &me, Liveness::Alive), Claim::Take);
        assert_eq!(decide(Some(&other), &me, Liveness::Gone), Claim::Take);
        assert_eq!(
            decide(Some(&other), &me, Liveness::Alive),
            Claim::Refuse(other.clone())
        );
        assert_eq!(
            decide(Some(&other), &me, Liveness::Unknown),
            Claim::Refuse(other)
        );
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let Holder::Process { host, pid, started } = Holder::this_process() else {
            panic!("a process holder");
        };
        assert!(started > 0);
        assert_eq!(process_liveness(&host, pid, started), Liveness::Alive);
        assert_eq!(process_liveness(&host, pid, started + 1), Liveness::Gone);
        assert_eq!(
            process_liveness("another-host", pid, started),
            Liveness::Unknown
        );
    }

    #[test]
    fn volume_names_are_valid() {
        assert_eq!(volume_name("default"), "gha-orchestrator-lease-default");
        assert_eq!(volume_name("a b/c"), "gha-orchestrator-lease-a-b-c");
    }
}
