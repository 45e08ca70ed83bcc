//! `/metrics`: what the actor counted, as Prometheus text (format 0.0.4),
//! encoded by prometheus-client from a [`MetricsSnapshot`] the actor copies
//! out on each scrape. Nothing here runs on the scheduling path: the core
//! bumps plain integers (`sched::counters`), the store's writer one lock
//! per group commit (`writer::COMMITS`).

use brigade_proto::{PerModel, SlotModel};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::sched::counters::{Counters, Histogram, RUN_TIME_BOUNDS_NS};
use crate::writer::{CommitStats, COMMIT_SIZE_BOUNDS, COMMIT_TIME_BOUNDS_NS};

/// The `Content-Type` of what [`encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Everything `/metrics` shows, copied out of the actor at one instant.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub counters: Counters,
    /// Jobs known to the coordinator (restored ones included), per state
    /// name: queued, running, succeeded, failed, cancelled.
    pub jobs: [(&'static str, u64); 5],
    pub workers: u64,
    pub slots: PerModel<u64>,
    /// Credits workers announced (slots plus what they queue ahead).
    pub credits: PerModel<u64>,
    /// Tasks assigned to workers and not answered yet (credits in use).
    pub in_flight: PerModel<u64>,
    pub tasks_queued: u64,
    /// `None` without a state file.
    pub commits: Option<CommitStats>,
}

/// Encodes `snapshot` as Prometheus text.
pub fn encode(snapshot: MetricsSnapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// One metric family, a value per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric_type: MetricType,
    rows: impl IntoIterator<Item = (&'static str, &'static str, M)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, metric_type)?;
    for (key, value, metric) in rows {
        metric.encode(family.encode_family(&[(key, value)])?)?;
    }
    Ok(())
}

/// One value per slot model, labelled `model`.
fn per_model<M: EncodeMetric>(
    values: &PerModel<u64>,
    make: fn(u64) -> M,
) -> Vec<(&'static str, &'static str, M)> {
    values
        .iter()
        .map(|(m, &v)| ("model", m.name(), make(v)))
        .collect()
}

fn counter(v: u64) -> ConstCounter<u64> {
    ConstCounter::new(v)
}

fn gauge(v: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

/// A histogram with its bounds, scaled into the unit it is shown in.
struct Buckets<'a, const B: usize> {
    histogram: &'a Histogram<B>,
    bounds: &'a [u64; B],
    /// What one counted unit is in the shown unit (1e-9 for ns → s).
    scale: f64,
}

impl<const B: usize> Buckets<'_, B> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .zip(self.histogram.counts)
            .map(|(&b, n)| (b as f64 * self.scale, n))
            .collect();
        buckets.push((f64::INFINITY, self.histogram.above));
        encoder.encode_histogram::<NoLabelSet>(
            self.histogram.sum as f64 * self.scale,
            self.histogram.count(),
            &buckets,
            None,
        )
    }
}

impl Collector for MetricsSnapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        family(
            &mut e,
            "brigade_jobs",
            "Jobs the coordinator knows, by state",
            None,
            MetricType::Gauge,
            self.jobs.iter().map(|&(s, n)| ("state", s, gauge(n))),
        )?;
        family(
            &mut e,
            "brigade_tasks_done",
            "Tasks that ended done, by the slot model they ran on",
            None,
            MetricType::Counter,
            per_model(&c.tasks_done, counter),
        )?;
        family(
            &mut e,
            "brigade_tasks_failed",
            "Tasks that failed for good, by slot model",
            None,
            MetricType::Counter,
            per_model(&c.tasks_failed, counter),
        )?;
        family(
            &mut e,
            "brigade_tasks_retried",
            "Failed task attempts queued again, by slot model",
            None,
            MetricType::Counter,
            per_model(&c.tasks_retried, counter),
        )?;
        {
            let mut f = e.encode_descriptor(
                "brigade_task_run",
                "Wall time of done tasks as their workers measured it, by slot model",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for model in SlotModel::ALL {
                let labels = [("model", model.name())];
                Buckets {
                    histogram: &c.run_time[model],
                    bounds: &RUN_TIME_BOUNDS_NS,
                    scale: 1e-9,
                }
                .encode(f.encode_family(&labels)?)?;
            }
        }
        single(
            &mut e,
            "brigade_workers",
            "Linked workers",
            MetricType::Gauge,
            gauge(self.workers),
        )?;
        family(
            &mut e,
            "brigade_slots",
            "Slots of the linked workers, by slot model",
            None,
            MetricType::Gauge,
            per_model(&self.slots, gauge),
        )?;
        family(
            &mut e,
            "brigade_credits",
            "Credits the linked workers announced (slots plus tasks they queue ahead), by slot model",
            None,
            MetricType::Gauge,
            per_model(&self.credits, gauge),
        )?;
        family(
            &mut e,
            "brigade_credits_in_flight",
            "Tasks assigned to workers and not answered yet, by slot model",
            None,
            MetricType::Gauge,
            per_model(&self.in_flight, gauge),
        )?;
        single(
            &mut e,
            "brigade_tasks_queued",
            "Tasks waiting at the coordinator for a slot",
            MetricType::Gauge,
            gauge(self.tasks_queued),
        )?;
        single(
            &mut e,
            "brigade_late_results_dropped",
            "Results dropped because their lease was no longer current",
            MetricType::Counter,
            counter(c.late_results_dropped),
        )?;
        family(
            &mut e,
            "brigade_worker_losses",
            "Workers lost: silent past the lease timeout, or their stream ended",
            None,
            MetricType::Counter,
            [
                ("cause", "silent", counter(c.workers_silent)),
                ("cause", "disconnected", counter(c.workers_disconnected)),
            ],
        )?;
        single(
            &mut e,
            "brigade_leases_expired",
            "Task leases taken back from workers silent past the lease timeout",
            MetricType::Counter,
            counter(c.leases_expired),
        )?;
        single(
            &mut e,
            "brigade_leases_returned",
            "Task leases taken back from workers whose stream ended",
            MetricType::Counter,
            counter(c.leases_returned),
        )?;
        if let Some(commits) = &self.commits {
            let f = e.encode_descriptor(
                "brigade_store_commit",
                "Time of each group commit to the state file",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            Buckets {
                histogram: &commits.time,
                bounds: &COMMIT_TIME_BOUNDS_NS,
                scale: 1e-9,
            }
            .encode(f)?;
            let f = e.encode_descriptor(
                "brigade_store_commit_results",
                "Task results written by each group commit",
                None,
                MetricType::Histogram,
            )?;
            Buckets {
                histogram: &commits.results,
                bounds: &COMMIT_SIZE_BOUNDS,
                scale: 1.0,
            }
            .encode(f)?;
            single(
                &mut e,
                "brigade_store_commit_failures",
                "Group commits the state file refused",
                MetricType::Counter,
                counter(commits.failed),
            )?;
        }
        Ok(())
    }
}

/// A metric without labels.
fn single<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    metric: M,
) -> Result<(), std::fmt::Error> {
    metric.encode(e.encode_descriptor(name, help, None, metric_type)?)
}
