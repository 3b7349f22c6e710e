//! What the page sees of a running job: the engine's own progress bars and lines,
//! received through [`crate::engine::report::Sink`], and the per-image state
//! derived from them (an image named at the start of a warning failed, with that
//! reason; the closing summary is the final word).

use crate::engine::report::{Sink, Summary};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines kept for the log tail of a running job.
const MAX_LINES: usize = 2000;
/// Speed is measured over this window (plus one sample).
const RATE_WINDOW: Duration = Duration::from_secs(8);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLine {
    pub time: String,
    pub warning: bool,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    /// Not known to be finished yet.
    Working,
    Done,
    Failed,
    /// The job stopped before the image was finished.
    Stopped,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageRow {
    pub reference: String,
    pub state: ImageState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The engine's [`Summary`], as kept in the history.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub action: String,
    pub total: usize,
    pub succeeded: usize,
    pub failed: Vec<(String, String)>,
    pub invalid: Vec<(String, String)>,
    pub bytes: u64,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BarView {
    pub label: String,
    pub bytes: bool,
    /// One of the per-data-file bars of a save.
    pub per_file: bool,
    pub position: u64,
    pub length: u64,
    pub finished: bool,
    /// Units per second over the last seconds.
    pub rate: f64,
    pub eta_seconds: Option<u64>,
}

struct WatchedBar {
    label: String,
    bytes: bool,
    bar: ProgressBar,
    samples: VecDeque<(Instant, u64)>,
}

#[derive(Default)]
struct State {
    bars: Vec<WatchedBar>,
    lines: VecDeque<LogLine>,
    dropped_lines: u64,
    summary: Option<SummaryRecord>,
    images: Vec<ImageRow>,
}

/// One job's progress, shared by the engine (writing) and the page (reading).
pub struct Watch {
    state: Mutex<State>,
}

impl Watch {
    pub fn new(images: &[String]) -> Watch {
        Watch {
            state: Mutex::new(State {
                images: images
                    .iter()
                    .map(|r| ImageRow {
                        reference: r.clone(),
                        state: ImageState::Working,
                        reason: None,
                    })
                    .collect(),
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves readable data: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bars as they stand now, with speed and time left.
    pub fn bars(&self) -> Vec<BarView> {
        let now = Instant::now();
        let mut state = self.state();
        state
            .bars
            .iter_mut()
            .map(|w| {
                let position = w.bar.position();
                let length = w.bar.length().unwrap_or(0);
                let finished = w.bar.is_finished();
                w.samples.push_back((now, position));
                while w.samples.len() > 2
                    && w.samples
                        .get(1)
                        .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    w.samples.pop_front();
                }
                let rate = match w.samples.front() {
                    Some((t, p)) if now.duration_since(*t) >= Duration::from_millis(500) => {
                        position.saturating_sub(*p) as f64 / now.duration_since(*t).as_secs_f64()
                    }
                    _ => 0.0,
                };
                let left = length.saturating_sub(position);
                let eta_seconds = (!finished && rate > 0.0 && left > 0)
                    .then(|| (left as f64 / rate).min(1e9) as u64);
                BarView {
                    per_file: w.bytes && is_file_bar(&w.label),
                    label: w.label.clone(),
                    bytes: w.bytes,
                    position,
                    length,
                    finished,
                    rate,
                    eta_seconds,
                }
            })
            .collect()
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let state = self.state();
        let skip = state.lines.len().saturating_sub(n);
        state.lines.iter().skip(skip).cloned().collect()
    }

    pub fn images(&self) -> Vec<ImageRow> {
        self.state().images.clone()
    }

    pub fn summary(&self) -> Option<SummaryRecord> {
        self.state().summary.clone()
    }

    /// Settles every image still working once the job is over: done when the job
    /// ran to its end, stopped when it was cancelled or failed as a whole.
    pub fn finish(&self, completed: bool) {
        let mut state = self.state();
        for row in &mut state.images {
            if row.state == ImageState::Working {
                row.state = if completed {
                    ImageState::Done
                } else {
                    ImageState::Stopped
                };
            }
        }
    }
}

/// A per-data-file bar of save (`file 3`, `文件 3`).
fn is_file_bar(label: &str) -> bool {
    ["file ", "文件 "].iter().any(|p| {
        label
            .strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

fn mark_failed(images: &mut [ImageRow], reference: &str, reason: &str) {
    for row in images.iter_mut().filter(|r| r.reference == reference) {
        row.state = ImageState::Failed;
        if row.reason.is_none() {
            row.reason = Some(reason.to_string());
        }
    }
}

impl Sink for Watch {
    fn bar(&self, counts_bytes: bool, label: &str, bar: &ProgressBar) {
        self.state().bars.push(WatchedBar {
            label: label.to_string(),
            bytes: counts_bytes,
            bar: bar.clone(),
            samples: VecDeque::new(),
        });
    }

    fn line(&self, warning: bool, msg: &str) {
        let mut state = self.state();
        if warning {
            // The engine names a failed image first: `REFERENCE: why`.
            let hit = state.images.iter().find_map(|r| {
                msg.strip_prefix(r.reference.as_str())
                    .and_then(|rest| rest.strip_prefix(": "))
                    .map(|why| (r.reference.clone(), why.to_string()))
            });
            if let Some((reference, why)) = hit {
                mark_failed(&mut state.images, &reference, &why);
            }
        }
        if state.lines.len() >= MAX_LINES {
            state.lines.pop_front();
            state.dropped_lines += 1;
        }
        state.lines.push_back(LogLine {
            time: chrono::Local::now().format("%H:%M:%S").to_string(),
            warning,
            text: msg.to_string(),
        });
    }

    fn image_saved(&self, reference: &str) {
        let mut state = self.state();
        for row in state
            .images
            .iter_mut()
            .filter(|r| r.reference == reference && r.state == ImageState::Working)
        {
            row.state = ImageState::Done;
        }
    }

    fn summary(&self, summary: &Summary) {
        let mut state = self.state();
        for (reference, why) in summary.failed.iter().chain(&summary.invalid) {
            if state.images.iter().any(|r| &r.reference == reference) {
                mark_failed(&mut state.images, reference, why);
            } else {
                state.images.push(ImageRow {
                    reference: reference.clone(),
                    state: ImageState::Failed,
                    reason: Some(why.clone()),
                });
            }
        }
        state.summary = Some(SummaryRecord {
            action: summary.action_name().to_string(),
            total: summary.total,
            succeeded: summary.succeeded,
            failed: summary.failed.clone(),
            invalid: summary.invalid.clone(),
            bytes: summary.bytes,
            seconds: summary.elapsed.as_secs_f64(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_naming_an_image_fails_it_and_the_summary_settles_the_rest() {
        let w = Watch::new(&["a:1".into(), "a:1-x".into(), "b:2".into()]);
        w.line(false, "a:1: not a failure, only info");
        w.line(true, "a:1-x: manifest unknown");
        let rows = w.images();
        assert_eq!(rows[0].state, ImageState::Working);
        assert_eq!(rows[1].state, ImageState::Failed);
        assert_eq!(rows[1].reason.as_deref(), Some("manifest unknown"));
        Sink::summary(
            &w,
            &Summary {
                action: "save",
                total: 3,
                succeeded: 1,
                failed: vec![("b:2".into(), "denied".into())],
                ..Summary::default()
            },
        );
        w.finish(true);
        let rows = w.images();
        assert_eq!(rows[0].state, ImageState::Done);
        assert_eq!(rows[2].state, ImageState::Failed);
        assert_eq!(w.summary().map(|s| s.failed.len()), Some(1));
    }

    #[test]
    fn bars_report_position_length_and_file_bars() {
        let w = Watch::new(&[]);
        let bar = ProgressBar::with_draw_target(Some(100), indicatif::ProgressDrawTarget::hidden());
        w.bar(true, "file 2", &bar);
        bar.inc(40);
        let views = w.bars();
        assert_eq!((views[0].position, views[0].length), (40, 100));
        assert!(views[0].per_file);
        assert!(!is_file_bar("file x") && !is_file_bar("save"));
    }
}
