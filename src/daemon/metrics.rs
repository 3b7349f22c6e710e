//! What the sync daemon has done, for `GET /metrics` (Prometheus text format 0.0.4)
//! and `GET /healthz`.

use crate::engine::report::Summary;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Metrics {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rounds_ok: u64,
    rounds_failed: u64,
    images_ok: u64,
    images_failed: u64,
    bytes: u64,
    round_seconds_sum: f64,
    last_round_seconds: f64,
    /// target → Unix time of its last successful round
    last_success: BTreeMap<String, i64>,
    /// image (as listed) → Unix time it was last found in sync
    image_success: BTreeMap<String, i64>,
    events_selected: u64,
    events_ignored: u64,
    events_refused: u64,
}

/// Which events counter to add to.
#[derive(Clone, Copy, Debug)]
pub enum EventResult {
    /// Announced an image of the list.
    Selected,
    /// Announced something else.
    Ignored,
    /// Refused: wrong secret, or not a notification.
    Refused,
}

impl Metrics {
    /// A round that ran: `images` are the inputs it synced, `summary` how it went.
    pub fn round(&self, target: &str, images: &[String], summary: &Summary) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        let now = chrono::Utc::now().timestamp();
        let failed: HashSet<&str> = summary
            .failed
            .iter()
            .chain(&summary.invalid)
            .map(|(r, _)| r.as_str())
            .collect();
        s.images_failed += failed.len() as u64;
        for image in images.iter().filter(|i| !failed.contains(i.as_str())) {
            s.images_ok += 1;
            s.image_success.insert(image.clone(), now);
        }
        s.bytes = s.bytes.saturating_add(summary.bytes);
        if summary.is_success() {
            s.rounds_ok += 1;
            s.last_success.insert(target.to_string(), now);
        } else {
            s.rounds_failed += 1;
        }
        s.add_duration(summary.elapsed);
    }

    /// A round that could not run at all (the target unreachable, say).
    pub fn round_failed(&self, elapsed: Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.rounds_failed += 1;
            s.add_duration(elapsed);
        }
    }

    pub fn event(&self, result: EventResult, count: u64) {
        if let Ok(mut s) = self.state.lock() {
            let c = match result {
                EventResult::Selected => &mut s.events_selected,
                EventResult::Ignored => &mut s.events_ignored,
                EventResult::Refused => &mut s.events_refused,
            };
            *c = c.saturating_add(count);
        }
    }

    /// (rounds run, whether the last one succeeded), for `/healthz`.
    pub fn health(&self) -> (u64, Option<i64>) {
        self.state
            .lock()
            .map(|s| {
                (
                    s.rounds_ok + s.rounds_failed,
                    s.last_success.values().max().copied(),
                )
            })
            .unwrap_or((0, None))
    }

    pub fn render(&self) -> String {
        let Ok(s) = self.state.lock() else {
            return String::new();
        };
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        family(
            "ferry_sync_rounds_total",
            "counter",
            "Sync rounds run, by result.",
            vec![
                (r#"{result="ok"}"#.into(), s.rounds_ok.to_string()),
                (r#"{result="failed"}"#.into(), s.rounds_failed.to_string()),
            ],
        );
        family(
            "ferry_sync_images_total",
            "counter",
            "Images handled by sync rounds (copied, or found already in sync), by result.",
            vec![
                (r#"{result="ok"}"#.into(), s.images_ok.to_string()),
                (r#"{result="failed"}"#.into(), s.images_failed.to_string()),
            ],
        );
        family(
            "ferry_sync_failures_total",
            "counter",
            "Images that failed to sync, summed over rounds.",
            vec![(String::new(), s.images_failed.to_string())],
        );
        family(
            "ferry_sync_bytes_total",
            "counter",
            "Bytes copied to the target.",
            vec![(String::new(), s.bytes.to_string())],
        );
        family(
            "ferry_sync_round_duration_seconds",
            "summary",
            "Duration of sync rounds.",
            // A summary's samples carry suffixes where others carry labels.
            vec![
                ("_sum".into(), format!("{:.3}", s.round_seconds_sum)),
                ("_count".into(), (s.rounds_ok + s.rounds_failed).to_string()),
            ],
        );
        family(
            "ferry_sync_last_round_duration_seconds",
            "gauge",
            "Duration of the last sync round.",
            vec![(String::new(), format!("{:.3}", s.last_round_seconds))],
        );
        family(
            "ferry_sync_last_success_timestamp_seconds",
            "gauge",
            "When a round last synced every image to the target (Unix time).",
            s.last_success
                .iter()
                .map(|(t, at)| (format!("{{target=\"{}\"}}", escape(t)), at.to_string()))
                .collect(),
        );
        family(
            "ferry_sync_image_last_success_timestamp_seconds",
            "gauge",
            "When each listed image was last found in sync at the target (Unix time).",
            s.image_success
                .iter()
                .map(|(i, at)| (format!("{{image=\"{}\"}}", escape(i)), at.to_string()))
                .collect(),
        );
        family(
            "ferry_sync_events_total",
            "counter",
            "Pushes announced at POST /events: selected by the list, ignored, or refused.",
            vec![
                (
                    r#"{result="selected"}"#.into(),
                    s.events_selected.to_string(),
                ),
                (r#"{result="ignored"}"#.into(), s.events_ignored.to_string()),
                (r#"{result="refused"}"#.into(), s.events_refused.to_string()),
            ],
        );
        out
    }
}

impl State {
    fn add_duration(&mut self, d: Duration) {
        self.last_round_seconds = d.as_secs_f64();
        self.round_seconds_sum += d.as_secs_f64();
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_parseable_text() {
        let m = Metrics::default();
        let summary = Summary {
            action: "sync",
            total: 2,
            succeeded: 1,
            failed: vec![("b:1".into(), "gone".into())],
            bytes: 42,
            elapsed: Duration::from_millis(1500),
            ..Default::default()
        };
        m.round("dst", &["a:1".into(), "b:1".into()], &summary);
        m.event(EventResult::Selected, 2);
        let text = m.render();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("ferry_sync_"), "{line}");
        }
        assert!(text.contains("ferry_sync_rounds_total{result=\"failed\"} 1"));
        assert!(text.contains("ferry_sync_bytes_total 42"));
        assert!(text.contains("ferry_sync_round_duration_seconds_sum 1.500"));
        assert!(text.contains("ferry_sync_image_last_success_timestamp_seconds{image=\"a:1\"}"));
        assert!(!text.contains("image=\"b:1\""));
        assert!(text.contains("ferry_sync_events_total{result=\"selected\"} 2"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
