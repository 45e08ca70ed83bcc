//! `brigade events [--follow]`: the coordinator's event stream (jobs
//! submitted and ended, workers linked and lost) as text lines, JSON
//! (one array; with --follow, jsonl: one event per line) or CSV.

use anyhow::Context;
use brigade_client::{state_name, Client, Event, EventKind};
use futures::StreamExt;
use serde_json::json;

use crate::cli::exit::Exit;
use crate::commands::Format;

/// `brigade events`: the recent events, and with `follow` every new one
/// until interrupted.
pub async fn command(
    client: &mut Client,
    follow: bool,
    all: bool,
    format: Format,
) -> anyhow::Result<()> {
    if follow && format == Format::Json {
        return Err(Exit::Usage(
            "--follow streams events as they happen: use --format jsonl (one JSON event per \
             line); --format json prints one array of the recent events, without --follow"
                .to_string(),
        )
        .into());
    }
    let mut events = client
        .events(follow, all)
        .await
        .context("could not follow events")?;
    if format == Format::Csv {
        println!("seq,time,unix_us,kind,job_id,workload,owner,state,worker_id,worker,detail");
    }
    let mut all_json = Vec::new();
    while let Some(e) = events.next().await {
        let e = e.context("the event stream broke")?;
        match format {
            Format::Json => all_json.push(event_json(&e)),
            Format::Jsonl => println!("{}", event_json(&e)),
            Format::Csv => println!("{}", event_csv(&e)),
            Format::Table | Format::Quiet => println!("{}", event_line(&e)),
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::Value::Array(all_json));
    }
    Ok(())
}

/// An event's kind as the JSON and CSV name it.
fn kind_name(kind: i32) -> &'static str {
    match EventKind::try_from(kind) {
        Ok(EventKind::JobSubmitted) => "job_submitted",
        Ok(EventKind::JobEnded) => "job_ended",
        Ok(EventKind::WorkerLinked) => "worker_linked",
        Ok(EventKind::WorkerLost) => "worker_lost",
        _ => "unknown",
    }
}

fn is_job_event(e: &Event) -> bool {
    matches!(
        EventKind::try_from(e.kind),
        Ok(EventKind::JobSubmitted | EventKind::JobEnded)
    )
}

/// An event as one JSON object: `seq`, `time`, `unix_us`, `kind`, then a
/// job's fields (`job_id`, `workload`, `owner`, and for its end `state`
/// and `error`) or a worker's (`worker_id`, `worker`, and for its loss
/// `reason`); a submission's `detail`.
fn event_json(e: &Event) -> serde_json::Value {
    let mut v = json!({"seq": e.seq, "time": utc(e.unix_us), "unix_us": e.unix_us, "kind": kind_name(e.kind)});
    let kind = EventKind::try_from(e.kind);
    if is_job_event(e) {
        v["job_id"] = e.job_id.into();
        v["workload"] = e.workload.clone().into();
        v["owner"] = e.owner.clone().into();
    } else if matches!(kind, Ok(EventKind::WorkerLinked | EventKind::WorkerLost)) {
        v["worker_id"] = e.worker_id.into();
        v["worker"] = e.worker.clone().into();
    }
    let detail = match kind {
        Ok(EventKind::JobSubmitted) => "detail",
        Ok(EventKind::JobEnded) => {
            v["state"] = state_name(e.state).into();
            "error"
        }
        Ok(EventKind::WorkerLost) => "reason",
        _ => return v,
    };
    v[detail] = e.detail.clone().into();
    v
}

fn event_csv(e: &Event) -> String {
    let field = crate::commands::csv_field;
    let job = is_job_event(e);
    format!(
        "{},{},{},{},{},{},{},{},{},{},{}",
        e.seq,
        utc(e.unix_us),
        e.unix_us,
        kind_name(e.kind),
        if job {
            e.job_id.to_string()
        } else {
            String::new()
        },
        field(&e.workload),
        field(&e.owner),
        if EventKind::try_from(e.kind) == Ok(EventKind::JobEnded) {
            state_name(e.state)
        } else {
            ""
        },
        if job {
            String::new()
        } else {
            e.worker_id.to_string()
        },
        field(&e.worker),
        field(&e.detail),
    )
}

/// An event as a line of text.
fn event_line(e: &Event) -> String {
    let owner = if e.owner.is_empty() {
        String::new()
    } else {
        format!(" (owner {})", e.owner)
    };
    let what = match EventKind::try_from(e.kind) {
        Ok(EventKind::JobSubmitted) => {
            format!(
                "job {} submitted: {}, {}{owner}",
                e.job_id, e.workload, e.detail
            )
        }
        Ok(EventKind::JobEnded) => {
            let error = if e.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", crate::commands::table_field(&e.detail))
            };
            format!(
                "job {} {} {}{owner}{error}",
                e.job_id,
                e.workload,
                state_name(e.state)
            )
        }
        Ok(EventKind::WorkerLinked) => format!("worker {} (id {}) linked", e.worker, e.worker_id),
        Ok(EventKind::WorkerLost) => format!(
            "worker {} (id {}) lost: {}",
            e.worker,
            e.worker_id,
            crate::commands::table_field(&e.detail)
        ),
        _ => format!("event of an unknown kind ({})", e.kind),
    };
    format!("{}  {what}", utc(e.unix_us))
}

/// A moment in µs since the Unix epoch as RFC 3339 UTC, to the ms
/// (`2026-11-29T20:30:01.123Z`).
pub fn utc(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let ms = unix_us / 1_000 % 1_000;
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm, days from 1970).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        day_secs / 3_600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_print_as_rfc_3339_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_796_000_401_123_456), "2026-11-30T01:00:01.123Z");
        assert_eq!(utc(4_102_444_799_999_000), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn events_read_as_lines_json_and_csv() {
        let ended = Event {
            seq: 3,
            unix_us: 1_796_000_401_123_456,
            kind: EventKind::JobEnded as i32,
            job_id: 7,
            workload: "exec".into(),
            owner: "alice".into(),
            state: brigade_client::JobState::Failed as i32,
            detail: "1 of 2 tasks failed, \"x\"\nagain".into(),
            ..Event::default()
        };
        assert_eq!(
            event_line(&ended),
            "2026-11-30T01:00:01.123Z  job 7 exec failed (owner alice): 1 of 2 tasks failed, \"x\"\\nagain"
        );
        let v = event_json(&ended);
        assert_eq!(v["kind"], "job_ended");
        assert_eq!(
            (v["state"].as_str(), v["job_id"].as_u64()),
            (Some("failed"), Some(7))
        );
        assert!(v.get("worker_id").is_none(), "{v}");
        assert_eq!(
            event_csv(&ended),
            "3,2026-11-30T01:00:01.123Z,1796000401123456,job_ended,7,exec,alice,failed,,,\
             \"1 of 2 tasks failed, \"\"x\"\"\nagain\""
        );
        let lost = Event {
            seq: 4,
            unix_us: 1_796_000_402_000_000,
            kind: EventKind::WorkerLost as i32,
            worker_id: 2,
            worker: "w2".into(),
            detail: "silent for 3.0 s".into(),
            ..Event::default()
        };
        assert_eq!(
            event_line(&lost),
            "2026-11-30T01:00:02.000Z  worker w2 (id 2) lost: silent for 3.0 s"
        );
        assert_eq!(event_json(&lost)["reason"], "silent for 3.0 s");
    }
}
