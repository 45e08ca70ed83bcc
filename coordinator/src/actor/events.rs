//! The coordinator's event stream (`WatchEvents`, `brigade events`): jobs
//! submitted and ended, workers linked and lost, each with when it
//! happened. The actor appends them where it logs them; the last
//! [`EventLog::KEPT`] are kept for a caller who asks, and followers get
//! each new one through a broadcast channel (a follower that falls
//! [`EventLog::FOLLOWER_BUFFER`] behind is cut off, told so).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use brigade_proto::v1::{Event, EventKind, JobState};
use tokio::sync::broadcast;

/// The recent events and the channel new ones go out on.
#[derive(Debug)]
pub(crate) struct EventLog {
    recent: VecDeque<Arc<Event>>,
    tx: broadcast::Sender<Arc<Event>>,
    next_seq: u64,
    /// The linked workers' names, for the event of their loss.
    workers: HashMap<u64, String>,
}

/// What a caller who asks for events gets: the recent ones, and (to
/// follow) a receiver of every later one, with none between them lost.
pub(crate) type EventsSince = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

impl EventLog {
    /// Events kept for a caller who asks (about 1.5 MB at most).
    pub(crate) const KEPT: usize = 10_000;
    /// Events a follower may be behind before it is cut off.
    pub(crate) const FOLLOWER_BUFFER: usize = 4_096;

    pub(crate) fn new() -> EventLog {
        EventLog {
            recent: VecDeque::new(),
            tx: broadcast::channel(Self::FOLLOWER_BUFFER).0,
            next_seq: 1,
            workers: HashMap::new(),
        }
    }

    fn push(&mut self, mut event: Event) {
        event.seq = self.next_seq;
        self.next_seq += 1;
        let event = Arc::new(event);
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(event.clone());
        // No follower: nobody to tell.
        let _ = self.tx.send(event);
    }

    pub(crate) fn job_submitted(
        &mut self,
        at_us: u64,
        job: u64,
        workload: &str,
        owner: &str,
        detail: String,
    ) {
        self.push(Event {
            unix_us: at_us,
            kind: EventKind::JobSubmitted as i32,
            job_id: job,
            workload: workload.to_string(),
            owner: owner.to_string(),
            detail,
            ..Event::default()
        });
    }

    pub(crate) fn job_ended(
        &mut self,
        at_us: u64,
        job: u64,
        workload: &str,
        owner: &str,
        state: JobState,
        error: &str,
    ) {
        self.push(Event {
            unix_us: at_us,
            kind: EventKind::JobEnded as i32,
            job_id: job,
            workload: workload.to_string(),
            owner: owner.to_string(),
            state: state as i32,
            detail: error.to_string(),
            ..Event::default()
        });
    }

    pub(crate) fn worker_linked(&mut self, at_us: u64, worker: u64, name: &str) {
        self.workers.insert(worker, name.to_string());
        self.push(Event {
            unix_us: at_us,
            kind: EventKind::WorkerLinked as i32,
            worker_id: worker,
            worker: name.to_string(),
            ..Event::default()
        });
    }

    /// A linked worker's link ended (once: a worker already lost is not
    /// lost again).
    pub(crate) fn worker_lost(&mut self, at_us: u64, worker: u64, why: &str) {
        let Some(name) = self.workers.remove(&worker) else {
            return;
        };
        self.push(Event {
            unix_us: at_us,
            kind: EventKind::WorkerLost as i32,
            worker_id: worker,
            worker: name,
            detail: why.to_string(),
            ..Event::default()
        });
    }

    /// The recent events and a receiver of the later ones.
    pub(crate) fn since(&self) -> EventsSince {
        (self.recent.iter().cloned().collect(), self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_numbered_kept_up_to_a_bound_and_followed_without_a_gap() {
        let mut log = EventLog::new();
        log.job_submitted(10, 1, "noop", "alice", "3 tasks".into());
        let (recent, mut rx) = log.since();
        assert_eq!(recent.len(), 1);
        assert_eq!(
            (recent[0].seq, recent[0].job_id, recent[0].unix_us),
            (1, 1, 10)
        );
        log.job_ended(20, 1, "noop", "alice", JobState::Succeeded, "");
        log.worker_linked(25, 4, "w4");
        log.worker_lost(30, 4, "silent for 3 s");
        log.worker_lost(31, 4, "disconnected");
        let next = rx.try_recv().expect("the job's end");
        assert_eq!((next.seq, next.kind), (2, EventKind::JobEnded as i32));
        assert_eq!(rx.try_recv().expect("the worker's link").worker, "w4");
        let lost = rx.try_recv().expect("the worker's loss");
        assert_eq!(
            (lost.worker.as_str(), lost.detail.as_str()),
            ("w4", "silent for 3 s")
        );
        assert!(rx.try_recv().is_err(), "a worker is lost once");
        for i in 0..EventLog::KEPT as u64 {
            log.worker_linked(40 + i, 100 + i, "w");
        }
        let (recent, _) = log.since();
        assert_eq!(recent.len(), EventLog::KEPT);
        assert_eq!(recent[0].seq, 5, "the oldest went");
        assert_eq!(
            recent.last().map(|e| e.seq),
            Some(4 + EventLog::KEPT as u64)
        );
    }
}
