//! Where a container's life goes, read from Docker's own events: for every
//! container with a label, the time from its `create` to its `start`, from
//! `start` to `die` (the work: for a runner, connecting, its job and its
//! report), from `die` to `destroy` (removal), and from each `destroy` to
//! the next `create` (how long a freed slot stays empty). The same recorder
//! watches the baseline's containers and the orchestrator's, so the phases
//! are compared on the engine's clock, whoever made the calls.
//!
//! [`PhaseRecorder::finish_by_name`] gives each container's events by name
//! instead, for benchmarks that pair containers (a runner and its engine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::percentile;

/// Docker events of one label's containers, recorded until [`Self::finish`].
pub(crate) struct PhaseRecorder {
    events: Arc<Mutex<Vec<Event>>>,
    task: JoinHandle<()>,
}

/// One container event as Docker reported it.
#[derive(Debug, Clone)]
struct Event {
    /// The container's id: names can be reused, ids cannot.
    id: String,
    /// The container's name, to pair containers by (a runner, `<runner>-docker`).
    name: String,
    action: String,
    /// Nanoseconds since the epoch, on the engine's clock.
    at: i64,
}

/// Each container's first time of each action (`create`, `start`, `die`,
/// `destroy`), in nanoseconds since the epoch, by container name.
pub(crate) type Timelines = HashMap<String, HashMap<String, i64>>;

/// The medians of each phase, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phases {
    pub(crate) create_to_start: f64,
    pub(crate) start_to_die: f64,
    pub(crate) die_to_destroy: f64,
    pub(crate) create_to_destroy: f64,
    /// A `destroy` to the next `create`, while containers were wanted.
    pub(crate) destroy_to_next_create: f64,
    /// Containers whose whole life was seen.
    pub(crate) containers: usize,
}

impl PhaseRecorder {
    /// Starts recording the events of containers labelled `label=value`.
    pub(crate) fn start(docker: &Docker, label: &str, value: &str) -> Self {
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            (
                "event",
                ["create", "start", "die", "destroy"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            ("label", vec![format!("{label}={value}")]),
        ]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let mut stream = docker.events(Some(options));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let (Some(action), Some(actor), Some(at)) =
                    (event.action, event.actor, event.time_nano)
                else {
                    continue;
                };
                let Some(id) = actor.id else { continue };
                let name = actor
                    .attributes
                    .and_then(|mut a| a.remove("name"))
                    .unwrap_or_default();
                sink.lock().expect("events").push(Event {
                    id,
                    name,
                    action,
                    at,
                });
            }
        });
        Self { events, task }
    }

    /// Stops recording and gives the phases' medians.
    pub(crate) fn finish(self) -> Phases {
        phases(&self.stop())
    }

    /// Stops recording and gives each container's events, by name.
    pub(crate) fn finish_by_name(self) -> Timelines {
        let mut timelines = Timelines::new();
        for event in self.stop() {
            timelines
                .entry(event.name)
                .or_default()
                .entry(event.action)
                .or_insert(event.at);
        }
        timelines
    }

    fn stop(self) -> Vec<Event> {
        self.task.abort();
        self.events.lock().expect("events").clone()
    }
}

/// The medians of `events`.
fn phases(events: &[Event]) -> Phases {
    let mut by_container: HashMap<&str, HashMap<&str, i64>> = HashMap::new();
    for event in events {
        by_container
            .entry(&event.id)
            .or_default()
            .entry(&event.action)
            .or_insert(event.at);
    }
    let ms = |from: i64, to: i64| (to - from) as f64 / 1e6;
    let span = |a: &str, b: &str| -> Vec<f64> {
        by_container
            .values()
            .filter_map(|e| Some(ms(*e.get(a)?, *e.get(b)?)))
            .collect()
    };
    let mut creates: Vec<i64> = by_container
        .values()
        .filter_map(|e| e.get("create").copied())
        .collect();
    let mut destroys: Vec<i64> = by_container
        .values()
        .filter_map(|e| e.get("destroy").copied())
        .collect();
    creates.sort_unstable();
    destroys.sort_unstable();
    // Each destroy followed by a create before the next destroy: a slot
    // refilled. A destroy with no create before the next one is the end of
    // the run, or a slot nobody wanted.
    let refills: Vec<f64> = destroys
        .windows(2)
        .filter_map(|pair| {
            let next = creates.iter().find(|c| **c >= pair[0])?;
            (*next < pair[1]).then(|| ms(pair[0], *next))
        })
        .collect();
    let median = |samples: Vec<f64>| percentile(&samples, 50.0);
    Phases {
        create_to_start: median(span("create", "start")),
        start_to_die: median(span("start", "die")),
        die_to_destroy: median(span("die", "destroy")),
        create_to_destroy: median(span("create", "destroy")),
        destroy_to_next_create: median(refills),
        containers: span("create", "destroy").len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_read_per_container_and_refills_between_containers() {
        let ev = |id: &str, action: &str, ms: i64| Event {
            id: id.to_owned(),
            name: id.to_owned(),
            action: action.to_owned(),
            at: ms * 1_000_000,
        };
        let events = [
            ev("a", "create", 0),
            ev("a", "start", 100),
            ev("a", "die", 1100),
            ev("a", "destroy", 1300),
            ev("b", "create", 1350),
            ev("b", "start", 1450),
            ev("b", "die", 2450),
            ev("b", "destroy", 2650),
        ];
        let phases = phases(&events);
        assert_eq!(phases.containers, 2);
        assert_eq!(phases.create_to_start, 100.0);
        assert_eq!(phases.start_to_die, 1000.0);
        assert_eq!(phases.die_to_destroy, 200.0);
        assert_eq!(phases.create_to_destroy, 1300.0);
        assert_eq!(phases.destroy_to_next_create, 50.0);
    }
}
